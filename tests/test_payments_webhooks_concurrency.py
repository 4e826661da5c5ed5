"""The same Stripe event delivered from 16 threads at once: one effect.

Real concurrent connections (one per thread, started together at a
barrier), on SQLite (WAL, IMMEDIATE transactions) and PostgreSQL (row locks
and the unique constraints on WebhookEvent and Payment) alike, as in
tests/test_contributions_concurrency.py.
"""

import threading

import pytest
import responses
from django.db import close_old_connections, connection
from django.test import Client

from crm_core.models import Contribution, Membership
from crm_payments.models import Payment, WebhookEvent
from tests.factories import ContactFactory, FinancialTypeFactory
from tests.fixtures.stripe.api import (
    StripeAPI,
    event_body,
    membership_subscription,
    one_off_payment,
    references,
)
from tests.payments_fixtures import sign_webhook

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 16
URL = "/crm/payments/stripe/webhook/"


def run_together(count, work):
    """Run ``work(index)`` in ``count`` threads started at once; results or exceptions."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def target(index):
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    close_old_connections()
    return results


def signed(event_id, event_type, object_id):
    return sign_webhook(event_body(event_id, event_type, {"id": object_id}))


def post_signed(body, header):
    response = Client().post(
        URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    return response.status_code


@pytest.fixture
def rsps(stripe_settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_sixteen_concurrent_deliveries_of_a_checkout_completion_complete_it_once(rsps):
    # Transactional tests start empty, without the migration's funds.
    FinancialTypeFactory(slug="donation")
    payment = one_off_payment(ContactFactory())
    StripeAPI(rsps, references(payment))
    body, header = signed("evt_1", "checkout.session.completed", "cs_oneoff")

    results = run_together(THREADS, lambda _index: post_signed(body, header))

    assert results == [200] * THREADS
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", THREADS)
    contribution = Contribution.objects.get(pk=payment.contribution_id)
    assert contribution.status == "completed"
    assert contribution.contact.activities.filter(subject__contains="completed").count() == 1


@pytest.fixture
def subscribed(rsps, client):
    """A member whose subscription's first payment went through; in_second is now paid."""
    payment = membership_subscription(ContactFactory())
    api = StripeAPI(rsps, references(subscription=payment))
    api.objects["sub_member"]["status"] = "active"
    body, header = signed("evt_start", "checkout.session.completed", "cs_sub")
    assert post_signed(body, header) == 200
    membership = Membership.objects.get(pk=payment.contribution.recurring.membership_id)
    return payment, membership


def assert_one_renewal(payment, membership):
    recurring = payment.contribution.recurring
    assert Contribution.objects.filter(recurring=recurring).count() == 2
    assert Payment.objects.filter(provider_id="in_second").count() == 1
    renewal = Payment.objects.get(provider_id="in_second").contribution
    assert renewal.status == "completed"
    renewed = Membership.objects.get(pk=membership.pk)
    assert renewed.end_date == membership.end_date.replace(year=membership.end_date.year + 1)
    renewals = renewal.contact.activities.filter(subject__startswith="Membership renewed")
    assert renewals.count() == 1


def test_sixteen_concurrent_deliveries_of_an_invoice_paid_make_one_contribution_and_one_term(
    subscribed,
):
    payment, membership = subscribed
    body, header = signed("evt_renewal", "invoice.paid", "in_second")

    results = run_together(THREADS, lambda _index: post_signed(body, header))

    assert results == [200] * THREADS
    event = WebhookEvent.objects.get(event_id="evt_renewal")
    assert (event.status, event.attempts) == ("processed", THREADS)
    assert_one_renewal(payment, membership)


def test_sixteen_different_events_for_one_invoice_at_once_make_one_contribution(subscribed):
    # Stripe may send invoice.paid and invoice.payment_succeeded, and the
    # reconcile command may run at the same moment: distinct events, one invoice.
    payment, membership = subscribed
    deliveries = [signed(f"evt_{index}", "invoice.paid", "in_second") for index in range(THREADS)]

    results = run_together(THREADS, lambda index: post_signed(*deliveries[index]))

    assert results == [200] * THREADS
    assert WebhookEvent.objects.filter(status="processed").count() == THREADS + 1
    assert_one_renewal(payment, membership)
