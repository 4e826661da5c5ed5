"""Stripe webhooks through the endpoint: signed deliveries, Stripe's API mocked with responses."""

import datetime
import logging
import random
import time
from decimal import Decimal

import pytest
import responses
from django.db import transaction

from crm_core.models import (
    Activity,
    ActivityType,
    Contribution,
    Membership,
    Participant,
    RecurringContribution,
)
from crm_core.services import events
from crm_payments.models import (
    Dispute,
    Payment,
    Refund,
    RefundStatus,
    VelocityEvent,
    WebhookEvent,
)
from tests.factories import ContactFactory, EventFeeLevelFactory
from tests.fixtures.stripe.api import (
    StripeAPI,
    deliver,
    event_body,
    load_events,
    membership_subscription,
    one_off_payment,
    references,
)
from tests.payments_fixtures import sign_webhook

pytestmark = pytest.mark.django_db
URL = "/crm/payments/stripe/webhook/"


@pytest.fixture
def rsps(stripe_settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def payment(db):
    return one_off_payment(ContactFactory())


@pytest.fixture
def sub_payment(db):
    return membership_subscription(ContactFactory())


@pytest.fixture
def api(rsps, payment, sub_payment):
    return StripeAPI(rsps, references(payment, sub_payment))


def fresh(row):
    return type(row).objects.get(pk=row.pk)


def post(client, event_id, event_type, object_id, **sign):
    return deliver(client, event_id, event_type, {"id": object_id}, **sign)


# -- refused deliveries -----------------------------------------------------------------


def good_body():
    return event_body("evt_1", "checkout.session.completed", {"id": "cs_oneoff"})


def forged(client):
    body, header = sign_webhook(good_body())
    body = body.replace(b"cs_oneoff", b"cs_forged")
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def wrong_secret(client):
    body, header = sign_webhook(good_body(), secret="whsec_someone_else")
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def old_timestamp(client):
    body, header = sign_webhook(good_body(), timestamp=int(time.time()) - 301)
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def missing_header(client):
    body, _header = sign_webhook(good_body())
    return client.post(URL, body, content_type="application/json")


def garbage_header(client):
    body, _header = sign_webhook(good_body())
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=x,v1")


def malformed_json(client):
    body, header = sign_webhook('{"id": "evt_1", "type": ')
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def not_an_event(client):
    body, header = sign_webhook("[1, 2, 3]")
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def event_without_object(client):
    body, header = sign_webhook({"id": "evt_1", "type": "invoice.paid", "data": {}})
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def huge_body(client):
    payload = good_body()
    payload["padding"] = "x" * (1024 * 1024)
    body, header = sign_webhook(payload)
    return client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def not_utf8(client):
    return client.post(
        URL, b"\xff\xfe{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=ab"
    )


@pytest.mark.parametrize(
    "send",
    [
        forged,
        wrong_secret,
        old_timestamp,
        missing_header,
        garbage_header,
        malformed_json,
        not_an_event,
        event_without_object,
        huge_body,
        not_utf8,
    ],
)
def test_a_delivery_that_is_not_a_good_signed_event_is_refused_and_nothing_stored(
    client, api, payment, send, caplog
):
    with caplog.at_level(logging.WARNING, logger="crm_payments.webhooks"):
        response = send(client)
    assert response.status_code == 400
    assert "error" in response.json()
    assert not WebhookEvent.objects.exists()
    assert fresh(payment).status == "pending"
    assert api.calls == []
    assert len([r for r in caplog.records if r.name == "crm_payments.webhooks"]) == 1


def test_without_a_webhook_secret_every_delivery_is_refused_and_logged_as_an_error(
    client, api, settings, caplog
):
    settings.CRM = {**settings.CRM, "STRIPE_WEBHOOK_SECRET": ""}
    with caplog.at_level(logging.ERROR, logger="crm_payments.webhooks"):
        response = post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert "STRIPE_WEBHOOK_SECRET" in caplog.text


def test_the_endpoint_answers_only_post(client, stripe_settings):
    assert client.get(URL).status_code == 405


# -- storing each event once -----------------------------------------------------------------


def test_a_paid_checkout_session_completes_the_payment_and_the_contribution(client, api, payment):
    response = post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    assert response.status_code == 200
    payment = fresh(payment)
    assert (payment.status, payment.payment_intent_id, payment.charge_id) == (
        "succeeded",
        "pi_oneoff",
        "ch_oneoff",
    )
    contribution = fresh(payment.contribution)
    assert (contribution.status, contribution.transaction_id) == ("completed", "pi_oneoff")
    event = WebhookEvent.objects.get()
    assert (event.status, event.object_id, event.attempts) == ("processed", "cs_oneoff", 1)


def test_a_replayed_event_is_acknowledged_and_has_one_effect(client, api, payment):
    for _ in range(3):
        assert post(client, "evt_1", "checkout.session.completed", "cs_oneoff").status_code == 200
    contact = payment.contribution.contact
    assert contact.activities.filter(subject__contains="completed").count() == 1
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 3)
    # The replay is not even re-fetched.
    assert api.calls.count("checkout/sessions/cs_oneoff") == 1


