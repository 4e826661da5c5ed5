"""``manage.py crm_demo_data``: believable, seeded, idempotent demo data."""

from io import StringIO

import pytest
from django.core.management import call_command

from crm_core.models import (
    Activity,
    ConsentRecord,
    Contact,
    CustomFieldValue,
    GroupMembership,
    Relationship,
    Tag,
)

pytestmark = pytest.mark.django_db


def load_demo_data():
    out = StringIO()
    call_command("crm_demo_data", stdout=out)
    return out.getvalue()


def counts():
    return {
        "contacts": Contact.all_objects.count(),
        "relationships": Relationship.objects.count(),
        "activities": Activity.objects.count(),
        "consent": ConsentRecord.objects.count(),
        "memberships": GroupMembership.objects.count(),
        "custom values": CustomFieldValue.objects.count(),
        "tags": Tag.objects.count(),
    }


def test_demo_data_loads_at_least_500_contacts():
    load_demo_data()
    assert Contact.objects.count() >= 500


def test_demo_data_has_households_with_members_and_a_head():
    load_demo_data()
    assert Contact.objects.filter(kind="household").count() >= 20
    assert Relationship.objects.filter(
        relationship_type__slug="household-member-of", contact_b__kind="household"
    ).exists()
    assert Relationship.objects.filter(relationship_type__slug="head-of-household").exists()


def test_demo_data_has_organisations_with_employees():
    load_demo_data()
    assert Contact.objects.filter(kind="organization").count() >= 20
    employee = Relationship.objects.filter(relationship_type__slug="employee-of").first()
    assert employee is not None
    assert employee.contact_a.employer == employee.contact_b


def test_demo_data_has_tasks_with_assignees_volunteer_hours_and_consent():
    load_demo_data()
    assert Activity.objects.filter(activity_type="task", assignee__isnull=False).exists()
    assert Activity.objects.filter(activity_type="volunteer", duration__isnull=False).exists()
    assert ConsentRecord.objects.filter(granted=True).exists()
    assert ConsentRecord.objects.filter(granted=False).exists()
    assert GroupMembership.objects.filter(group__slug="volunteers").exists()


def test_demo_contacts_are_written_through_the_services():
    load_demo_data()
    without_history = Contact.objects.exclude(activities__subject="Contact created")
    assert not without_history.exists()


def test_running_demo_data_twice_leaves_the_same_counts():
    load_demo_data()
    first = counts()
    summary = load_demo_data()
    assert counts() == first
    assert "0 contacts created" in summary


def test_demo_data_prints_a_one_line_summary():
    summary = load_demo_data()
    assert len(summary.strip().splitlines()) == 1
    assert "contacts created" in summary
