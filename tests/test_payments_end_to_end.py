"""The whole Stripe story end to end, against the local fake on 127.0.0.1.

Our code starts payments and refunds as in production; the fake plays the
visitor, the bank and Stripe's clock (pay, renew, fail, refund, dispute,
cancel) and keeps every event it would have sent. Events are posted to the
webhook endpoint with the Django test client, signed with stripe's own
signature code, in order, shuffled, twice; one test lets the fake post them
itself over HTTP to a live server. After each step we compare the rows a
member of staff would see, so "nothing changed" means nothing changed.
"""

import datetime
import json
import random
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.models import (
    Activity,
    Contribution,
    FinancialType,
    Membership,
    Participant,
    RecurringContribution,
)
from crm_core.services import contributions as contribution_services
from crm_core.services import events as event_services
from crm_core.services import memberships as membership_services
from crm_payments.exceptions import PaymentBlocked
from crm_payments.models import (
    Dispute,
    Payment,
    PaymentBlock,
    Refund,
    VelocityEvent,
    WebhookEvent,
)
from crm_payments.providers import get_provider
from crm_payments.services import payments
from tests.factories import (
    ContactFactory,
    EventFeeLevelFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
)
from tests.payments_fixtures import WEBHOOK_SECRET, sign_webhook

pytestmark = pytest.mark.django_db

WEBHOOK = "/crm/payments/stripe/webhook/"
REFUNDS = reverse("crm_payments_api:refund-list")
URLS = {"return_url": "https://site.example/thanks/", "cancel_url": "https://site.example/back/"}
IP = "203.0.113.9"


# -- helpers ----------------------------------------------------------------------------------