def test_two_events_about_the_same_object_complete_it_once(client, api, payment):
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    post(client, "evt_2", "payment_intent.succeeded", "pi_oneoff")
    contact = payment.contribution.contact
    assert contact.activities.filter(subject__contains="completed").count() == 1
    assert WebhookEvent.objects.filter(status="processed").count() == 2


def test_an_unknown_event_type_is_acknowledged_and_stored_as_ignored(client, api):
    response = post(client, "evt_1", "customer.created", "cus_1")
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"
    assert api.calls == []


class FakeTask:
    """Stands in for ``process_stripe_event_task``; ``enqueue`` calls ``enqueue``."""

    def __init__(self, enqueue):
        self.enqueue = enqueue


def test_repeats_of_an_unknown_event_type_are_counted_and_stay_ignored(client, api):
    for _ in range(3):
        assert post(client, "evt_1", "customer.created", "cus_1").status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("ignored", 3)
    assert event.error == "Not an event type we handle."
    assert event.processed_at is not None


def test_a_repeat_of_an_event_still_being_processed_is_not_queued_again(client, api, monkeypatch):
    from crm_payments import tasks

    WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_1",
        event_type="checkout.session.completed",
        object_id="cs_oneoff",
    )
    queued = []
    monkeypatch.setattr(tasks, "process_stripe_event_task", FakeTask(queued.append))
    response = post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    assert response.json() == {"status": "duplicate"}
    assert queued == []
    assert WebhookEvent.objects.get().attempts == 2


def test_when_the_task_queue_fails_the_event_is_kept_as_failed_and_a_later_delivery_applies_it(
    client, api, payment, monkeypatch
):
    from crm_payments import tasks

    working = tasks.process_stripe_event_task

    def broken(*args):
        raise ConnectionError("queue down")

    monkeypatch.setattr(tasks, "process_stripe_event_task", FakeTask(broken))
    client.raise_request_exception = False
    response = post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    # Not acknowledged, so Stripe delivers it again; the stored event says why.
    assert response.status_code == 500
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "queue down" in event.error
    assert fresh(payment).status == "pending"

    monkeypatch.setattr(tasks, "process_stripe_event_task", working)
    assert post(client, "evt_1", "checkout.session.completed", "cs_oneoff").status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 2)
    assert fresh(payment).status == "succeeded"


def test_an_object_that_is_not_ours_is_acknowledged_and_ignored_with_a_note(client, api):
    api.put({**api.objects["cs_oneoff"], "id": "cs_other", "metadata": {}})
    api.objects["cs_other"]["client_reference_id"] = None
    response = post(client, "evt_1", "checkout.session.completed", "cs_other")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == "ignored"
    assert "cs_other" in event.error


def test_an_object_stripe_does_not_know_is_ignored(client, api):
    response = post(client, "evt_1", "invoice.paid", "in_unknown")
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"


def test_the_payload_is_not_trusted_only_stripes_current_object(client, api, payment):
    api.objects["cs_oneoff"].update(status="open", payment_status="unpaid")
    forged_snapshot = {"id": "cs_oneoff", "status": "complete", "payment_status": "paid"}
    deliver(client, "evt_1", "checkout.session.completed", forged_snapshot)
    assert fresh(payment).status == "pending"
    assert fresh(payment.contribution).status == "pending"


def test_when_stripe_is_unreachable_the_event_is_kept_as_failed_and_a_later_delivery_applies_it(
    client, api, payment
):
    api.unreachable = True
    response = post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    # Accepted (Stripe only needs a quick 2xx); the processing failed and says why.
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "Stripe unreachable" in event.error
    assert fresh(payment).status == "pending"

    api.unreachable = False
    assert post(client, "evt_1", "checkout.session.completed", "cs_oneoff").status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 2)
    assert fresh(payment).status == "succeeded"


