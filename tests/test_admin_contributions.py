"""Contributions in the back office: creating, paying, refunding, cancelling, permissions."""

from decimal import Decimal

import pytest
from django.urls import reverse

from crm_core.models import Contribution, FinancialType
from crm_core.services import contributions as svc
from tests.conftest import grant
from tests.factories import FinancialTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

NS = "wagtailsnippets_crm_core_contribution"


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def refused(response):
    # Wagtail answers PermissionDenied with a redirect to the dashboard and a message.
    return response.status_code == 302 and response.url == reverse("wagtailadmin_home")


def pending(contact, amount="50.00"):
    return svc.create_pending(contact, currency="GBP", lines=[{"amount": amount}])


def donation_form(contact, **extra):
    return {
        "contact": contact.pk,
        "amount": "25.00",
        "currency": "GBP",
        "financial_type": FinancialType.objects.get(slug="donation").pk,
        "campaign": "",
        "payment_method": "",
        "note": "",
        "received_at": "",
        "transaction_id": "",
        **extra,
    }


def test_staff_record_a_pending_donation(client, contact):
    user = staff(client, "crm_core.add_contribution", "crm_core.view_contribution")
    response = client.post(reverse(f"{NS}:add"), donation_form(contact))
    assert response.status_code == 302, response.content.decode()[:3000]
    contribution = Contribution.objects.get(contact=contact)
    assert (contribution.status, contribution.total_amount) == ("pending", Decimal("25.00"))
    assert (contribution.created_by, contribution.source) == (user, "admin")


def test_staff_record_a_donation_already_paid_by_cheque(client, contact):
    staff(
        client,
        "crm_core.add_contribution",
        "crm_core.view_contribution",
        "crm_core.record_offline_payment",
    )
    response = client.post(
        reverse(f"{NS}:add"),
        donation_form(contact, payment_method="cheque", already_paid="on", transaction_id="000123"),
    )
    assert response.status_code == 302
    contribution = Contribution.objects.get(contact=contact)
    assert (contribution.status, contribution.transaction_id) == ("completed", "000123")


def test_a_card_payment_cannot_be_marked_paid_by_hand_and_nothing_is_saved(client, contact):
    staff(
        client,
        "crm_core.add_contribution",
        "crm_core.view_contribution",
        "crm_core.record_offline_payment",
    )
    response = client.post(
        reverse(f"{NS}:add"), donation_form(contact, payment_method="card", already_paid="on")
    )
    assert response.status_code == 200
    assert "payment_method" in response.context["form"].errors
    assert not Contribution.objects.exists()


def test_a_bad_amount_is_shown_next_to_the_amount(client, contact):
    staff(client, "crm_core.add_contribution", "crm_core.view_contribution")
    response = client.post(reverse(f"{NS}:add"), donation_form(contact, amount="12.345"))
    assert response.status_code == 200
    assert "at most 2 decimal places" in str(response.context["form"].errors["amount"])
    assert not Contribution.objects.exists()


def test_the_listing_shows_total_and_status(client, contact):
    staff(client, "crm_core.view_contribution")
    pending(contact, "12.50")
    response = client.get(reverse(f"{NS}:list"))
    assert response.status_code == 200
    assert "12.50 GBP" in response.content.decode()


def test_the_inspect_view_lists_line_items_and_escapes_labels(client, contact):
    staff(client, "crm_core.view_contribution")
    contribution = svc.create_pending(
        contact, currency="GBP", lines=[{"amount": "5", "label": "Roof <script>x</script>"}]
    )
    response = client.get(reverse(f"{NS}:inspect", args=[contribution.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "What it pays for" in body
    assert "<script>x" not in body


def test_edit_and_delete_are_refused_even_to_superusers(client, contact, superuser):
    client.force_login(superuser)
    contribution = pending(contact)
    assert refused(client.get(reverse(f"{NS}:edit", args=[contribution.pk])))
    response = client.post(reverse(f"{NS}:delete", args=[contribution.pk]))
    assert refused(response)
    assert Contribution.objects.filter(pk=contribution.pk).exists()


def test_recording_an_offline_payment(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.record_offline_payment")
    contribution = pending(contact)
    response = client.post(
        reverse(f"{NS}:record_payment", args=[contribution.pk]),
        {"payment_method": "bank_transfer", "received_at": "", "transaction_id": "REF-9"},
    )
    assert response.status_code == 302
    contribution.refresh_from_db()
    assert (contribution.status, contribution.payment_method) == ("completed", "bank_transfer")


def test_recording_a_payment_without_permission_is_refused(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    contribution = pending(contact)
    response = client.post(
        reverse(f"{NS}:record_payment", args=[contribution.pk]), {"payment_method": "cash"}
    )
    assert refused(response)
    contribution.refresh_from_db()
    assert contribution.status == "pending"


def test_refunding_part_in_the_admin(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    contribution = svc.complete(pending(contact))
    response = client.post(
        reverse(f"{NS}:refund", args=[contribution.pk]), {"amount": "10.00", "reason": "Asked"}
    )
    assert response.status_code == 302
    contribution.refresh_from_db()
    assert (contribution.status, contribution.refunded_amount) == (
        "partially_refunded",
        Decimal("10.00"),
    )


def test_refunding_too_much_shows_the_message_and_changes_nothing(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    contribution = svc.complete(pending(contact))
    response = client.post(reverse(f"{NS}:refund", args=[contribution.pk]), {"amount": "60"})
    assert response.status_code == 200
    assert "At most 50.00 GBP is left to refund." in response.content.decode()
    contribution.refresh_from_db()
    assert contribution.refunded_amount == 0


def test_refunding_without_permission_is_refused(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.record_offline_payment")
    contribution = svc.complete(pending(contact))
    response = client.post(reverse(f"{NS}:refund", args=[contribution.pk]), {})
    assert refused(response)
    contribution.refresh_from_db()
    assert contribution.status == "completed"


def test_cancelling_in_the_admin(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    contribution = pending(contact)
    response = client.post(reverse(f"{NS}:cancel", args=[contribution.pk]), {"reason": "Duplicate"})
    assert response.status_code == 302
    contribution.refresh_from_db()
    assert (contribution.status, contribution.status_reason) == ("cancelled", "Duplicate")


def test_the_listing_needs_the_view_permission(client, contact):
    staff(client)
    response = client.get(reverse(f"{NS}:list"))
    assert refused(response)


def test_a_fund_in_use_is_not_deleted(client, contact, superuser):
    client.force_login(superuser)
    fund = FinancialTypeFactory(slug="roof")
    svc.create_pending(contact, currency="GBP", lines=[{"amount": "5"}], financial_type=fund)
    response = client.post(reverse("wagtailsnippets_crm_core_financialtype:delete", args=[fund.pk]))
    assert response.status_code == 302
    assert FinancialType.objects.filter(pk=fund.pk).exists()


def test_cancelling_a_recurring_contribution_needs_a_reason(client, contact):
    staff(
        client,
        "crm_core.view_recurringcontribution",
        "crm_core.change_recurringcontribution",
    )
    recurring = svc.create_recurring(
        contact,
        amount="10",
        currency="GBP",
        frequency_unit="month",
        financial_type=FinancialType.objects.get(slug="donation"),
    )
    url = reverse("wagtailsnippets_crm_core_recurringcontribution:cancel", args=[recurring.pk])
    assert client.post(url, {"reason": ""}).status_code == 200
    assert client.post(url, {"reason": "Moved abroad"}).status_code == 302
    recurring.refresh_from_db()
    assert recurring.status == "cancelled"