def post_event(client, event, **sign):
    body, header = sign_webhook(event if isinstance(event, str) else json.dumps(event), **sign)
    return client.post(WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def deliver(client, events):
    """Post each event, signed; every one must be accepted (200)."""
    statuses = [post_event(client, event).status_code for event in events]
    assert statuses == [200] * len(statuses), [e["type"] for e in events]


class Outbox:
    """The fake's events not yet delivered, handed out once each."""

    def __init__(self, fake):
        self.fake = fake
        self.sent = 0

    def new(self):
        events = list(self.fake.events[self.sent :])
        self.sent += len(events)
        return events


def start(contribution, **kwargs):
    return payments.start_payment(contribution, provider="stripe", **URLS, **kwargs)


def donation(contact, amount="25.00"):
    return contribution_services.create_pending(
        contact,
        currency="GBP",
        lines=[{"kind": "donation", "amount": Decimal(amount), "label": "Donation"}],
        source="tests",
    )


def fresh(row):
    return type(row).objects.get(pk=row.pk)


def _contribution_key(contribution):
    """A contribution named by its payments' Stripe ids: the same whatever its pk."""
    ids = sorted(p.provider_id for p in contribution.payments.all())
    return ",".join(ids) or str(contribution.reference)


def snapshot():
    """Everything staff would see of contributions, payments and what they pay for.

    Keyed by Stripe ids and pre-existing rows, never by the pk of a row the
    events create, so two runs that roll back in between compare equal.
    """
    contributions = {}
    for contribution in Contribution.objects.prefetch_related("payments", "line_items"):
        contributions[_contribution_key(contribution)] = (
            contribution.contact_id,
            contribution.status,
            contribution.total_amount,
            contribution.refunded_amount,
            contribution.is_disputed,
            contribution.transaction_id,
            contribution.recurring_id,
            sorted(
                (line.kind, line.line_total, bool(line.applied_at), line.term_start, line.term_end)
                for line in contribution.line_items.all()
            ),
        )
    return {
        "contributions": contributions,
        "payments": sorted(
            (
                p.provider_id,
                p.status,
                p.amount,
                p.payment_intent_id,
                p.charge_id,
                p.needs_attention,
                p.failure_reason,
            )
            for p in Payment.objects.all()
        ),
        "refunds": sorted(
            (r.provider_id, r.amount, r.status, r.applied_at is not None, r.failure_reason)
            for r in Refund.objects.all()
        ),
        "disputes": sorted((d.provider_id, d.status, d.amount) for d in Dispute.objects.all()),
        "memberships": sorted(
            (m.pk, m.status, m.start_date, m.end_date) for m in Membership.objects.all()
        ),
        "participants": sorted(Participant.objects.values_list("pk", "status")),
        "recurring": sorted(
            RecurringContribution.objects.values_list("pk", "status", "processor_id", "next_date")
        ),
        "history": Counter(Activity.objects.values_list("contact_id", "subject")),
        "velocity": Counter(VelocityEvent.objects.values_list("kind", "ip", "email")),
        "blocks": PaymentBlock.objects.count(),
    }


def handled():
    """(event id, outcome) of every webhook event stored."""
    return sorted(WebhookEvent.objects.values_list("event_id", "status"))


def completions(contact):
    return Activity.objects.filter(contact=contact, subject__endswith=" completed").count()


@pytest.fixture
def staff_api(superuser):
    api = APIClient()
    api.force_authenticate(superuser)
    return api


# -- 1. one-off donation ----------------------------------------------------------------------


def test_a_one_off_donation_is_paid_once_replays_change_nothing_and_refunds_count_once(
    client, fake_stripe, pending_donation, staff_api
):
    outbox = Outbox(fake_stripe)
    payment, begin = start(pending_donation, email="donor@example.org", client_ip=IP)
    assert begin.redirect_url.startswith(fake_stripe.url)

    fake_stripe.pay(payment.provider_id)
    page = client.get(reverse("crm_payments:return", args=[payment.reference]))

    assert "your payment was received" in page.content.decode()
    assert WebhookEvent.objects.count() == 0
    deliver(client, outbox.new())
    contribution = fresh(pending_donation)
    [intent] = fake_stripe.objects_of("payment_intent")
    assert contribution.status == "completed"
    assert contribution.transaction_id == intent["id"]
    [paid] = Payment.objects.filter(contribution=contribution)
    assert (paid.status, paid.payment_intent_id, paid.charge_id) == (
        "succeeded",
        intent["id"],
        intent["latest_charge"],
    )
    assert completions(contribution.contact) == 1

    before = snapshot()
    deliver(client, fake_stripe.events)
    assert snapshot() == before

    partial = staff_api.post(
        REFUNDS, {"contribution": contribution.pk, "amount": "10.00", "reason": "Asked"}, "json"
    )
    assert (partial.status_code, partial.json()["status"]) == (201, "succeeded")
    deliver(client, outbox.new())
    assert fresh(contribution).status == "partially_refunded"
    assert fresh(contribution).refunded_amount == Decimal("10.00")

    rest = staff_api.post(REFUNDS, {"contribution": contribution.pk}, "json")
    assert (rest.status_code, rest.json()["amount"]) == (201, "15.00")
    deliver(client, outbox.new())
    deliver(client, fake_stripe.events)

    contribution = fresh(contribution)
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("25.00"))
    stripe_refunds = fake_stripe.objects_of("refund")
    assert sorted(r["amount"] for r in stripe_refunds) == [1000, 1500]
    assert sorted(Refund.objects.values_list("provider_id", "amount", "status")) == sorted(
        (r["id"], Decimal(r["amount"]) / 100, "succeeded") for r in stripe_refunds
    )
    assert Activity.objects.filter(contact=contribution.contact, subject__contains="refunded")
    assert (
        Activity.objects.filter(contact=contribution.contact, subject__endswith="refunded").count()
        == 2
    )


# -- 2. event fee -------------------------------------------------------------------------------


def paid_registration(event_fee_level):
    contact = ContactFactory()
    [seat] = event_services.register(
        event_fee_level.event,
        registered_by=contact,
        attendees=[{"contact": contact, "fee_level": event_fee_level}],
    )
    contribution = contribution_services.create_pending(
        contact,
        currency="GBP",
        lines=[{"kind": "event_fee", "amount": event_fee_level.amount, "participant": seat}],
        source="tests",
    )
    return seat, contribution


def test_a_paid_event_fee_confirms_the_seat_and_an_expired_checkout_releases_it(
    client, fake_stripe
):
    level = EventFeeLevelFactory(event__capacity=2)
    outbox = Outbox(fake_stripe)
    seat, fee = paid_registration(level)
    other_seat, other_fee = paid_registration(level)
    assert (seat.status, other_seat.status) == ("pending_payment", "pending_payment")
    paying, _ = start(fee)
    leaving, _ = start(other_fee)

    fake_stripe.pay(paying.provider_id)
    fake_stripe.expire(leaving.provider_id)
    deliver(client, outbox.new())

    assert (fresh(fee).status, fresh(seat).status) == ("completed", "registered")
    assert (fresh(other_fee).status, fresh(other_seat).status) == ("cancelled", "cancelled")
    assert fresh(leaving).status == "cancelled"
    before = snapshot()
    deliver(client, fake_stripe.events)
    assert snapshot() == before