def test_the_reconcile_command_retries_an_event_that_failed(client, api, payment):
    from crm_payments.providers.stripe_webhooks import retry_unfinished_events

    api.unreachable = True
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    api.unreachable = False
    assert retry_unfinished_events(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)) == 1
    assert WebhookEvent.objects.get().status == "processed"
    assert fresh(payment).status == "succeeded"


def test_an_event_whose_first_delivery_died_part_way_is_processed_by_a_later_one(
    client, api, payment
):
    WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_1",
        event_type="checkout.session.completed",
        object_id="cs_oneoff",
        received_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    assert fresh(payment).status == "succeeded"


# -- one-off payments ---------------------------------------------------------------------


def decline(api, *, decline_code="generic_decline", outcome="issuer_declined"):
    api.objects["pi_oneoff"].update(
        status="requires_payment_method",
        latest_charge="ch_declined",
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": decline_code,
            "message": "Your card was declined.",
        },
    )
    api.put({**api.objects["ch_oneoff"], "id": "ch_declined", "status": "failed"})
    api.objects["ch_declined"]["outcome"] = {"type": outcome}


def test_a_declined_payment_fails_the_payment_and_the_contribution_and_counts_a_decline(
    client, api, payment
):
    decline(api)
    post(client, "evt_1", "payment_intent.payment_failed", "pi_oneoff")
    payment = fresh(payment)
    assert (payment.status, payment.failure_reason) == ("failed", "Your card was declined.")
    assert fresh(payment.contribution).status == "failed"
    assert list(VelocityEvent.objects.values_list("kind", "ip")) == [("decline", "198.51.100.7")]


@pytest.mark.parametrize(
    "decline_code, outcome",
    [("stolen_card", "issuer_declined"), ("fraudulent", "issuer_declined"), ("", "blocked")],
)
def test_a_fraud_decline_counts_as_a_fraud_signal(client, api, payment, decline_code, outcome):
    decline(api, decline_code=decline_code, outcome=outcome)
    post(client, "evt_1", "payment_intent.payment_failed", "pi_oneoff")
    assert list(VelocityEvent.objects.values_list("kind", flat=True)) == ["fraud"]


def test_a_late_decline_event_never_undoes_a_success(client, api, payment):
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    post(client, "evt_2", "payment_intent.payment_failed", "pi_oneoff")
    assert fresh(payment).status == "succeeded"
    assert not VelocityEvent.objects.exists()


def test_an_async_payment_still_processing_stays_pending_then_succeeds(client, api, payment):
    api.objects["cs_oneoff"]["payment_status"] = "unpaid"
    api.objects["pi_oneoff"]["status"] = "processing"
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    assert fresh(payment).status == "pending"

    api.objects["cs_oneoff"]["payment_status"] = "paid"
    api.objects["pi_oneoff"]["status"] = "succeeded"
    post(client, "evt_2", "checkout.session.async_payment_succeeded", "cs_oneoff")
    assert fresh(payment.contribution).status == "completed"


def test_an_async_payment_that_failed_fails_the_contribution(client, api, payment):
    api.objects["cs_oneoff"]["payment_status"] = "unpaid"
    decline(api)
    post(client, "evt_1", "checkout.session.async_payment_failed", "cs_oneoff")
    assert fresh(payment).status == "failed"
    assert fresh(payment.contribution).status == "failed"


def test_an_expired_session_cancels_the_contribution_and_releases_the_seat(client, rsps):
    contact = ContactFactory()
    level = EventFeeLevelFactory(amount=Decimal("25.00"))
    [seat] = events.register(
        level.event, registered_by=contact, attendees=[{"contact": contact, "fee_level": level}]
    )
    assert seat.status == "pending_payment"
    payment = one_off_payment(
        contact, lines=[{"kind": "event_fee", "amount": "25.00", "participant": seat}]
    )
    api = StripeAPI(rsps, references(payment))
    api.objects["cs_oneoff"].update(status="expired", payment_status="unpaid", payment_intent=None)

    post(client, "evt_1", "checkout.session.expired", "cs_oneoff")

    assert fresh(payment).status == "cancelled"
    assert fresh(payment.contribution).status == "cancelled"
    assert Participant.objects.get(pk=seat.pk).status == "cancelled"


# -- refunds and disputes -------------------------------------------------------------------


