"""The Stripe provider against the local fake: Checkout Sessions, customers,
idempotency, status mapping, refunds, subscriptions and errors."""

from decimal import Decimal

import pytest

from crm_core.models import ContributionStatus, FinancialType
from crm_core.services import contributions as contribution_services
from crm_payments.exceptions import ProviderError
from crm_payments.models import Payment, PaymentStatus, ProviderCustomer, Refund, RefundStatus
from crm_payments.providers import get_provider
from crm_payments.services import payments
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

URLS = {"return_url": "https://site.example/thanks/", "cancel_url": "https://site.example/back/"}


def donation(contact, amount, currency, label="Donation to the library fund"):
    return contribution_services.create_pending(
        contact,
        currency=currency,
        lines=[{"kind": "donation", "amount": Decimal(amount), "label": label}],
        source="tests",
    )


def start(contribution, **kwargs):
    return payments.start_payment(contribution, provider="stripe", **URLS, **kwargs)


def session_of(fake, payment):
    return fake.get(payment.provider_id, "checkout.session")


def create_requests(fake, path):
    return [r for r in fake.requests if r["method"] == "POST" and r["path"] == path]


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [("25.00", "GBP", 2500), ("500", "JPY", 500), ("1.230", "KWD", 1230)],
)
def test_one_off_checkout_session_asks_for_the_contribution_total_in_minor_units(
    fake_stripe, amount, currency, units
):
    contribution = donation(ContactFactory(), amount, currency)

    payment, begin = start(contribution)

    session = session_of(fake_stripe, payment)
    [line] = fake_stripe.session_line_items(session["id"])
    assert session["mode"] == "payment"
    assert (line["price"]["currency"], line["price"]["unit_amount"]) == (currency.lower(), units)
    assert line["description"] == "Donation to the library fund"
    assert session["amount_total"] == units
    assert session["client_reference_id"] == str(payment.reference)
    assert session["metadata"] == {
        "crm_payment": str(payment.reference),
        "crm_contribution": str(contribution.reference),
    }
    assert (session["success_url"], session["cancel_url"]) == (
        URLS["return_url"],
        URLS["cancel_url"],
    )
    assert begin.redirect_url == session["url"]
    payment.refresh_from_db()
    assert (payment.status, payment.provider_id) == (PaymentStatus.PENDING, session["id"])


def test_the_payment_intent_carries_our_references_once_paid(fake_stripe, pending_donation):
    payment, _start = start(pending_donation)
    fake_stripe.pay(payment.provider_id)

    [intent] = fake_stripe.objects_of("payment_intent")
    assert intent["metadata"]["crm_payment"] == str(payment.reference)
    assert intent["metadata"]["crm_contribution"] == str(pending_donation.reference)


def test_a_kwd_amount_stripe_cannot_charge_is_refused_before_calling_stripe(fake_stripe):
    contribution = donation(ContactFactory(), "1.234", "KWD")

    with pytest.raises(ProviderError, match="KWD"):
        start(contribution)

    assert fake_stripe.objects_of("checkout.session") == []
    payment = Payment.objects.get(contribution=contribution)
    assert payment.status == PaymentStatus.FAILED
    contribution.refresh_from_db()
    assert contribution.status == ContributionStatus.PENDING


def test_the_contacts_stripe_customer_is_created_once_and_reused(fake_stripe):
    contact = ContactFactory(first_name="Ada", last_name="Byron")
    first, _ = start(donation(contact, "10.00", "GBP"))
    second, _ = start(donation(contact, "20.00", "GBP"))

    [customer] = fake_stripe.objects_of("customer")
    assert customer["name"] == "Ada Byron"
    assert customer["email"] == contact.primary_email.email
    assert session_of(fake_stripe, first)["customer"] == customer["id"]
    assert session_of(fake_stripe, second)["customer"] == customer["id"]
    assert (
        ProviderCustomer.objects.get(contact=contact, provider="stripe").customer_id
        == (customer["id"])
    )
    assert len(create_requests(fake_stripe, "/v1/customers")) == 1


def test_a_customer_deleted_at_stripe_is_replaced_instead_of_failing(fake_stripe):
    contact = ContactFactory()
    ProviderCustomer.objects.create(contact=contact, provider="stripe", customer_id="cus_gone")

    payment, _ = start(donation(contact, "10.00", "GBP"))

    [customer] = fake_stripe.objects_of("customer")
    assert session_of(fake_stripe, payment)["customer"] == customer["id"]
    assert ProviderCustomer.objects.get(contact=contact).customer_id == customer["id"]


