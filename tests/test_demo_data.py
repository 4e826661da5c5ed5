"""``manage.py crm_demo_data``: believable, seeded, idempotent demo data."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from crm_core.models import (
    Activity,
    ConsentRecord,
    Contact,
    Contribution,
    CustomFieldValue,
    Event,
    GroupMembership,
    Membership,
    MembershipStatus,
    MembershipType,
    Participant,
    RecurringContribution,
    Relationship,
    SoftCredit,
    Tag,
)

pytestmark = pytest.mark.django_db


def load_demo_data():
    out = StringIO()
    call_command("crm_demo_data", stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo data, loaded once for this module and rolled back after it.

    Each test runs in a savepoint inside this transaction, so what one test
    writes does not leak into the next.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        summary = load_demo_data()
        yield summary
        transaction.set_rollback(True)


def counts():
    return {
        "contacts": Contact.all_objects.count(),
        "relationships": Relationship.objects.count(),
        "activities": Activity.objects.count(),
        "consent": ConsentRecord.objects.count(),
        "group memberships": GroupMembership.objects.count(),
        "custom values": CustomFieldValue.objects.count(),
        "tags": Tag.objects.count(),
        "memberships": Membership.objects.count(),
        "participants": Participant.objects.count(),
        "contributions": Contribution.objects.count(),
        "recurring": RecurringContribution.objects.count(),
    }


def test_demo_data_loads_at_least_500_contacts(demo):
    assert Contact.objects.count() >= 500


def test_demo_data_has_households_with_members_and_a_head(demo):
    assert Contact.objects.filter(kind="household").count() >= 20
    assert Relationship.objects.filter(
        relationship_type__slug="household-member-of", contact_b__kind="household"
    ).exists()
    assert Relationship.objects.filter(relationship_type__slug="head-of-household").exists()


def test_demo_data_has_organisations_with_employees(demo):
    assert Contact.objects.filter(kind="organization").count() >= 20
    employee = Relationship.objects.filter(relationship_type__slug="employee-of").first()
    assert employee is not None
    assert employee.contact_a.employer == employee.contact_b


def test_demo_data_has_tasks_with_assignees_volunteer_hours_and_consent(demo):
    assert Activity.objects.filter(activity_type="task", assignee__isnull=False).exists()
    assert Activity.objects.filter(activity_type="volunteer", duration__isnull=False).exists()
    assert ConsentRecord.objects.filter(granted=True).exists()
    assert ConsentRecord.objects.filter(granted=False).exists()
    assert GroupMembership.objects.filter(group__slug="volunteers").exists()


def test_demo_contacts_are_written_through_the_services(demo):
    without_history = Contact.objects.exclude(activities__subject="Contact created")
    assert not without_history.exists()


def test_running_demo_data_twice_leaves_the_same_counts(demo):
    first = counts()
    summary = load_demo_data()
    assert counts() == first
    assert "0 contacts created" in summary


def test_demo_data_prints_a_summary_line_per_part(demo):
    lines = demo.strip().splitlines()
    assert "contacts created" in lines[0]
    assert [line.split()[-1] for line in lines[1:4]] == [
        "memberships.",
        "participants.",
        "donations.",
    ]
    assert "Staff roles: 5 groups set up" in lines[4]
    assert [line.split("user: ")[1].split()[0] for line in lines[5:]] == [
        "fundraiser",
        "membership",
        "events",
        "readonly",
    ]


def test_demo_data_has_members_in_every_status(demo):
    statuses = set(Membership.objects.values_list("status", flat=True))
    assert statuses == set(MembershipStatus.values)


def test_demo_data_has_fixed_period_and_lifetime_types_and_inherited_memberships(demo):
    assert MembershipType.objects.filter(period_type="fixed").exists()
    assert MembershipType.objects.filter(duration_unit="lifetime").exists()
    assert Membership.objects.filter(inherited_from__isnull=False).exists()


def test_demo_data_has_past_events_with_attendance_and_upcoming_ones_with_a_waitlist(demo):
    now = timezone.now()
    past = Participant.objects.filter(event__starts_at__lt=now)
    assert past.filter(status="attended").exists()
    assert past.filter(status="no_show").exists()
    upcoming = Participant.objects.filter(event__starts_at__gt=now)
    assert upcoming.filter(status="waitlisted").exists()
    assert upcoming.filter(status="pending_payment").exists()
    full = Event.objects.get(slug="volunteer-induction")
    seated = full.participants.filter(status="registered").count()
    assert seated == full.capacity


def test_demo_data_has_two_years_of_contributions_in_every_state(demo):
    received = Contribution.objects.aggregate(first=Min("received_at"), last=Max("received_at"))
    assert received["last"] - received["first"] >= timedelta(days=700)
    assert set(Contribution.objects.values_list("status", flat=True)) == {
        "pending",
        "completed",
        "failed",
        "refunded",
        "partially_refunded",
    }
    assert SoftCredit.objects.filter(kind="in_memory").exists()
    assert RecurringContribution.objects.filter(status="in_progress").exists()
    assert Contribution.objects.filter(recurring__isnull=False).count() > 100


def test_demo_payments_are_linked_to_what_they_paid_for(demo):
    paid_members = Membership.objects.filter(line_items__contribution__status="completed")
    assert paid_members.count() > 100
    assert Participant.objects.filter(line_items__contribution__status="completed").exists()