# -- 3. subscriptions ---------------------------------------------------------------------------


def membership_standing_order(contact):
    membership = membership_services.join(contact, MembershipTypeFactory(), pending=True)
    recurring = contribution_services.create_recurring(
        contact,
        amount=Decimal("30.00"),
        currency="GBP",
        frequency_unit="year",
        financial_type=membership.membership_type.financial_type,
        membership=membership,
        source="tests",
    )
    first = contribution_services.create_pending(
        contact,
        currency="GBP",
        lines=[{"kind": "membership", "amount": Decimal("30.00"), "membership": membership}],
        recurring=recurring,
        source="tests",
    )
    return membership, recurring, first


def monthly_gift(contact, amount="12.00"):
    recurring = contribution_services.create_recurring(
        contact,
        amount=Decimal(amount),
        currency="GBP",
        frequency_unit="month",
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


def one_year_on(day):
    return day.replace(year=day.year + 1)


def test_a_membership_subscription_pays_renews_fails_retries_refunds_and_cancels(
    client, fake_stripe
):
    outbox = Outbox(fake_stripe)
    membership, recurring, first = membership_standing_order(ContactFactory())
    payment, _ = start(first, recurring=recurring)

    # Paid in Checkout.
    fake_stripe.pay(payment.provider_id)
    deliver(client, outbox.new())
    [subscription] = fake_stripe.objects_of("subscription")
    membership, recurring = fresh(membership), fresh(recurring)
    assert fresh(first).status == "completed"
    assert membership.status in ("new", "current")
    assert (recurring.status, recurring.processor, recurring.processor_id) == (
        "in_progress",
        "stripe",
        subscription["id"],
    )
    first_end = membership.end_date

    # Renewed by Stripe: one new contribution, one more term.
    fake_stripe.renew(subscription["id"])
    deliver(client, outbox.new())
    deliver(client, fake_stripe.events)
    assert recurring.contributions.count() == 2
    renewal = recurring.contributions.exclude(pk=first.pk).get()
    assert renewal.status == "completed"
    assert [line.kind for line in renewal.line_items.all()] == ["membership"]
    assert fresh(membership).end_date == one_year_on(first_end)

    # The next invoice fails, then a retry pays it, once.
    failing = fake_stripe.fail_next_invoice(subscription["id"])
    deliver(client, outbox.new())
    [attempt] = Payment.objects.filter(provider_id=failing["id"])
    assert attempt.status == "failed"
    assert attempt.contribution.status == "failed"
    assert fresh(membership).end_date == one_year_on(first_end)
    fake_stripe.retry_invoice(failing["id"])
    deliver(client, outbox.new())
    deliver(client, fake_stripe.events)
    attempt = fresh(attempt)
    assert attempt.status == "succeeded"
    assert attempt.contribution.status == "completed"
    assert recurring.contributions.count() == 3
    assert fresh(membership).end_date == one_year_on(one_year_on(first_end))

    # Staff refund the last instalment: its term is revoked (the default policy).
    refund = payments.refund_contribution(attempt.contribution, reason="Paid twice")
    deliver(client, outbox.new())
    assert fresh(refund).status == "succeeded"
    assert fresh(attempt.contribution).status == "refunded"
    assert fresh(membership).end_date == one_year_on(first_end)
    assert Refund.objects.count() == 1

    # Cancelled from our side: Stripe confirms, the standing order ends.
    get_provider("stripe").cancel_subscription(fresh(recurring))
    assert fake_stripe.get(subscription["id"])["status"] == "canceled"
    deliver(client, outbox.new())
    assert fresh(recurring).status == "cancelled"
    before = snapshot()
    deliver(client, fake_stripe.events)
    assert snapshot() == before
    assert recurring.contributions.count() == 3


def test_a_monthly_gift_without_membership_pays_renews_and_is_cancelled_at_stripe(
    client, fake_stripe
):
    outbox = Outbox(fake_stripe)
    recurring, first = monthly_gift(ContactFactory())
    payment, _ = start(first, recurring=recurring)

    fake_stripe.pay(payment.provider_id)
    [subscription] = fake_stripe.objects_of("subscription")
    fake_stripe.renew(subscription["id"])
    fake_stripe.renew(subscription["id"])
    deliver(client, outbox.new())
    fake_stripe.cancel(subscription["id"])
    deliver(client, outbox.new())

    recurring = fresh(recurring)
    assert recurring.status == "cancelled"
    gifts = recurring.contributions.order_by("id")
    assert [(c.status, c.total_amount) for c in gifts] == [("completed", Decimal("12.00"))] * 3
    assert all(line.kind == "donation" for c in gifts for line in c.line_items.all())
    before = snapshot()
    deliver(client, fake_stripe.events)
    assert snapshot() == before


# -- 4. any order, any number of times ----------------------------------------------------------


def both_cycles(fake):
    """Cycles 1 and 3 acted out at the fake only; no event delivered. Returns the contacts."""
    one_off = donation(ContactFactory())
    payment, _ = start(one_off, email="donor@example.org", client_ip=IP)
    fake.pay(payment.provider_id)
    intent = fake.get(payment.provider_id)["payment_intent"]
    fake.refund(intent, 1000)
    fake.refund(intent)

    membership, recurring, first = membership_standing_order(ContactFactory())
    sub_payment, _ = start(first, recurring=recurring)
    fake.pay(sub_payment.provider_id)
    [subscription] = fake.objects_of("subscription")
    fake.renew(subscription["id"])
    failing = fake.fail_next_invoice(subscription["id"])
    fake.retry_invoice(failing["id"])
    invoice_payment = next(
        p for p in fake.objects_of("invoice_payment") if p["invoice"] == failing["id"]
    )
    fake.refund(invoice_payment["payment"]["payment_intent"])
    fake.cancel(subscription["id"])
    return one_off, membership, recurring


def delivered(client, events):
    """The state after delivering ``events``, then rolled back to before."""
    with transaction.atomic():
        deliver(client, events)
        state = snapshot()
        transaction.set_rollback(True)
    return state


def test_events_delivered_in_any_order_and_twice_give_the_in_order_state(client, fake_stripe):
    one_off, membership, recurring = both_cycles(fake_stripe)
    events = list(fake_stripe.events)

    expected = delivered(client, events)

    # The in-order state is the right one, not only a stable one.
    assert expected["contributions"][fresh(one_off).payments.get().provider_id][1] == "refunded"
    assert [r[1] for r in expected["recurring"] if r[0] == recurring.pk] == ["cancelled"]
    by_status = Counter(c[1] for c in expected["contributions"].values())
    assert by_status == Counter({"completed": 2, "refunded": 2})
    assert len(expected["refunds"]) == 3
    for seed in (1, 7, 2026):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        assert delivered(client, shuffled) == expected, seed
        assert delivered(client, shuffled + shuffled) == expected, seed
    assert delivered(client, events[::-1] * 2) == expected


# -- 5. forged, replayed, malformed -------------------------------------------------------------


def test_forged_replayed_and_malformed_events_change_nothing(client, fake_stripe, pending_donation):
    payment, _ = start(pending_donation, client_ip=IP)
    session = fake_stripe.get(payment.provider_id)
    # What a paid session's event would look like; Stripe itself says unpaid.
    lying = {
        "id": "evt_lie",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {"object": {**session, "status": "complete", "payment_status": "paid"}},
    }
    paid_session_event = {**lying, "id": "evt_paid"}
    before = snapshot()

    refused = [
        post_event(client, paid_session_event, secret="whsec_not_ours"),
        post_event(
            client,
            paid_session_event,
            timestamp=int(datetime.datetime.now(datetime.UTC).timestamp()) - 3600,
        ),
        post_event(client, json.dumps(paid_session_event)[:-20]),
        post_event(client, {**lying, "id": "evt_int", "data": {"object": {"id": 12345}}}),
        post_event(client, {**lying, "id": "evt_str", "data": {"object": "cs_x"}}),
        post_event(client, {**lying, "id": "evt_list", "data": []}),
        post_event(client, {**lying, "id": ["evt_x"]}),
        post_event(client, {**lying, "id": "evt_type", "type": {"a": 1}}),
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)

    ignored_or_empty = [
        post_event(client, lying),
        post_event(
            client,
            {**lying, "id": "evt_unknown", "data": {"object": {"id": "cs_test_nobody"}}},
        ),
        post_event(
            client,
            {
                **lying,
                "id": "evt_wrong_kind",
                "type": "invoice.paid",
                "data": {"object": {"id": payment.provider_id}},
            },
        ),
        post_event(
            client,
            {
                **lying,
                "id": "evt_bad_types",
                "type": "charge.refunded",
                "data": {"object": {"id": "ch_nobody", "amount": "lots", "refunds": 3}},
            },
        ),
    ]
    assert [r.status_code for r in ignored_or_empty] == [200] * len(ignored_or_empty)
    assert snapshot() == before
    assert fresh(payment).status == "pending"

    # Paid for real now: the same lying event, replayed, applies Stripe's state once.
    fake_stripe.pay(payment.provider_id)
    replay = post_event(client, {**lying, "id": "evt_paid_for_real"})
    assert replay.status_code == 200
    after = snapshot()
    assert fresh(payment).status == "succeeded"
    for _i in range(2):
        assert post_event(client, {**lying, "id": "evt_paid_for_real"}).json() == {
            "status": "duplicate"
        }
        assert post_event(client, lying).status_code == 200
    assert snapshot() == after
    assert completions(pending_donation.contact) == 1


def test_a_replayed_event_signed_long_ago_is_refused_even_with_the_right_secret(
    client, fake_stripe, pending_donation
):
    payment, _ = start(pending_donation)
    fake_stripe.pay(payment.provider_id)
    event = fake_stripe.events_of_type("checkout.session.completed")[-1]
    old = int(datetime.datetime.now(datetime.UTC).timestamp()) - 301

    response = post_event(client, event, timestamp=old, secret=WEBHOOK_SECRET)

    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0
    assert fresh(payment).status == "pending"


# -- 6. missed webhooks -------------------------------------------------------------------------


def reconcile():
    out = StringIO()
    call_command("crm_stripe_reconcile", "--since", "1d", stdout=out)
    return out.getvalue().splitlines()


def test_reconcile_repairs_a_payment_and_a_dashboard_refund_no_webhook_reported(
    fake_stripe, pending_donation
):
    payment, _ = start(pending_donation)
    fake_stripe.pay(payment.provider_id)

    lines = reconcile()

    assert any("pending -> succeeded" in line for line in lines), lines
    assert fresh(pending_donation).status == "completed"
    assert reconcile() == ["Nothing to repair."]

    intent = fake_stripe.get(payment.provider_id)["payment_intent"]
    dashboard = fake_stripe.refund(intent, 500)
    lines = reconcile()

    assert any(dashboard["id"] in line for line in lines), lines
    contribution = fresh(pending_donation)
    assert (contribution.status, contribution.refunded_amount) == (
        "partially_refunded",
        Decimal("5.00"),
    )
    assert Refund.objects.get().provider_id == dashboard["id"]
    assert reconcile() == ["Nothing to repair."]


# -- 7. card testing ----------------------------------------------------------------------------


def test_ten_declines_reported_by_stripe_block_the_next_payment_from_that_ip(client, fake_stripe):
    outbox = Outbox(fake_stripe)
    for attempt in range(10):
        payment, _ = start(
            donation(ContactFactory(), "1.00"), email=f"card{attempt}@example.org", client_ip=IP
        )
        fake_stripe.decline(payment.provider_id)
    deliver(client, outbox.new())

    assert Payment.objects.filter(status="failed").count() == 10
    with pytest.raises(PaymentBlocked):
        start(donation(ContactFactory(), "1.00"), email="fresh@example.org", client_ip=IP)
    assert PaymentBlock.objects.filter(kind="ip", value=IP).exists()
    # Another visitor is not affected.
    start(donation(ContactFactory(), "1.00"), email="other@example.org", client_ip="192.0.2.1")


# -- disputes -----------------------------------------------------------------------------------


def test_a_lost_dispute_is_recorded_once_as_money_gone(client, fake_stripe, pending_donation):
    outbox = Outbox(fake_stripe)
    payment, _ = start(pending_donation)
    fake_stripe.pay(payment.provider_id)
    intent = fake_stripe.get(payment.provider_id)["payment_intent"]
    dispute = fake_stripe.dispute(intent)
    deliver(client, outbox.new())
    assert fresh(pending_donation).is_disputed

    fake_stripe.dispute_status(dispute["id"], "lost")
    deliver(client, outbox.new())
    deliver(client, fake_stripe.events)

    contribution = fresh(pending_donation)
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("25.00"))
    assert not contribution.is_disputed
    [gone] = Refund.objects.all()
    assert (gone.provider_id, gone.amount, gone.status) == (
        dispute["id"],
        Decimal("25.00"),
        "succeeded",
    )
    assert Dispute.objects.get().status == "lost"


