"""The pages Stripe Checkout sends the visitor back to: paid, processing,
failed, cancelled; never a 500, never personal data."""

import uuid

import pytest
from django.urls import reverse

from crm_core.models import ContributionStatus
from crm_payments.models import PaymentStatus
from crm_payments.services import payments
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_payment(fake_stripe, pending_donation):
    payment, _start = payments.start_payment(
        pending_donation,
        provider="stripe",
        return_url="https://site.example/thanks/",
        cancel_url="https://site.example/back/",
    )
    return payment


def return_page(client, payment, **query):
    return client.get(reverse("crm_payments:return", args=[payment.reference]), query)


def cancel_page(client, payment, **query):
    return client.get(reverse("crm_payments:cancel", args=[payment.reference]), query)


def text(response):
    return response.content.decode()


def test_the_thank_you_page_says_paid_before_any_webhook_arrives(
    client, fake_stripe, stripe_payment
):
    fake_stripe.pay(stripe_payment.provider_id)  # no webhook configured: none is sent

    response = return_page(client, stripe_payment)

    assert response.status_code == 200
    assert "your payment was received" in text(response)
    assert "25.00 GBP" in text(response)
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == PaymentStatus.SUCCEEDED
    assert stripe_payment.contribution.status == ContributionStatus.COMPLETED
    assert fake_stripe.deliveries == []


def test_a_bank_debit_still_clearing_is_shown_as_processing(client, fake_stripe, stripe_payment):
    fake_stripe.pay(stripe_payment.provider_id, delayed=True)

    response = return_page(client, stripe_payment)

    assert response.status_code == 200
    assert "your payment is being processed" in text(response)
    assert "You do not need to pay again" in text(response)
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == PaymentStatus.PENDING


def test_a_bounced_payment_says_so_and_offers_to_try_again(client, fake_stripe, stripe_payment):
    fake_stripe.pay(stripe_payment.provider_id, delayed=True)
    fake_stripe.settle(stripe_payment.provider_id, succeeded=False)

    response = return_page(client, stripe_payment, back="/donate/")

    assert response.status_code == 200
    assert "Your payment did not go through" in text(response)
    assert 'href="/donate/"' in text(response)
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == PaymentStatus.FAILED


def test_try_again_never_leads_to_another_site(client, fake_stripe, stripe_payment):
    fake_stripe.pay(stripe_payment.provider_id, delayed=True)
    fake_stripe.settle(stripe_payment.provider_id, succeeded=False)

    response = return_page(client, stripe_payment, back="https://evil.example/")

    assert "evil.example" not in text(response)
    assert 'href="/"' in text(response)


def test_stripe_unreachable_shows_processing_not_an_error(client, fake_stripe, stripe_payment):
    fake_stripe.stop()

    response = return_page(client, stripe_payment)

    assert response.status_code == 200
    assert "your payment is being processed" in text(response)
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == PaymentStatus.PENDING


def test_the_cancel_page_says_nothing_was_charged_and_changes_nothing(
    client, fake_stripe, stripe_payment
):
    response = cancel_page(client, stripe_payment)

    assert response.status_code == 200
    assert "You cancelled the payment" in text(response)
    assert "Nothing was charged" in text(response)
    # The checkout page is still open: the visitor may go back to it.
    assert f'href="{stripe_payment.redirect_url}"' in text(response)
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == PaymentStatus.PENDING
    assert not [r for r in fake_stripe.requests if r["path"].startswith("/v1/checkout")][1:]


@pytest.mark.parametrize("page", [return_page, cancel_page])
def test_an_unknown_payment_reference_is_not_found(client, fake_stripe, page):
    class Unknown:
        reference = uuid.uuid4()

    assert page(client, Unknown).status_code == 404


@pytest.mark.parametrize("page", [return_page, cancel_page])
def test_payment_pages_show_no_personal_data_and_are_not_cached(client, fake_stripe, page):
    contact = ContactFactory(first_name="Zelda", last_name="Quimby", emails=["zq@example.org"])
    contribution = payments.core.create_pending(
        contact,
        currency="GBP",
        lines=[{"kind": "donation", "amount": "5.00", "label": "Gift"}],
        source="tests",
    )
    payment, _ = payments.start_payment(
        contribution, provider="stripe", return_url="/r/", cancel_url="/c/"
    )

    response = page(client, payment)

    assert response.status_code == 200
    for private in ("Zelda", "Quimby", "zq@example.org"):
        assert private not in text(response)
    assert "no-cache" in response["Cache-Control"]
    assert "<h1" in text(response) and "<main" in text(response)
    assert "<script" not in text(response) and "style=" not in text(response)


@pytest.mark.django_db
def test_visitor_urls_send_the_visitor_back_to_this_payments_own_pages(
    rf, fake_stripe, pending_donation
):
    from crm_payments.views import visitor_urls

    urls = visitor_urls(rf.get("/give/"), back="/give/")
    payment, _start = payments.start_payment(pending_donation, provider="stripe", **urls)
    session = fake_stripe.get(payment.provider_id)
    reference = str(payment.reference)
    assert session["success_url"] == (
        f"http://testserver/crm/payments/return/{reference}/?back=%2Fgive%2F"
    )
    assert session["cancel_url"] == (
        f"http://testserver/crm/payments/cancel/{reference}/?back=%2Fgive%2F"
    )
