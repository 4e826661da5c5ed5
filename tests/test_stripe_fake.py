"""The local Stripe fake answers stripe-python as Stripe would (the shapes of
the pinned API version), so tests that use it mean something."""

import json
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
import stripe

from crm_payments.providers.stripe_fake import FakeStripe
from tests.payments_fixtures import SECRET_KEY, WEBHOOK_SECRET


@pytest.fixture
def fake():
    with FakeStripe(api_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET) as running:
        yield running


@pytest.fixture
def api(fake):
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": fake.url}, max_network_retries=0
    ).v1


def new_session(api, *, amount=2500, currency="gbp", key=None, **extra):
    params = {
        "mode": "payment",
        "success_url": "https://site.example/ok",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount,
                    "product_data": {"name": "Gift"},
                },
            }
        ],
        **extra,
    }
    return api.checkout.sessions.create(
        params=params, options={"idempotency_key": key} if key else None
    )


def test_the_same_idempotency_key_replays_the_first_answer(fake, api):
    first = new_session(api, key="k1")
    again = new_session(api, key="k1")

    assert again.id == first.id
    assert len(fake.objects_of("checkout.session")) == 1
    with pytest.raises(stripe.IdempotencyError):
        new_session(api, amount=999, key="k1")


def test_paying_a_session_creates_a_charged_payment_intent_and_events_in_order(fake, api):
    session = new_session(api, payment_intent_data={"metadata": {"crm_payment": "p1"}})

    fake.pay(session.id)

    found = api.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent.latest_charge"]}
    )
    assert (found.status, found.payment_status) == ("complete", "paid")
    assert found.payment_intent.metadata["crm_payment"] == "p1"
    assert found.payment_intent.latest_charge.amount == 2500
    assert [e["type"] for e in fake.events] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    assert [e.id for e in api.events.list().data] == [e["id"] for e in reversed(fake.events)]


def test_lists_filter_on_created(fake, api):
    old = new_session(api)
    fake.advance(3600)
    recent = new_session(api)

    listed = api.checkout.sessions.list(params={"created": {"gte": fake.now() - 60}})

    assert [s.id for s in listed.data] == [recent.id]
    assert old.id in [s.id for s in api.checkout.sessions.list().data]


def test_refunds_never_give_back_more_than_is_left(fake, api):
    session = new_session(api)
    fake.pay(session.id)
    intent = fake.objects_of("payment_intent")[0]["id"]

    api.refunds.create(params={"payment_intent": intent, "amount": 1500})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        api.refunds.create(params={"payment_intent": intent, "amount": 1500})
    rest = api.refunds.create(params={"payment_intent": intent})

    assert too_much.value.code == "amount_too_large"
    assert rest.amount == 1000
    charge = api.charges.retrieve(
        fake.objects_of("charge")[0]["id"], params={"expand": ["refunds"]}
    )
    assert (charge.amount_refunded, charge.refunded, len(charge.refunds.data)) == (2500, True, 2)


def test_three_decimal_amounts_must_end_in_zero(api):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        new_session(api, amount=1234, currency="kwd")
    assert "KWD" in refused.value.user_message


def test_subscription_mode_needs_recurring_prices(api):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        new_session(api, mode="subscription")
    assert refused.value.param == "line_items[0][price_data][recurring]"


def subscription_session(api):
    return new_session(
        api,
        mode="subscription",
        line_items=[
            {
                "quantity": 1,
                "price_data": {
                    "currency": "gbp",
                    "unit_amount": 1200,
                    "product_data": {"name": "Monthly gift"},
                    "recurring": {"interval": "month", "interval_count": 1},
                },
            }
        ],
        subscription_data={"metadata": {"crm_recurring": "r1"}},
    )


def test_a_subscription_renews_with_a_paid_cycle_invoice_in_the_pinned_shape(fake, api):
    fake.pay(subscription_session(api).id)
    subscription = api.subscriptions.list().data[0]
    first_end = subscription["items"].data[0].current_period_end

    fake.renew(subscription.id)

    invoice = api.invoices.list(params={"subscription": subscription.id}).data[0]
    invoice = api.invoices.retrieve(invoice.id, params={"expand": ["payments"]})
    assert invoice.billing_reason == "subscription_cycle"
    assert invoice.status == "paid"
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert invoice.parent.subscription_details.metadata["crm_recurring"] == "r1"
    intent = api.payment_intents.retrieve(invoice.payments.data[0].payment.payment_intent)
    assert intent.status == "succeeded"
    renewed = api.subscriptions.retrieve(subscription.id)
    assert renewed["items"].data[0].current_period_start == first_end
    assert "current_period_end" not in renewed


def test_a_cancelled_subscription_cannot_be_cancelled_again_but_can_be_read(fake, api):
    fake.pay(subscription_session(api).id)
    subscription = fake.objects_of("subscription")[0]["id"]

    api.subscriptions.cancel(subscription)
    with pytest.raises(stripe.InvalidRequestError) as again:
        api.subscriptions.cancel(subscription)

    assert again.value.code == "resource_missing"
    assert api.subscriptions.retrieve(subscription).status == "canceled"
    assert api.subscriptions.list().data == []


def test_errors_are_stripe_shaped(fake, api):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        api.checkout.sessions.retrieve("cs_test_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")

    response = requests.get(f"{fake.url}/v1/customers/cus_x", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_declines_and_disputes_record_their_events(fake, api):
    session = new_session(api)
    fake.decline(session.id, fraudulent=True)
    intent = api.payment_intents.retrieve(api.checkout.sessions.retrieve(session.id).payment_intent)
    assert intent.last_payment_error.decline_code == "fraudulent"

    fake.pay(session.id)
    dispute = fake.dispute(intent.id)

    assert api.disputes.retrieve(dispute["id"]).status == "needs_response"
    assert [e["type"] for e in fake.events][-1] == "charge.dispute.created"
    assert "payment_intent.payment_failed" in [e["type"] for e in fake.events]


def test_events_are_posted_signed_to_the_webhook_url(fake, api):
    received = []

    def receiver(environ, start_response):
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])).decode()
        received.append(
            stripe.Webhook.construct_event(body, environ["HTTP_STRIPE_SIGNATURE"], WEBHOOK_SECRET)
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, receiver, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        fake.webhook_url = f"http://127.0.0.1:{server.server_address[1]}/"
        fake.pay(new_session(api).id)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert [e.type for e in received] == [e["type"] for e in fake.events]
    assert {status for _id, _type, status in fake.deliveries} == {200}
    assert json.loads(json.dumps(received[-1].data.object.to_dict()))["status"] == "complete"
    assert abs(received[-1].created - time.time()) < 60
