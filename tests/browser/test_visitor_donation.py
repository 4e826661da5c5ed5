"""A visitor gives through the demo's donation page, in a real browser, keyboard and all."""

import re
from decimal import Decimal

import pytest

from crm_core.models import Contribution, ContributionStatus
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def axe_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return results.violations_count, results.generate_report()


def test_a_visitor_corrects_a_mistake_and_pledges_a_gift_to_pay_later(
    demo_site, live_server, browser_page
):
    page = browser_page
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Donate").click()
    page.wait_for_url(re.compile(r"/donate/$"))
    count, report = axe_violations(page)
    assert count == 0, report
    page.screenshot(path=str(ARTIFACTS / "donation-1-form.png"), full_page=True)

    page.get_by_label("Another amount").check()
    page.get_by_label("Your own amount").fill("0.50")
    page.get_by_label("First name").fill("Ada")
    page.get_by_role("button", name="Donate").click()

    summary = page.locator(".crm-form__errors")
    assert "Give an amount from 1.00 GBP to 10000.00 GBP." in summary.inner_text()
    assert page.get_by_label("First name").input_value() == "Ada", "what was typed is kept"
    count, report = axe_violations(page)
    assert count == 0, report
    page.screenshot(path=str(ARTIFACTS / "donation-2-errors.png"), full_page=True)
    # The summary's links take the keyboard user to the field.
    summary.get_by_role("link", name=re.compile("Email address")).click()
    assert page.evaluate("document.activeElement.name") == "email"

    page.keyboard.type("ada@example.org")
    page.get_by_label("Your own amount").fill("12.50")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label(re.compile("email me news")).check()
    page.get_by_role("button", name="Donate").click()

    page.wait_for_url(re.compile("/crm/forms/thanks/"))
    assert (
        "Your gift of 12.50 GBP is recorded and waiting for your payment."
        in page.locator("main").inner_text()
    )
    count, report = axe_violations(page)
    assert count == 0, report
    page.screenshot(path=str(ARTIFACTS / "donation-3-thanks.png"), full_page=True)

    contribution = Contribution.objects.get()
    assert contribution.total_amount == Decimal("12.50")
    assert contribution.status == ContributionStatus.PENDING
    assert contribution.contact.display_name == "Ada Lovelace"