def test_a_refund_made_in_stripes_dashboard_is_recorded_once(client, api, payment):
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    post(client, "evt_2", "charge.refunded", "ch_oneoff")
    post(client, "evt_3", "charge.refund.updated", "re_dashboard")

    refund = Refund.objects.get()
    assert (refund.provider_id, refund.amount, refund.status) == (
        "re_dashboard",
        Decimal("10.00"),
        "succeeded",
    )
    contribution = fresh(payment.contribution)
    assert (contribution.status, contribution.refunded_amount) == (
        "partially_refunded",
        Decimal("10.00"),
    )


def test_a_refund_that_arrives_before_the_payment_is_applied_after_it(client, api, payment):
    post(client, "evt_1", "charge.refunded", "ch_oneoff")
    post(client, "evt_2", "checkout.session.completed", "cs_oneoff")
    contribution = fresh(payment.contribution)
    assert (contribution.status, contribution.refunded_amount) == (
        "partially_refunded",
        Decimal("10.00"),
    )


def test_our_own_refund_is_matched_by_its_metadata_and_applied_once(client, api, payment):
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    ours = Refund.objects.create(
        payment=payment,
        provider="stripe",
        contribution=payment.contribution,
        amount=Decimal("10.00"),
        currency="GBP",
        reason="asked by the donor",
    )
    api.objects["re_dashboard"].update(id="re_ours", metadata={"crm_refund": str(ours.reference)})
    api.objects["re_ours"] = api.objects.pop("re_dashboard")
    api.objects["ch_oneoff"]["refunds"]["data"] = ["re_ours"]

    post(client, "evt_2", "charge.refunded", "ch_oneoff")
    post(client, "evt_3", "charge.refund.updated", "re_ours")
    post(client, "evt_4", "charge.refunded", "ch_oneoff")

    refund = Refund.objects.get()
    assert refund.pk == ours.pk
    assert (refund.provider_id, refund.status, refund.reason) == (
        "re_ours",
        RefundStatus.SUCCEEDED,
        "asked by the donor",
    )
    assert fresh(payment.contribution).refunded_amount == Decimal("10.00")


def test_a_dispute_flags_the_contribution_until_it_is_won(client, api, payment):
    post(client, "evt_1", "checkout.session.completed", "cs_oneoff")
    api.put(
        {
            "id": "dp_1",
            "object": "dispute",
            "amount": 2500,
            "currency": "gbp",
            "charge": "ch_oneoff",
            "payment_intent": "pi_oneoff",
            "reason": "fraudulent",
            "status": "needs_response",
        }
    )
    post(client, "evt_2", "charge.dispute.created", "dp_1")
    assert fresh(payment.contribution).is_disputed
    assert Dispute.objects.get().status == "needs_response"

    api.objects["dp_1"]["status"] = "won"
    post(client, "evt_3", "charge.dispute.closed", "dp_1")
    assert not fresh(payment.contribution).is_disputed


# -- subscriptions ------------------------------------------------------------------------


def test_a_paid_subscription_checkout_starts_the_standing_order_and_the_membership(
    client, api, sub_payment
):
    api.objects["sub_member"]["status"] = "active"
    post(client, "evt_1", "checkout.session.completed", "cs_sub")
    post(client, "evt_2", "invoice.paid", "in_first")

    recurring = fresh(sub_payment.contribution.recurring)
    assert (recurring.processor, recurring.processor_id, recurring.status) == (
        "stripe",
        "sub_member",
        "in_progress",
    )
    contribution = fresh(sub_payment.contribution)
    assert (contribution.status, contribution.transaction_id) == ("completed", "pi_in_first")
    assert Contribution.objects.filter(recurring=recurring).count() == 1
    membership = Membership.objects.get(pk=recurring.membership_id)
    assert membership.status != "pending"


def test_a_renewal_invoice_makes_one_contribution_and_renews_the_membership_by_one_term(
    client, api, sub_payment
):
    api.objects["sub_member"]["status"] = "active"
    post(client, "evt_1", "checkout.session.completed", "cs_sub")
    recurring = fresh(sub_payment.contribution.recurring)
    membership = Membership.objects.get(pk=recurring.membership_id)
    first_end = membership.end_date

    for event_id in ("evt_2", "evt_3", "evt_2"):
        post(client, event_id, "invoice.paid", "in_second")

    renewals = Contribution.objects.filter(recurring=recurring).exclude(
        pk=sub_payment.contribution_id
    )
    renewal = renewals.get()
    assert (renewal.status, renewal.total_amount, renewal.transaction_id) == (
        "completed",
        Decimal("30.00"),
        "pi_in_second",
    )
    assert Payment.objects.get(provider_id="in_second").payment_intent_id == "pi_in_second"
    membership.refresh_from_db()
    assert membership.end_date == first_end.replace(year=first_end.year + 1)


