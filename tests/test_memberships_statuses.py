"""Statuses from the status rules: the bulk update, the command and the task."""

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from crm_core.models import Membership, MembershipStatusRule
from crm_core.services import memberships
from crm_core.services.contacts import update_contact
from crm_core.tasks import update_membership_statuses_task
from tests.factories import ContactFactory, MembershipTypeFactory

pytestmark = pytest.mark.django_db

D = datetime.date
JOINED = D(2024, 1, 15)  # a yearly term: ends 2025-01-14, grace to 2025-02-13


@pytest.fixture
def membership(contact):
    return memberships.join(contact, MembershipTypeFactory(), join_date=JOINED, today=JOINED)


def status_on(membership, day):
    memberships.update_membership_statuses(today=day)
    membership.refresh_from_db()
    return membership.status


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2024, 1, 15), "new"),
        (D(2024, 4, 15), "new"),
        (D(2024, 4, 16), "current"),
        (D(2025, 1, 14), "current"),
        (D(2025, 1, 15), "grace"),
        (D(2025, 2, 13), "grace"),
        (D(2025, 2, 14), "expired"),
    ],
)
def test_the_default_rules_move_a_membership_through_its_life(membership, day, expected):
    assert status_on(membership, day) == expected


def test_a_membership_ending_within_its_new_window_does_not_stay_new(contact):
    monthly = MembershipTypeFactory(duration_unit="month", grace_period_days=0)
    membership = memberships.join(contact, monthly, join_date=JOINED, today=JOINED)
    assert status_on(membership, D(2024, 2, 20)) == "expired"


def test_a_lifetime_membership_never_reaches_grace_or_expiry(contact):
    lifetime = MembershipTypeFactory(duration_unit="lifetime")
    membership = memberships.join(contact, lifetime, join_date=JOINED, today=JOINED)
    assert status_on(membership, D(2090, 1, 1)) == "current"


def test_pending_and_cancelled_memberships_are_left_alone(contact):
    pending = memberships.join(contact, MembershipTypeFactory(), pending=True, today=JOINED)
    cancelled = memberships.join(contact, MembershipTypeFactory(), today=JOINED)
    memberships.cancel(cancelled)
    memberships.update_membership_statuses(today=D(2030, 1, 1))
    assert Membership.objects.get(pk=pending.pk).status == "pending"
    assert Membership.objects.get(pk=cancelled.pk).status == "cancelled"


def test_memberships_of_a_deceased_contact_become_deceased(contact, membership):
    update_contact(contact, is_deceased=True)
    counts = memberships.update_membership_statuses(today=D(2024, 6, 1))
    assert counts["deceased"] == 1
    membership.refresh_from_db()
    assert membership.status == "deceased"


def test_removing_the_deceased_mark_brings_the_date_status_back(contact, membership):
    update_contact(contact, is_deceased=True)
    memberships.update_membership_statuses(today=D(2024, 6, 1))
    update_contact(contact, is_deceased=False)
    assert status_on(membership, D(2024, 6, 1)) == "current"


def test_a_status_change_is_recorded_in_the_contacts_history(contact, membership):
    memberships.update_membership_statuses(today=D(2025, 1, 20))
    event = contact.activities.order_by("-id").first()
    assert event.changes["status"] == ["new", "grace"]
    assert event.source == "status rules"


def test_the_rules_staff_configure_are_used(membership):
    MembershipStatusRule.objects.filter(status="grace").update(
        end_event="end", end_offset_unit="month", end_offset_interval=6
    )
    assert status_on(membership, D(2025, 6, 1)) == "grace"


def test_bulk_statuses_match_the_status_of_each_membership_alone():
    types = [
        MembershipTypeFactory(duration_unit="month", duration_interval=1, grace_period_days=10),
        MembershipTypeFactory(duration_unit="year", grace_period_days=0),
        MembershipTypeFactory(duration_unit="day", duration_interval=45),
        MembershipTypeFactory(duration_unit="lifetime"),
    ]
    MembershipStatusRule.objects.filter(status="new").update(
        end_offset_unit="day", end_offset_interval=20
    )
    rules = memberships.active_status_rules()
    joined = [D(2024, 1, 31) + datetime.timedelta(days=n * 17) for n in range(12)]
    rows = []
    for index, day in enumerate(joined):
        contact = ContactFactory()
        rows.append(memberships.join(contact, types[index % len(types)], join_date=day, today=day))
    for today in (D(2024, 3, 1), D(2024, 6, 30), D(2025, 2, 28), D(2025, 3, 31)):
        before = {row.pk: row.status for row in rows}
        memberships.update_membership_statuses(today=today)
        for row in rows:
            row.refresh_from_db()
            # No rule holds before the join date: the status is left as it was.
            expected = memberships.status_from_rules(row, today=today, rules=rules)
            assert row.status == (expected or before[row.pk]), (
                row.join_date,
                row.end_date,
                today,
            )


def test_the_command_prints_counts_and_a_second_run_changes_nothing(membership):
    out = StringIO()
    call_command("crm_update_membership_statuses", "--date", "2025-01-20", stdout=out)
    assert "grace: 1" in out.getvalue()
    again = StringIO()
    call_command("crm_update_membership_statuses", "--date", "2025-01-20", stdout=again)
    assert "total changes: 0" in again.getvalue()


@pytest.mark.parametrize("bad", ["2025-02-30", "yesterday", "0001-01-01", "9999-12-31"])
def test_the_command_refuses_a_bad_date(bad):
    with pytest.raises(CommandError):
        call_command("crm_update_membership_statuses", "--date", bad, stdout=StringIO())


def test_the_task_recomputes_statuses(membership):
    result = update_membership_statuses_task.enqueue("2025-02-20")
    assert result.return_value["expired"] == 1
    membership.refresh_from_db()
    assert membership.status == "expired"


def test_the_bulk_update_runs_a_bounded_number_of_queries(django_assert_max_num_queries):
    mtype = MembershipTypeFactory()
    for _ in range(30):
        memberships.join(ContactFactory(), mtype, join_date=JOINED, today=JOINED)
    # 30 changes: a handful of queries per type and rule, not per row.
    with django_assert_max_num_queries(60):
        counts = memberships.update_membership_statuses(today=D(2025, 1, 20))
    assert counts["grace"] == 30
