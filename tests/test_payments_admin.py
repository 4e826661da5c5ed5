"""Payments in the back office: read-only listings, lifting blocks, refunds through the provider."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm_core.models import ContributionStatus
from crm_payments.models import PaymentBlock, Refund, RefundStatus, WebhookEvent
from crm_payments.services import payments, velocity
from tests.conftest import grant
from tests.factories import UserFactory
from tests.test_payments_api import paid_by_card, paid_offline, pending, use_fake_card

pytestmark = pytest.mark.django_db

NAMESPACES = {
    "payment": "wagtailsnippets_crm_payments_payment",
    "refund": "wagtailsnippets_crm_payments_refund",
    "dispute": "wagtailsnippets_crm_payments_dispute",
    "webhookevent": "wagtailsnippets_crm_payments_webhookevent",
    "paymentblock": "wagtailsnippets_crm_payments_paymentblock",
}
CONTRIBUTIONS = "wagtailsnippets_crm_core_contribution"
BLOCKS = NAMESPACES["paymentblock"]


@pytest.fixture
def fake_card(settings):
    return use_fake_card(settings)


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def refused(response):
    # Wagtail answers PermissionDenied with a redirect to the dashboard and a message.
    return response.status_code == 302 and response.url == reverse("wagtailadmin_home")


def blocked_ip(ip="198.51.100.9"):
    for _ in range(10):
        velocity.record_decline(ip=ip)
    return PaymentBlock.objects.get(value=ip)


def webhook_event(number, **extra):
    return WebhookEvent.objects.create(
        provider="stripe",
        event_id=f"evt_{number}",
        event_type=extra.pop("event_type", "payment_intent.succeeded"),
        object_id=f"pi_{number}",
        **extra,
    )


# -- listings and permissions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMESPACES)
def test_each_listing_needs_its_view_permission(client, name):
    staff(client)
    assert refused(client.get(reverse(f"{NAMESPACES[name]}:list")))
    staff(client, f"crm_payments.view_{name}")
    assert client.get(reverse(f"{NAMESPACES[name]}:list")).status_code == 200


@pytest.mark.parametrize("name", NAMESPACES)
def test_nothing_can_be_added_even_by_a_superuser(client, superuser, name):
    client.force_login(superuser)
    assert refused(client.get(reverse(f"{NAMESPACES[name]}:add")))
    listing = client.get(reverse(f"{NAMESPACES[name]}:list")).content.decode()
    assert reverse(f"{NAMESPACES[name]}:add") not in listing


def test_payments_cannot_be_edited_or_deleted_even_by_a_superuser(client, superuser):
    client.force_login(superuser)
    payment = paid_offline().payments.get()
    ns = NAMESPACES["payment"]
    assert refused(client.get(reverse(f"{ns}:edit", args=[payment.pk])))
    assert refused(client.post(reverse(f"{ns}:delete", args=[payment.pk])))
    assert payment.__class__.objects.filter(pk=payment.pk).exists()


def test_the_payments_listing_shows_contribution_contact_amount_provider_and_status(
    client, fake_card
):
    staff(client, "crm_payments.view_payment")
    contribution = paid_by_card("12.50")
    payment = contribution.payments.get()
    payment.needs_attention = "Paid twice"
    payment.save()

    body = client.get(reverse(f"{NAMESPACES['payment']}:list")).content.decode()

    assert "12.50 GBP" in body
    assert contribution.contact.display_name in body
    assert "fakecard" in body
    assert "Succeeded" in body
    assert "Paid twice" in body
    assert reverse(f"{CONTRIBUTIONS}:inspect", args=[contribution.pk]) in body


def test_the_payment_page_links_back_to_the_contribution(client, fake_card):
    staff(client, "crm_payments.view_payment")
    contribution = paid_by_card()
    payment = contribution.payments.get()

    response = client.get(reverse(f"{NAMESPACES['payment']}:inspect", args=[payment.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert reverse(f"{CONTRIBUTIONS}:inspect", args=[contribution.pk]) in body
    assert payment.payment_intent_id in body
    assert "50.00 GBP" in body


def test_payments_filter_by_status_and_provider_and_search_by_provider_ids(client, fake_card):
    staff(client, "crm_payments.view_payment")
    card = paid_by_card().payments.get()
    paid_offline("7.00")
    url = reverse(f"{NAMESPACES['payment']}:list")

    def shown(**params):
        return [row.pk for row in client.get(url, params).context["object_list"]]

    assert shown(provider="fakecard") == [card.pk]
    assert len(shown(status="succeeded")) == 2
    assert shown(status="failed") == []
    assert shown(q=card.payment_intent_id) == [card.pk]
    assert shown(needs_attention="true") == []


def test_refunds_and_disputes_are_listed_with_links(client, superuser, fake_card):
    client.force_login(superuser)
    contribution = paid_by_card()
    payment = contribution.payments.get()
    payments.refund_contribution(contribution, amount="5.00", reason="Asked <b>nicely</b>")
    payments.record_dispute(
        payment, provider_id="dp_123", amount=Decimal("45.00"), status="needs_response"
    )

    refunds = client.get(reverse(f"{NAMESPACES['refund']}:list")).content.decode()
    assert "5.00 GBP" in refunds
    assert "<b>nicely" not in refunds
    refund = Refund.objects.get()
    page = client.get(reverse(f"{NAMESPACES['refund']}:inspect", args=[refund.pk]))
    assert reverse(f"{NAMESPACES['payment']}:inspect", args=[payment.pk]) in page.content.decode()

    disputes = client.get(reverse(f"{NAMESPACES['dispute']}:list"), {"q": "dp_123"})
    assert "dp_123" in disputes.content.decode()
    assert "45.00 GBP" in disputes.content.decode()


def test_webhook_events_filter_by_status_and_type_and_search_by_event_id(client):
    staff(client, "crm_payments.view_webhookevent")
    webhook_event(1, status="processed")
    webhook_event(2, status="failed", error="boom", event_type="charge.refunded")
    url = reverse(f"{NAMESPACES['webhookevent']}:list")

    def shown(**params):
        return [row.event_id for row in client.get(url, params).context["object_list"]]

    assert shown(status="failed") == ["evt_2"]
    assert shown(event_type="charge.") == ["evt_2"]
    assert shown(q="evt_1") == ["evt_1"]
    event = WebhookEvent.objects.get(event_id="evt_2")
    page = client.get(reverse(f"{NAMESPACES['webhookevent']}:inspect", args=[event.pk]))
    assert "boom" in page.content.decode()


# -- payment blocks -------------------------------------------------------------------------------


def test_staff_see_blocks_and_lift_one(client):
    user = staff(client, "crm_payments.view_paymentblock", "crm_payments.change_paymentblock")
    block = blocked_ip()
    lift = reverse(f"{BLOCKS}:lift", args=[block.pk])

    listing = client.get(reverse(f"{BLOCKS}:list")).content.decode()
    assert "198.51.100.9" in listing and "In force" in listing
    assert lift in listing
    assert client.get(lift).status_code == 200

    response = client.post(lift)

    assert response.status_code == 302
    block.refresh_from_db()
    assert (block.is_active, block.lifted_by) == (False, user)
    velocity.check_payment_start(ip="198.51.100.9")
    assert "Lifted" in client.get(reverse(f"{BLOCKS}:list")).content.decode()


def test_view_only_staff_cannot_lift_a_block(client):
    staff(client, "crm_payments.view_paymentblock")
    block = blocked_ip()
    lift = reverse(f"{BLOCKS}:lift", args=[block.pk])

    assert lift not in client.get(reverse(f"{BLOCKS}:list")).content.decode()
    assert lift not in client.get(reverse(f"{BLOCKS}:inspect", args=[block.pk])).content.decode()
    assert refused(client.post(lift))
    block.refresh_from_db()
    assert block.is_active


def test_the_block_page_offers_lifting_to_those_allowed(client):
    staff(client, "crm_payments.view_paymentblock", "crm_payments.change_paymentblock")
    block = blocked_ip()
    page = client.get(reverse(f"{BLOCKS}:inspect", args=[block.pk])).content.decode()
    assert reverse(f"{BLOCKS}:lift", args=[block.pk]) in page


@pytest.mark.parametrize("pk", ["999999", "x", "-1", str(10**30)])
def test_lifting_an_unknown_block_is_a_404(client, superuser, pk):
    client.force_login(superuser)
    url = reverse(f"{BLOCKS}:lift", args=[1]).replace("/1/", f"/{pk}/")
    assert client.post(url).status_code == 404


def test_blocks_filter_by_state(client):
    staff(client, "crm_payments.view_paymentblock")
    active = blocked_ip("198.51.100.1")
    velocity.lift_block(blocked_ip("198.51.100.2"))
    url = reverse(f"{BLOCKS}:list")
    assert [b.pk for b in client.get(url, {"active": "true"}).context["object_list"]] == [active.pk]
    assert len(client.get(url, {"active": "false"}).context["object_list"]) == 1


# -- the contribution's refund and payment actions use the payment services ---------------


def test_refunding_a_card_payment_in_the_admin_sends_it_back_through_the_provider(
    client, fake_card
):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    contribution = paid_by_card()

    response = client.post(
        reverse(f"{CONTRIBUTIONS}:refund", args=[contribution.pk]),
        {"amount": "20.00", "reason": "Asked"},
    )

    assert response.status_code == 302
    assert fake_card.refunded == [Decimal("20.00")]
    contribution.refresh_from_db()
    assert contribution.status == ContributionStatus.PARTIALLY_REFUNDED
    assert Refund.objects.get().provider == "fakecard"


def test_a_provider_refusal_is_shown_to_staff_and_changes_nothing(client, fake_card):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    contribution = paid_by_card()
    fake_card.refund_answer = "error"

    response = client.post(reverse(f"{CONTRIBUTIONS}:refund", args=[contribution.pk]), {})

    assert response.status_code == 200
    assert "The card issuer refused the refund." in response.content.decode()
    contribution.refresh_from_db()
    assert contribution.status == ContributionStatus.COMPLETED
    assert Refund.objects.get().status == RefundStatus.FAILED


def test_a_refund_the_provider_confirms_later_says_so(client, fake_card):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    contribution = paid_by_card()
    fake_card.refund_answer = "pending"

    response = client.post(
        reverse(f"{CONTRIBUTIONS}:refund", args=[contribution.pk]), {}, follow=True
    )

    assert "when the provider confirms it" in response.content.decode()
    contribution.refresh_from_db()
    assert contribution.status == ContributionStatus.COMPLETED


def test_refunding_an_offline_payment_in_the_admin_records_it_once(client):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    contribution = paid_offline()

    client.post(reverse(f"{CONTRIBUTIONS}:refund", args=[contribution.pk]), {"amount": "50.00"})

    contribution.refresh_from_db()
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("50.00"))
    assert Refund.objects.get().status == RefundStatus.SUCCEEDED


def test_recording_a_cheque_settles_the_open_pay_later_payment(client):
    staff(client, "crm_core.view_contribution", "crm_core.record_offline_payment")
    contribution = pending()
    payment, _start = payments.start_payment(
        contribution, provider="offline", return_url="/", cancel_url="/"
    )

    response = client.post(
        reverse(f"{CONTRIBUTIONS}:record_payment", args=[contribution.pk]),
        {"payment_method": "cheque", "received_at": "", "transaction_id": "000042"},
    )

    assert response.status_code == 302
    payment.refresh_from_db()
    contribution.refresh_from_db()
    assert (payment.status, contribution.status) == ("succeeded", "completed")


def test_the_refund_permission_is_still_required(client):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    contribution = paid_offline()
    assert refused(client.post(reverse(f"{CONTRIBUTIONS}:refund", args=[contribution.pk]), {}))
    assert not Refund.objects.exists()


# -- queries ------------------------------------------------------------------------------


def make_rows(count, start):
    for number in range(start, start + count):
        contribution = paid_offline("5.00")
        payments.refund_contribution(contribution, amount="1.00")
        payments.record_dispute(
            contribution.payments.get(),
            provider_id=f"dp_{number}",
            amount=Decimal("5.00"),
            status="needs_response",
        )
        webhook_event(number)
        blocked_ip(f"198.51.100.{number}")


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("name", NAMESPACES)
def test_listings_run_the_same_queries_for_three_rows_as_for_twenty_five(
    client, superuser, name, django_assert_num_queries
):
    client.force_login(superuser)
    url = reverse(f"{NAMESPACES[name]}:list")
    make_rows(3, start=1)
    three = count_queries(client, url)
    make_rows(22, start=4)
    with django_assert_num_queries(three):
        client.get(url)
