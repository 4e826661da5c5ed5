"""A staff member takes a pay-later payment and refunds part of it, in a real browser."""

from decimal import Decimal

import pytest

from crm_core.models import ContributionStatus
from crm_core.services import contributions
from crm_payments.models import PaymentStatus, RefundStatus
from crm_payments.services import payments
from tests.browser.conftest import ARTIFACTS
from tests.factories import ContactFactory, FinancialTypeFactory

pytestmark = pytest.mark.browser


def log_in(page, live_server, demo_site):
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", demo_site["username"])
    page.fill("#id_password", demo_site["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")


def test_staff_record_a_bank_transfer_then_refund_part_of_it(demo_site, live_server, browser_page):
    # A transactional test empties every table first, funds made by migrations too.
    FinancialTypeFactory(slug="donation")
    donor = ContactFactory(first_name="Grace", last_name="Hopper")
    donation = contributions.create_pending(
        donor,
        currency="GBP",
        lines=[{"kind": "donation", "amount": Decimal("40.00"), "label": "Spring appeal"}],
        source="tests",
    )
    payment, _start = payments.start_payment(
        donation, provider="offline", return_url="/", cancel_url="/"
    )
    page = browser_page
    log_in(page, live_server, demo_site)

    page.goto(live_server.url + f"/admin/snippets/crm_core/contribution/inspect/{donation.pk}/")
    page.get_by_role("link", name="Record an offline payment").click()
    page.get_by_label("Paid by").select_option("bank_transfer")
    page.get_by_label("Reference").fill("BACS 0042")
    page.screenshot(path=str(ARTIFACTS / "admin-record-payment.png"), full_page=True)
    page.get_by_role("button", name="Record payment").click()
    page.wait_for_load_state()

    donation.refresh_from_db()
    payment.refresh_from_db()
    assert donation.status == ContributionStatus.COMPLETED
    assert donation.payment_method == "bank_transfer"
    assert payment.status == PaymentStatus.SUCCEEDED

    page.goto(live_server.url + f"/admin/snippets/crm_core/contribution/inspect/{donation.pk}/")
    page.get_by_role("link", name="Refund").click()
    page.get_by_label("Amount").fill("15.00")
    page.get_by_label("Reason").fill("Gave twice by mistake")
    page.get_by_role("button", name="Refund").click()
    page.wait_for_load_state()
    page.screenshot(path=str(ARTIFACTS / "admin-refund-done.png"), full_page=True)

    donation.refresh_from_db()
    assert donation.status == ContributionStatus.PARTIALLY_REFUNDED
    assert donation.refunded_amount == Decimal("15.00")
    refund = donation.provider_refunds.get()
    assert (refund.status, refund.amount, refund.reason) == (
        RefundStatus.SUCCEEDED,
        Decimal("15.00"),
        "Gave twice by mistake",
    )

    page.goto(live_server.url + "/admin/snippets/crm_payments/refund/")
    assert page.get_by_text("15.00").first.is_visible()
