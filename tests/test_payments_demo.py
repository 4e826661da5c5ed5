"""``manage.py crm_demo_payments``: payment history on top of the demo data, loaded once."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from crm_core.models import Contribution
from crm_payments.management.commands.crm_demo_payments import CARD_TESTER_IP
from crm_payments.models import Dispute, Payment, PaymentBlock, Refund, WebhookEvent
from crm_payments.services import velocity

pytestmark = pytest.mark.django_db


def run(command):
    out = StringIO()
    call_command(command, stdout=out)
    return out.getvalue()


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Payment, Refund, Dispute, WebhookEvent, PaymentBlock, Contribution)
    }


# First in the file: the module's demo data below is loaded at its first use.
def test_without_the_demo_data_it_says_what_to_run_first():
    assert "crm_demo_data" in run("crm_demo_payments")
    assert not Payment.objects.exists()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo data and its payments, loaded once for this module and rolled back after it."""
    with django_db_blocker.unblock(), transaction.atomic():
        run("crm_demo_data")
        summary = run("crm_demo_payments")
        yield summary
        transaction.set_rollback(True)


def test_every_card_contribution_has_a_stripe_payment_with_fake_ids(demo):
    card = Contribution.objects.filter(payment_method="card", source="demo data")
    assert card.exists()
    assert not card.filter(payments__isnull=True).exclude(status="pending").exists()
    succeeded = Payment.objects.filter(provider="stripe", status="succeeded")
    assert succeeded.count() >= 20
    assert all(p.payment_intent_id.startswith("pi_demo_") for p in succeeded)
    assert all(p.amount == p.contribution.total_amount for p in succeeded[:20])


def test_pay_later_donations_wait_for_a_bank_transfer(demo):
    waiting = Payment.objects.filter(provider="offline", status="pending")
    assert waiting.count() == 4
    assert all(p.contribution.status == "pending" for p in waiting)


def test_a_declined_card_failed_its_contribution(demo):
    failed = Payment.objects.get(status="failed", failure_reason="Your card was declined.")
    assert failed.contribution.status == "failed"


def test_refunds_match_what_the_books_say(demo):
    refunded = Contribution.objects.filter(refunded_amount__gt=0, payments__provider="stripe")
    assert refunded.exists()
    for contribution in refunded:
        total = sum(r.amount for r in contribution.provider_refunds.filter(status="succeeded"))
        assert total == contribution.refunded_amount
    assert Refund.objects.filter(provider_id="re_demo_dashboard", status="succeeded").exists()


def test_a_dispute_flags_its_contribution(demo):
    dispute = Dispute.objects.get()
    assert dispute.payment.contribution.is_disputed
    assert dispute.status == "needs_response"


def test_a_card_tester_is_blocked_and_webhook_events_are_listed(demo):
    assert velocity.active_block(ip=CARD_TESTER_IP) is not None
    assert WebhookEvent.objects.filter(status="processed").count() == 10
    assert "Blocked by the card-testing defence" in demo


def test_a_second_run_adds_nothing(demo):
    before = counts()
    assert "already loaded" in run("crm_demo_payments")
    assert counts() == before
