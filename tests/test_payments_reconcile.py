"""``manage.py crm_stripe_reconcile`` repairs what missed webhooks left (Stripe mocked)."""

import datetime
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.utils import timezone

from crm_core.models import Activity, Contribution, Membership
from crm_payments.models import Payment, Refund, VelocityEvent, WebhookEvent
from crm_payments.providers.stripe_reconcile import parse_since
from crm_payments.tasks import purge_velocity_events_task, reconcile_stripe_task
from tests.factories import ContactFactory
from tests.fixtures.stripe.api import (
    StripeAPI,
    membership_subscription,
    one_off_payment,
    references,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rsps(stripe_settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def payment(db):
    return one_off_payment(ContactFactory())


@pytest.fixture
def api(rsps, payment):
    api = StripeAPI(rsps, references(payment))
    # Paid, not refunded (yet).
    api.objects["ch_oneoff"]["refunds"]["data"] = []
    api.objects.pop("re_dashboard")
    return api


def reconcile(*args):
    out = StringIO()
    call_command("crm_stripe_reconcile", *args, stdout=out)
    return out.getvalue().splitlines()


def fresh(row):
    return type(row).objects.get(pk=row.pk)


def test_a_missed_webhook_for_a_paid_session_is_repaired(api, payment):
    lines = reconcile("--since", "3d")
    assert len(lines) == 1
    assert lines[0].startswith("Repaired: Payment cs_oneoff of 25.00 GBP: pending -> succeeded")
    assert fresh(payment).status == "succeeded"
    assert fresh(payment.contribution).status == "completed"
    assert "checkout/sessions" in api.calls


def test_a_second_run_has_nothing_to_repair(api, payment):
    reconcile("--since", "3d")
    history = Activity.objects.count()
    assert reconcile("--since", "3d") == ["Nothing to repair."]
    assert Activity.objects.count() == history


def test_a_payment_refunded_at_stripe_after_it_was_paid_is_repaired(api, payment):
    reconcile()
    api.put(
        {
            "id": "re_missed",
            "object": "refund",
            "amount": 2500,
            "currency": "gbp",
            "status": "succeeded",
            "charge": "ch_oneoff",
            "payment_intent": "pi_oneoff",
            "metadata": {},
        }
    )
    lines = reconcile("--since", "12h")
    contribution = payment.contribution_id
    assert lines == [
        f"Repaired: Refund re_missed of 25.00 GBP: succeeded (contribution {contribution})"
    ]
    assert fresh(payment.contribution).status == "refunded"
    assert reconcile("--since", "12h") == ["Nothing to repair."]
    assert Refund.objects.count() == 1


def test_a_dry_run_says_what_it_would_repair_and_saves_nothing(api, payment):
    before = (Activity.objects.count(), Contribution.objects.count())
    lines = reconcile("--since", "90m", "--dry-run")
    assert [line.split(":")[0] for line in lines] == ["Would repair"]
    assert "pending -> succeeded" in lines[0]
    assert fresh(payment).status == "pending"
    assert fresh(payment.contribution).status == "pending"
    assert (Activity.objects.count(), Contribution.objects.count()) == before
    # The real run then does exactly what the dry run said.
    assert [line.replace("Repaired", "Would repair") for line in reconcile()] == lines


def test_a_missed_renewal_invoice_makes_its_contribution_once(rsps):
    sub_payment = membership_subscription(ContactFactory())
    api = StripeAPI(rsps, references(subscription=sub_payment))
    api.objects["sub_member"]["status"] = "active"
    membership = Membership.objects.get(pk=sub_payment.contribution.recurring.membership_id)

    lines = reconcile("--since", "2026-01-01")

    assert any("created for invoice in_second" in line for line in lines)
    assert Payment.objects.get(provider_id="in_second").contribution.status == "completed"
    assert fresh(sub_payment.contribution).status == "completed"
    renewed = fresh(membership)
    assert renewed.status != "pending"
    assert reconcile("--since", "2026-01-01") == ["Nothing to repair."]
    assert Contribution.objects.count() == 2


def test_objects_of_other_integrations_are_left_alone(api, payment):
    api.put({**api.objects["cs_oneoff"], "id": "cs_theirs", "metadata": {}})
    api.objects["cs_theirs"]["client_reference_id"] = None
    lines = reconcile()
    assert len(lines) == 1
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "since, message",
    [
        ("three days", "not a duration or a date"),
        ("0d", "more than zero"),
        ("-3d", "not a duration or a date"),
        ("999999d", "at most a year back"),
        ("2999-01-01", "in the future"),
        ("", "not a duration or a date"),
    ],
)
def test_a_bad_since_is_refused_with_a_clear_message(stripe_settings, since, message):
    with pytest.raises(CommandError) as error:
        reconcile(f"--since={since}")
    assert message in str(error.value)
    assert "--since" in str(error.value)


def test_since_takes_days_hours_minutes_and_iso_dates():
    now = timezone.now()
    assert parse_since("3d", now=now) == now - datetime.timedelta(days=3)
    assert parse_since("12H", now=now) == now - datetime.timedelta(hours=12)
    assert parse_since(" 90m ", now=now) == now - datetime.timedelta(minutes=90)
    assert parse_since("2026-01-31T10:00:00+00:00", now=now) == datetime.datetime(
        2026, 1, 31, 10, tzinfo=datetime.UTC
    )


def test_when_stripe_cannot_be_reached_the_command_says_so(api):
    api.unreachable = True
    with pytest.raises(CommandError) as error:
        reconcile()
    assert "Stripe could not be asked" in str(error.value)


def test_without_stripe_keys_the_command_says_stripe_is_not_configured(settings):
    settings.CRM = {**getattr(settings, "CRM", {}), "STRIPE_SECRET_KEY": ""}
    with pytest.raises(CommandError) as error:
        reconcile()
    assert "STRIPE_SECRET_KEY" in str(error.value)


def test_the_reconcile_task_repairs_and_returns_its_changes(api, payment):
    result = reconcile_stripe_task.enqueue(since="1d")
    assert len(result.return_value) == 1
    assert fresh(payment).status == "succeeded"


def test_the_purge_task_deletes_counts_older_than_the_window(db):
    old = VelocityEvent.objects.create(kind="decline", ip="198.51.100.7")
    VelocityEvent.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=1)
    )
    VelocityEvent.objects.create(kind="decline", ip="198.51.100.7")
    assert purge_velocity_events_task.enqueue().return_value == 1
    assert VelocityEvent.objects.count() == 1