def test_starting_one_payment_twice_gives_the_same_session(fake_stripe, pending_donation):
    payment, _ = start(pending_donation)
    first_session = payment.provider_id
    payment.provider_id = ""

    again = get_provider("stripe").start(payment, **URLS)

    assert payment.provider_id == first_session
    assert again.redirect_url == session_of(fake_stripe, payment)["url"]
    assert len(fake_stripe.objects_of("checkout.session")) == 1
    keys = {r["key"] for r in create_requests(fake_stripe, "/v1/checkout/sessions")}
    assert keys == {payment.idempotency_key}


def test_stripe_unreachable_or_refusing_is_a_provider_error_without_secrets(
    fake_stripe, settings, pending_donation
):
    settings.CRM = {**settings.CRM, "STRIPE_SECRET_KEY": "sk_test_wrong_key_123456"}

    with pytest.raises(ProviderError) as raised:
        start(pending_donation)

    assert "sk_test" not in str(raised.value.message)
    assert "Nothing was charged" in str(raised.value.message)
    assert Payment.objects.get(contribution=pending_donation).status == PaymentStatus.FAILED


def recurring_donation(contact, amount="12.00", unit="month", interval=1):
    recurring = contribution_services.create_recurring(
        contact,
        amount=Decimal(amount),
        currency="GBP",
        frequency_unit=unit,
        frequency_interval=interval,
        financial_type=FinancialType.objects.get(slug="donation"),
        source="tests",
    )
    first = contribution_services.create_pending(
        contact,
        currency="GBP",
        lines=[{"kind": "donation", "amount": Decimal(amount), "label": "Monthly gift"}],
        recurring=recurring,
        source="tests",
    )
    return recurring, first


def test_a_standing_order_starts_a_subscription_mode_session(fake_stripe):
    recurring, first = recurring_donation(ContactFactory(), unit="year", interval=1)

    payment, _ = start(first, recurring=recurring)

    session = session_of(fake_stripe, payment)
    [line] = fake_stripe.session_line_items(session["id"])
    assert session["mode"] == "subscription"
    assert line["price"]["unit_amount"] == 1200
    assert line["price"]["recurring"] == {"interval": "year", "interval_count": 1}
    assert session["metadata"]["crm_recurring"] == str(recurring.reference)

    fake_stripe.pay(session["id"])
    [subscription] = fake_stripe.objects_of("subscription")
    assert subscription["metadata"]["crm_recurring"] == str(recurring.reference)
    assert subscription["metadata"]["crm_payment"] == str(payment.reference)


def test_a_paid_subscription_session_reports_the_first_invoices_payment(fake_stripe):
    recurring, first = recurring_donation(ContactFactory())
    payment, _ = start(first, recurring=recurring)
    fake_stripe.pay(payment.provider_id)

    state = get_provider("stripe").fetch_status(payment)

    [invoice] = fake_stripe.objects_of("invoice")
    [intent] = fake_stripe.objects_of("payment_intent")
    assert invoice["billing_reason"] == "subscription_create"
    assert state.status == PaymentStatus.SUCCEEDED
    assert (state.transaction_id, state.payment_intent_id) == (intent["id"], intent["id"])
    assert state.extra["subscription"] == fake_stripe.objects_of("subscription")[0]["id"]


def test_a_first_instalment_unlike_the_standing_order_is_refused(fake_stripe):
    recurring, _ = recurring_donation(ContactFactory(), amount="12.00")
    other = donation(recurring.contact, "15.00", "GBP")

    with pytest.raises(ProviderError):
        start(other, recurring=recurring)
    assert fake_stripe.objects_of("checkout.session") == []


def open_session(fake, payment):
    """Nothing happened yet: the visitor is on the checkout page."""


def paid(fake, payment):
    fake.pay(payment.provider_id)


def declined(fake, payment):
    fake.decline(payment.provider_id)


def expired(fake, payment):
    fake.expire(payment.provider_id)


def clearing(fake, payment):
    fake.pay(payment.provider_id, delayed=True)


def bounced(fake, payment):
    fake.pay(payment.provider_id, delayed=True)
    fake.settle(payment.provider_id, succeeded=False)


def cleared(fake, payment):
    fake.pay(payment.provider_id, delayed=True)
    fake.settle(payment.provider_id)