def test_a_won_dispute_clears_the_flag_and_keeps_the_money(client, fake_stripe, pending_donation):
    outbox = Outbox(fake_stripe)
    payment, _ = start(pending_donation)
    fake_stripe.pay(payment.provider_id)
    dispute = fake_stripe.dispute(fake_stripe.get(payment.provider_id)["payment_intent"])
    fake_stripe.dispute_status(dispute["id"], "won")
    deliver(client, outbox.new())

    contribution = fresh(pending_donation)
    assert (contribution.status, contribution.is_disputed) == ("completed", False)
    assert not Refund.objects.exists()


# -- through real HTTP ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_fake_posting_its_own_webhooks_to_a_live_server_completes_and_refunds(
    live_server, fake_stripe, staff_api
):
    fake_stripe.webhook_url = live_server.url + WEBHOOK
    # A transactional test empties every table first, funds made by migrations too.
    FinancialTypeFactory(slug="donation")
    contribution = donation(ContactFactory())
    payment, _ = start(contribution)

    fake_stripe.pay(payment.provider_id)
    # Stripe posts charge.refunded before it answers our refund request.
    response = staff_api.post(REFUNDS, {"contribution": contribution.pk}, "json")

    assert response.status_code == 201
    assert {status for _id, _type, status in fake_stripe.deliveries} == {200}
    assert len(fake_stripe.deliveries) == len(fake_stripe.events)
    contribution = fresh(contribution)
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("25.00"))
    assert Refund.objects.get().status == "succeeded"
    assert completions(contribution.contact) == 1