def test_a_failed_renewal_fails_its_contribution_and_a_later_success_completes_the_same_one(
    client, api, sub_payment
):
    api.objects["sub_member"]["status"] = "past_due"
    post(client, "evt_1", "checkout.session.completed", "cs_sub")
    api.objects["in_second"].update(status="open", amount_paid=0, attempt_count=1)
    post(client, "evt_2", "invoice.payment_failed", "in_second")

    renewal = Payment.objects.get(provider_id="in_second").contribution
    assert renewal.status == "failed"

    api.objects["in_second"].update(status="paid", amount_paid=3000, attempt_count=2)
    post(client, "evt_3", "invoice.paid", "in_second")
    assert fresh(renewal).status == "completed"
    assert Contribution.objects.filter(recurring=renewal.recurring).count() == 2


def test_a_deleted_subscription_cancels_the_standing_order(client, api, sub_payment):
    api.objects.pop("in_second")
    post(client, "evt_1", "checkout.session.completed", "cs_sub")
    post(client, "evt_2", "customer.subscription.deleted", "sub_member")

    recurring = fresh(sub_payment.contribution.recurring)
    assert recurring.status == "cancelled"
    assert recurring.cancel_reason == "cancellation_requested"
    assert fresh(sub_payment.contribution).status == "completed"


def test_a_subscription_stripe_gave_up_on_marks_the_standing_order_failed(client, api, sub_payment):
    api.objects["sub_member"]["status"] = "unpaid"
    post(client, "evt_1", "customer.subscription.updated", "sub_member")
    assert fresh(sub_payment.contribution.recurring).status == "failed"


# -- any order, any number of times -----------------------------------------------------------


def final_state():
    """What staff would see: statuses, amounts and counts."""
    return {
        "payments": sorted(
            Payment.objects.values_list("provider_id", "status", "amount", "payment_intent_id")
        ),
        "contributions": sorted(
            Contribution.objects.values_list("status", "total_amount", "refunded_amount")
        ),
        "refunds": sorted(Refund.objects.values_list("provider_id", "status", "amount")),
        "recurring": sorted(
            RecurringContribution.objects.values_list("status", "processor_id", "next_date")
        ),
        "memberships": sorted(Membership.objects.values_list("status", "start_date", "end_date")),
        "system activities": Activity.objects.filter(activity_type=ActivityType.SYSTEM).count(),
    }


def replay(client, order):
    for event in order:
        response = post(client, event["id"], event["type"], event["object"])
        assert response.status_code == 200, (event, response.content)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_all_events_replayed_twice_in_shuffled_order_reach_the_in_order_state(client, rsps, seed):
    events_in_order = load_events()

    def world():
        one_off = one_off_payment(ContactFactory())
        subscription = membership_subscription(ContactFactory())
        return StripeAPI(rsps, references(one_off, subscription))

    with transaction.atomic():
        world()
        replay(client, events_in_order)
        expected = final_state()
        transaction.set_rollback(True)
    assert expected["refunds"] == [("re_dashboard", "succeeded", Decimal("10.00"))]
    assert len(expected["contributions"]) == 3
    assert [status for status, _sub, _next in expected["recurring"]] == ["cancelled"]

    rsps.reset()
    world()
    shuffled = random.Random(seed).sample(events_in_order, len(events_in_order))
    again = random.Random(seed + 100).sample(events_in_order, len(events_in_order))
    replay(client, shuffled + again)
    assert final_state() == expected


# -- crm_core's set_recurring_processor (added for the subscription link) ----------------------


def test_linking_a_standing_order_to_its_subscription_is_recorded_once(sub_payment):
    from crm_core.exceptions import InvalidTransition
    from crm_core.services.contributions import set_recurring_processor

    recurring = sub_payment.contribution.recurring
    for _ in range(2):
        set_recurring_processor(recurring, processor="stripe", processor_id="sub_1")
    assert fresh(recurring).processor_id == "sub_1"
    assert recurring.contact.activities.filter(subject__contains="linked to stripe").count() == 1
    with pytest.raises(InvalidTransition):
        set_recurring_processor(recurring, processor="stripe", processor_id="sub_2")
    assert fresh(recurring).processor_id == "sub_1"