@pytest.mark.parametrize(
    ("what_happened", "status"),
    [
        (open_session, PaymentStatus.PENDING),
        (declined, PaymentStatus.PENDING),  # the visitor may try another card
        (paid, PaymentStatus.SUCCEEDED),
        (expired, PaymentStatus.CANCELLED),
        (clearing, PaymentStatus.PENDING),
        (bounced, PaymentStatus.FAILED),
        (cleared, PaymentStatus.SUCCEEDED),
    ],
)
def test_fetch_status_maps_the_checkout_session_to_our_payment_status(
    fake_stripe, pending_donation, what_happened, status
):
    payment, _ = start(pending_donation)
    what_happened(fake_stripe, payment)

    state = get_provider("stripe").fetch_status(payment)

    assert state.status == status
    if status == PaymentStatus.SUCCEEDED:
        [intent] = fake_stripe.objects_of("payment_intent")
        assert state.transaction_id == state.payment_intent_id == intent["id"]
        assert state.charge_id == intent["latest_charge"]


def paid_donation(fake, contribution):
    payment, _ = start(contribution)
    fake.pay(payment.provider_id)
    return payments.sync_payment(payment)


def test_a_partial_refund_goes_back_through_stripe_once(fake_stripe, pending_donation):
    payment = paid_donation(fake_stripe, pending_donation)

    refund = payments.refund_contribution(pending_donation, amount="10.00", reason="asked")

    [stripe_refund] = fake_stripe.objects_of("refund")
    assert stripe_refund["amount"] == 1000
    assert stripe_refund["payment_intent"] == payment.payment_intent_id
    assert stripe_refund["metadata"]["crm_refund"] == str(refund.reference)
    assert (refund.status, refund.provider_id) == (RefundStatus.SUCCEEDED, stripe_refund["id"])
    pending_donation.refresh_from_db()
    assert pending_donation.status == ContributionStatus.PARTIALLY_REFUNDED
    assert pending_donation.refunded_amount == Decimal("10.00")
    # A retry (a crash before we saved the answer) gets the same refund back.
    assert get_provider("stripe").refund(refund).provider_id == stripe_refund["id"]
    assert len(fake_stripe.objects_of("refund")) == 1
    keys = {r["key"] for r in create_requests(fake_stripe, "/v1/refunds")}
    assert keys == {refund.idempotency_key}


@pytest.mark.parametrize(
    ("stripe_status", "ours"),
    [
        ("succeeded", RefundStatus.SUCCEEDED),
        ("pending", RefundStatus.PENDING),
        ("requires_action", RefundStatus.PENDING),
        ("failed", RefundStatus.FAILED),
        ("canceled", RefundStatus.FAILED),
    ],
)
def test_stripes_refund_status_is_mapped_to_ours(
    fake_stripe, pending_donation, stripe_status, ours
):
    payment = paid_donation(fake_stripe, pending_donation)
    fake_stripe.next_refund_status = stripe_status
    refund = Refund.objects.create(
        payment=payment,
        provider="stripe",
        contribution=pending_donation,
        amount=Decimal("25.00"),
        currency="GBP",
    )

    result = get_provider("stripe").refund(refund)

    assert result.status == ours
    assert result.provider_id == fake_stripe.objects_of("refund")[0]["id"]


def test_a_refund_stripe_refuses_is_a_provider_error_and_the_refund_is_failed(
    fake_stripe, pending_donation
):
    payment = paid_donation(fake_stripe, pending_donation)
    fake_stripe.refund(payment.payment_intent_id)  # all of it, from Stripe's dashboard

    with pytest.raises(ProviderError, match="charge_already_refunded"):
        payments.refund_contribution(pending_donation, amount="5.00")

    refund = Refund.objects.get(contribution=pending_donation)
    assert refund.status == RefundStatus.FAILED
    pending_donation.refresh_from_db()
    assert pending_donation.refunded_amount == 0


def test_cancelling_a_subscription_twice_is_fine(fake_stripe):
    recurring, first = recurring_donation(ContactFactory())
    payment, _ = start(first, recurring=recurring)
    fake_stripe.pay(payment.provider_id)
    recurring.processor_id = fake_stripe.objects_of("subscription")[0]["id"]

    get_provider("stripe").cancel_subscription(recurring)
    get_provider("stripe").cancel_subscription(recurring)

    assert fake_stripe.objects_of("subscription")[0]["status"] == "canceled"
    assert len(fake_stripe.events_of_type("customer.subscription.deleted")) == 1