# -- regressions found end to end ---------------------------------------------------------------


def test_a_renewal_refunded_before_its_invoice_event_arrives_is_recorded_once_delivered(
    client, fake_stripe
):
    recurring, first = monthly_gift(ContactFactory())
    payment, _ = start(first, recurring=recurring)
    fake_stripe.pay(payment.provider_id)
    [subscription] = fake_stripe.objects_of("subscription")
    renewal_invoice = fake_stripe.renew(subscription["id"])
    renewal_intent = next(
        p["payment"]["payment_intent"]
        for p in fake_stripe.objects_of("invoice_payment")
        if p["invoice"] == renewal_invoice["id"]
    )
    fake_stripe.refund(renewal_intent)
    events = fake_stripe.events
    invoice_events = [e for e in events if e["type"].startswith("invoice.")]

    # The refund's events first, the renewal's invoice after: each delivered once.
    deliver(client, [e for e in events if e not in invoice_events] + invoice_events)

    renewal = Payment.objects.get(provider_id=renewal_invoice["id"]).contribution
    assert (renewal.status, renewal.refunded_amount) == ("refunded", Decimal("12.00"))
    assert Refund.objects.get().contribution_id == renewal.pk


def test_renewals_delivered_newest_first_take_their_terms_in_invoice_order(client, fake_stripe):
    membership, recurring, first = membership_standing_order(ContactFactory())
    payment, _ = start(first, recurring=recurring)
    fake_stripe.pay(payment.provider_id)
    [subscription] = fake_stripe.objects_of("subscription")
    fake_stripe.renew(subscription["id"])
    fake_stripe.renew(subscription["id"])

    deliver(client, fake_stripe.events[::-1])

    first_invoice, *renewals = [i["id"] for i in fake_stripe.objects_of("invoice")]
    in_stripes_order = [first, *(Payment.objects.get(provider_id=i).contribution for i in renewals)]
    terms = [c.line_items.get() for c in in_stripes_order]
    assert terms[0].term_start == fresh(membership).start_date
    assert [t.term_start for t in terms] == sorted(t.term_start for t in terms)
    assert fresh(membership).end_date == terms[-1].term_end
