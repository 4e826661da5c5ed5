"""Membership services: join, renew, cancel, change_type, paid terms and inheritance."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from crm_core.exceptions import (
    AlreadyMember,
    ContactDeleted,
    InvalidTransition,
    MembershipNotRenewable,
)
from crm_core.models import (
    Contact,
    Contribution,
    FinancialType,
    LineItem,
    Membership,
    MembershipStatusRule,
)
from crm_core.services import memberships
from crm_core.services.contacts import trash_contact
from crm_core.services.relationships import create_relationship, update_relationship
from tests.factories import (
    ContactFactory,
    MembershipTypeFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

D = datetime.date
TODAY = D(2025, 3, 10)


def join(contact, mtype=None, **kwargs):
    kwargs.setdefault("today", TODAY)
    return memberships.join(contact, mtype or MembershipTypeFactory(), **kwargs)


def last_event(contact):
    return contact.activities.order_by("-id").first()


def paid_line(membership, quantity=1):
    fund = FinancialType.objects.get(slug="member-dues")
    contribution = Contribution.objects.create(
        contact=membership.contact,
        total_amount=Decimal("30.00"),
        currency="GBP",
        financial_type=fund,
    )
    return LineItem.objects.create(
        contribution=contribution,
        kind="membership",
        label="Dues",
        quantity=quantity,
        unit_amount=Decimal("30.00"),
        line_total=Decimal("30.00") * quantity,
        financial_type=fund,
        membership=membership,
    )


# -- join ---------------------------------------------------------------------------------


def test_joining_today_gives_a_new_membership_for_one_term(contact):
    membership = join(contact)
    assert (membership.join_date, membership.start_date) == (TODAY, TODAY)
    assert membership.end_date == D(2026, 3, 9)
    assert membership.status == "new"


def test_joining_records_the_membership_in_the_contacts_history(contact):
    user = UserFactory()
    membership = join(contact, actor=user, source="api")
    event = last_event(contact)
    assert event.subject == f"Joined: {membership.membership_type.name}"
    assert event.created_by == user
    assert event.changes["status"] == [None, "new"]
    assert event.changes["end_date"] == [None, "2026-03-09"]


def test_joining_long_ago_gives_the_status_of_those_dates(contact):
    membership = join(contact, join_date=D(2024, 1, 1))
    assert membership.end_date == D(2024, 12, 31)
    assert membership.status == "expired"


def test_joining_as_pending_keeps_the_first_terms_dates_unpaid(contact):
    membership = join(contact, pending=True)
    assert membership.status == "pending"
    assert membership.end_date == D(2026, 3, 9)


def test_joining_a_lifetime_type_has_no_end_date(contact):
    membership = join(contact, MembershipTypeFactory(duration_unit="lifetime"))
    assert membership.end_date is None
    assert membership.status == "new"


def test_joining_an_inactive_type_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        join(contact, MembershipTypeFactory(is_active=False))
    assert "membership_type" in error.value.message_dict
    assert not Membership.objects.exists()


def test_joining_a_contact_in_the_trash_is_refused(contact):
    trash_contact(contact)
    with pytest.raises(ContactDeleted):
        join(contact)


def test_joining_a_deceased_contact_is_refused():
    contact = ContactFactory(is_deceased=True)
    with pytest.raises(ValidationError) as error:
        join(contact)
    assert "contact" in error.value.message_dict


def test_auto_renew_is_refused_when_the_type_does_not_offer_it(contact):
    with pytest.raises(ValidationError) as error:
        join(contact, auto_renew=True)
    assert "auto_renew" in error.value.message_dict


def test_auto_renew_is_kept_when_the_type_offers_it(contact):
    membership = join(contact, MembershipTypeFactory(auto_renew="optional"), auto_renew=True)
    assert membership.auto_renew is True


def test_a_second_live_membership_of_the_same_type_is_refused_with_advice_to_renew(contact):
    mtype = MembershipTypeFactory()
    join(contact, mtype)
    with pytest.raises(AlreadyMember) as error:
        join(contact, mtype)
    assert "renew" in error.value.message
    assert Membership.objects.count() == 1


def test_joining_again_after_expiry_is_allowed(contact):
    mtype = MembershipTypeFactory()
    join(contact, mtype, join_date=D(2020, 1, 1))
    assert join(contact, mtype).status == "new"
    assert Membership.objects.filter(contact=contact).count() == 2


def test_a_start_date_before_the_join_date_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        join(contact, join_date=D(2025, 3, 1), start_date=D(2025, 2, 1))
    assert "start_date" in error.value.message_dict


@pytest.mark.parametrize("bad", [D(1, 1, 1), D(9999, 12, 31), D(1899, 12, 31)])
def test_dates_out_of_range_are_refused(contact, bad):
    with pytest.raises(ValidationError) as error:
        join(contact, join_date=bad)
    assert "join_date" in error.value.message_dict


def test_a_join_no_status_rule_covers_is_refused(contact):
    # A start in the future with "new" turned off: no rule holds today.
    MembershipStatusRule.objects.filter(status="new").update(is_active=False)
    with pytest.raises(ValidationError) as error:
        join(contact, join_date=D(2025, 6, 1))
    assert "start_date" in error.value.message_dict


def test_fixed_period_join_before_the_rollover_ends_with_the_current_period(contact):
    mtype = MembershipTypeFactory(
        period_type="fixed",
        fixed_period_start_month=1,
        fixed_period_start_day=1,
        fixed_period_rollover_month=10,
        fixed_period_rollover_day=1,
    )
    membership = join(contact, mtype)
    assert (membership.start_date, membership.end_date) == (TODAY, D(2025, 12, 31))


def test_fixed_period_join_after_the_rollover_covers_the_next_period_too(contact):
    mtype = MembershipTypeFactory(
        period_type="fixed",
        fixed_period_start_month=1,
        fixed_period_start_day=1,
        fixed_period_rollover_month=10,
        fixed_period_rollover_day=1,
    )
    membership = join(contact, mtype, join_date=D(2025, 10, 1), today=D(2025, 10, 1))
    assert (membership.start_date, membership.end_date) == (D(2025, 10, 1), D(2026, 12, 31))


# -- renew --------------------------------------------------------------------------------


def test_renewing_extends_from_the_current_end_date_not_from_today(contact):
    membership = join(contact)
    memberships.renew(membership, today=D(2025, 6, 1))
    assert membership.end_date == D(2027, 3, 9)
    assert membership.start_date == TODAY


def test_renewing_in_grace_still_extends_from_the_end_date(contact):
    membership = join(contact, join_date=D(2024, 3, 1))  # ended 2025-02-28, grace 30 days
    assert membership.status == "grace"
    memberships.renew(membership, today=TODAY)
    assert membership.end_date == D(2026, 2, 28)
    assert membership.status == "current"


def test_renewing_after_grace_starts_again_from_today(contact):
    membership = join(contact, join_date=D(2023, 1, 1))
    memberships.renew(membership, today=TODAY)
    assert (membership.start_date, membership.end_date) == (TODAY, D(2026, 3, 9))
    assert membership.join_date == D(2023, 1, 1)
    assert membership.status == "current"


def test_renewing_several_terms_at_once(contact):
    membership = join(contact)
    memberships.renew(membership, terms=3, today=TODAY)
    assert membership.end_date == D(2029, 3, 9)


def test_renewing_records_old_and_new_end_dates(contact):
    membership = join(contact)
    memberships.renew(membership, today=TODAY, source="admin")
    event = last_event(contact)
    assert event.changes["end_date"] == ["2026-03-09", "2027-03-09"]
    assert event.source == "admin"


@pytest.mark.parametrize("terms", [0, -1, 11, 10**9, 1.5, True, "2"])
def test_renewing_a_bad_number_of_terms_is_refused(contact, terms):
    membership = join(contact)
    with pytest.raises(ValidationError) as error:
        memberships.renew(membership, terms=terms, today=TODAY)
    assert "terms" in error.value.message_dict
    membership.refresh_from_db()
    assert membership.end_date == D(2026, 3, 9)


def test_a_lifetime_membership_cannot_be_renewed(contact):
    membership = join(contact, MembershipTypeFactory(duration_unit="lifetime"))
    with pytest.raises(MembershipNotRenewable):
        memberships.renew(membership, today=TODAY)


def test_a_cancelled_membership_cannot_be_renewed(contact):
    membership = join(contact)
    memberships.cancel(membership)
    with pytest.raises(MembershipNotRenewable):
        memberships.renew(membership, today=TODAY)


def test_a_pending_membership_cannot_be_renewed(contact):
    membership = join(contact, pending=True)
    with pytest.raises(MembershipNotRenewable):
        memberships.renew(membership, today=TODAY)


def test_a_membership_of_a_contact_marked_deceased_cannot_be_renewed(contact):
    membership = join(contact)
    # Marked deceased; the status update has not made the membership "deceased" yet.
    Contact.objects.filter(pk=contact.pk).update(is_deceased=True)
    with pytest.raises(MembershipNotRenewable, match="deceased"):
        memberships.renew(membership, today=TODAY)
    assert Membership.objects.get(pk=membership.pk).end_date == membership.end_date


def test_a_renewal_beyond_the_year_9999_is_refused_cleanly(contact):
    mtype = MembershipTypeFactory(duration_interval=100)
    membership = join(contact, mtype, join_date=D(2199, 1, 1), today=D(2199, 1, 1))
    for _ in range(10):
        try:
            memberships.renew(membership, terms=10, today=D(2199, 1, 1))
        except ValidationError as error:
            assert "end_date" in error.message_dict
            break
    else:
        pytest.fail("a renewal past 9999 was accepted")
    membership.refresh_from_db()
    assert membership.end_date.year <= 9999


# -- cancel and change_type -------------------------------------------------------------


def test_cancelling_keeps_the_dates_and_records_the_reason(contact):
    membership = join(contact)
    memberships.cancel(membership, reason="Moved <b>away</b>")
    assert membership.status == "cancelled"
    assert membership.cancel_reason == "Moved away"
    assert membership.cancelled_at is not None
    assert membership.end_date == D(2026, 3, 9)
    assert last_event(contact).changes["status"] == ["new", "cancelled"]


def test_cancelling_twice_changes_nothing_the_second_time(contact):
    membership = join(contact)
    memberships.cancel(membership)
    events = contact.activities.count()
    memberships.cancel(membership)
    assert contact.activities.count() == events


def test_a_cancel_reason_longer_than_255_characters_is_refused(contact):
    membership = join(contact)
    with pytest.raises(ValidationError) as error:
        memberships.cancel(membership, reason="x" * 256)
    assert "reason" in error.value.message_dict


def test_changing_type_keeps_the_dates(contact):
    membership = join(contact)
    gold = MembershipTypeFactory(name="Gold")
    memberships.change_type(membership, gold)
    assert membership.membership_type == gold
    assert membership.end_date == D(2026, 3, 9)
    assert "membership_type" in last_event(contact).changes


def test_changing_to_an_inactive_type_is_refused(contact):
    membership = join(contact)
    with pytest.raises(ValidationError):
        memberships.change_type(membership, MembershipTypeFactory(is_active=False))


def test_changing_to_a_type_in_another_currency_is_refused(contact):
    membership = join(contact)
    with pytest.raises(ValidationError) as error:
        memberships.change_type(membership, MembershipTypeFactory(currency="EUR"))
    assert "membership_type" in error.value.message_dict


def test_changing_a_term_membership_to_lifetime_is_refused(contact):
    membership = join(contact)
    with pytest.raises(ValidationError):
        memberships.change_type(membership, MembershipTypeFactory(duration_unit="lifetime"))


def test_a_cancelled_membership_cannot_change_type(contact):
    membership = join(contact)
    memberships.cancel(membership)
    with pytest.raises(InvalidTransition):
        memberships.change_type(membership, MembershipTypeFactory())


def test_changing_type_recomputes_the_status_with_the_new_grace_period(contact):
    membership = join(contact, join_date=D(2024, 3, 1))  # ended 2025-02-28
    assert membership.status == "grace"
    no_grace = MembershipTypeFactory(grace_period_days=0)
    memberships.change_type(membership, no_grace)
    # change_type computes as of the real today; by then 2025-02-28 is long past.
    assert membership.status == "expired"


# -- paid terms ---------------------------------------------------------------------------


def test_a_paid_term_activates_a_pending_membership(contact):
    membership = join(contact, pending=True, today=datetime.date.today())
    item = paid_line(membership)
    memberships.apply_paid_term(item)
    membership.refresh_from_db()
    assert membership.status == "new"
    assert item.applied_at is not None
    assert (item.term_start, item.term_end) == (membership.start_date, membership.end_date)


def test_a_paid_term_for_several_terms_activates_them_all(contact):
    today = datetime.date.today()
    membership = join(contact, pending=True, today=today)
    memberships.apply_paid_term(paid_line(membership, quantity=2))
    membership.refresh_from_db()
    assert membership.end_date == join_end(today, years=2)


def join_end(start, years):
    from crm_core.dates import add_years

    return add_years(start, years) - datetime.timedelta(days=1)


def test_a_paid_term_renews_an_active_membership(contact):
    today = datetime.date.today()
    membership = join(contact, today=today)
    item = paid_line(membership)
    memberships.apply_paid_term(item)
    membership.refresh_from_db()
    assert membership.end_date == join_end(today, years=2)
    assert item.term_start == join_end(today, years=1) + datetime.timedelta(days=1)


def test_applying_a_paid_term_twice_renews_once(contact):
    membership = join(contact, today=datetime.date.today())
    item = paid_line(membership)
    memberships.apply_paid_term(item)
    end = Membership.objects.get(pk=membership.pk).end_date
    memberships.apply_paid_term(LineItem.objects.get(pk=item.pk))
    assert Membership.objects.get(pk=membership.pk).end_date == end


def test_a_stale_line_item_instance_is_not_applied_twice(contact):
    membership = join(contact, today=datetime.date.today())
    item = paid_line(membership)
    stale = LineItem.objects.get(pk=item.pk)
    memberships.apply_paid_term(item)
    end = Membership.objects.get(pk=membership.pk).end_date
    memberships.apply_paid_term(stale)
    assert Membership.objects.get(pk=membership.pk).end_date == end


def test_a_paid_term_for_a_cancelled_membership_is_refused(contact):
    membership = join(contact)
    memberships.cancel(membership)
    with pytest.raises(MembershipNotRenewable):
        memberships.apply_paid_term(paid_line(membership))


def test_refunding_the_first_term_cancels_the_membership(contact):
    membership = join(contact, pending=True, today=datetime.date.today())
    item = paid_line(membership)
    memberships.apply_paid_term(item)
    memberships.revoke_paid_term(item)
    membership.refresh_from_db()
    assert membership.status == "cancelled"


def test_refunding_the_latest_renewal_rolls_the_end_date_back(contact):
    today = datetime.date.today()
    membership = join(contact, today=today)
    first_end = membership.end_date
    item = paid_line(membership)
    memberships.apply_paid_term(item)
    memberships.revoke_paid_term(item)
    membership.refresh_from_db()
    assert membership.end_date == first_end
    assert membership.status == "new"


def test_refunding_a_renewal_followed_by_another_keeps_the_dates_and_notes_it(contact):
    membership = join(contact, today=datetime.date.today())
    first, second = paid_line(membership), paid_line(membership)
    memberships.apply_paid_term(first)
    memberships.apply_paid_term(second)
    end = Membership.objects.get(pk=membership.pk).end_date
    memberships.revoke_paid_term(first)
    assert Membership.objects.get(pk=membership.pk).end_date == end
    assert "later term" in last_event(contact).subject


def test_revoking_a_term_twice_changes_nothing_the_second_time(contact):
    membership = join(contact, today=datetime.date.today())
    item = paid_line(membership)
    memberships.apply_paid_term(item)
    memberships.revoke_paid_term(item)
    after = Membership.objects.get(pk=membership.pk)
    events = contact.activities.count()
    memberships.revoke_paid_term(item)
    again = Membership.objects.get(pk=membership.pk)
    assert (again.end_date, again.status) == (after.end_date, after.status)
    assert contact.activities.count() == events


# -- inheritance --------------------------------------------------------------------------


@pytest.fixture
def employer_setup():
    employee_of = RelationshipTypeFactory()
    mtype = MembershipTypeFactory()
    mtype.inherit_relationship_types.add(employee_of)
    org = OrganizationFactory()
    staff = ContactFactory()
    relationship = create_relationship(
        relationship_type=employee_of, contact_a=staff, contact_b=org
    )
    return mtype, org, staff, relationship


def inherited_of(contact):
    return Membership.objects.filter(contact=contact, inherited_from__isnull=False)


def test_an_organisations_join_gives_its_employees_an_inherited_membership(employer_setup):
    mtype, org, staff, _ = employer_setup
    primary = join(org, mtype)
    inherited = inherited_of(staff).get()
    assert inherited.inherited_from == primary
    assert (inherited.end_date, inherited.status) == (primary.end_date, primary.status)


def test_an_inherited_membership_follows_the_renewal(employer_setup):
    mtype, org, staff, _ = employer_setup
    primary = join(org, mtype)
    memberships.renew(primary, today=TODAY)
    assert inherited_of(staff).get().end_date == primary.end_date


def test_an_inherited_membership_is_cancelled_with_the_primary(employer_setup):
    mtype, org, staff, _ = employer_setup
    primary = join(org, mtype)
    memberships.cancel(primary)
    assert inherited_of(staff).get().status == "cancelled"


def test_an_inherited_membership_follows_a_type_change(employer_setup):
    mtype, org, staff, _ = employer_setup
    primary = join(org, mtype)
    gold = MembershipTypeFactory()
    gold.inherit_relationship_types.add(*mtype.inherit_relationship_types.all())
    memberships.change_type(primary, gold)
    assert inherited_of(staff).get().membership_type == gold


def test_ending_the_relationship_cancels_the_inherited_membership_at_the_next_sync(
    employer_setup,
):
    mtype, org, staff, relationship = employer_setup
    join(org, mtype)
    update_relationship(relationship, is_active=False)
    counts = memberships.update_membership_statuses(today=TODAY)
    assert counts["inherited_cancelled"] == 1
    assert inherited_of(staff).get().status == "cancelled"


def test_a_new_relationship_gives_an_inherited_membership_at_the_next_sync(employer_setup):
    mtype, org, _staff, relationship = employer_setup
    join(org, mtype)
    newcomer = ContactFactory()
    create_relationship(
        relationship_type=relationship.relationship_type, contact_a=newcomer, contact_b=org
    )
    memberships.update_membership_statuses(today=TODAY)
    assert inherited_of(newcomer).count() == 1


def test_a_contact_with_their_own_membership_inherits_nothing(employer_setup):
    mtype, org, staff, _ = employer_setup
    join(staff, mtype)
    join(org, mtype)
    assert not inherited_of(staff).exists()


def test_an_inherited_membership_cannot_be_renewed_or_cancelled_on_its_own(employer_setup):
    mtype, org, staff, _ = employer_setup
    join(org, mtype)
    inherited = inherited_of(staff).get()
    with pytest.raises(MembershipNotRenewable):
        memberships.renew(inherited, today=TODAY)
    with pytest.raises(InvalidTransition):
        memberships.cancel(inherited)


def test_syncing_inherited_memberships_twice_changes_nothing(employer_setup):
    mtype, org, _staff, _ = employer_setup
    primary = join(org, mtype)
    assert memberships.sync_inherited_memberships(primary, today=TODAY) == {
        "created": 0,
        "updated": 0,
        "cancelled": 0,
    }


def test_leaving_auto_renew_off_is_refused_when_the_type_requires_it(contact):
    with pytest.raises(ValidationError) as error:
        join(contact, MembershipTypeFactory(auto_renew="required"))
    assert "auto_renew" in error.value.message_dict


def test_changing_to_a_type_the_contact_already_holds_is_refused(contact):
    membership = join(contact)
    gold = MembershipTypeFactory()
    join(contact, gold)
    with pytest.raises(AlreadyMember):
        memberships.change_type(membership, gold)


def test_changing_to_a_type_without_auto_renew_switches_it_off(contact):
    membership = join(contact, MembershipTypeFactory(auto_renew="optional"), auto_renew=True)
    memberships.change_type(membership, MembershipTypeFactory())
    assert membership.auto_renew is False


def test_a_pending_membership_can_be_cancelled(contact):
    membership = join(contact, pending=True)
    memberships.cancel(membership)
    assert membership.status == "cancelled"


def test_a_late_payment_activates_the_pending_term_with_its_own_dates(contact):
    membership = join(contact, pending=True, join_date=D(2024, 1, 1), today=D(2024, 1, 1))
    memberships.apply_paid_term(paid_line(membership))
    membership.refresh_from_db()
    assert (membership.start_date, membership.end_date) == (D(2024, 1, 1), D(2024, 12, 31))
    assert membership.status == "expired"  # as of the real today, long after 2024
