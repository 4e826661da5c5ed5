"""Merging two contacts: field choices, every related record, the audit, refusals."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from crm_core.models import (
    Activity,
    ConsentRecord,
    Contact,
    CustomFieldValue,
    DuplicateStatus,
    GroupMembership,
    MergeRecord,
    Participant,
    ParticipantStatus,
    PossibleDuplicate,
    Relationship,
    SoftCredit,
)
from crm_core.services import contributions, events, memberships
from crm_core.services.consent import record_consent
from crm_core.services.contacts import flag_possible_duplicate, set_custom_values, trash_contact
from crm_core.services.groups import add_to_group, remove_from_group
from crm_core.services.merge import merge_contacts, register_merge_handler
from crm_core.services.relationships import create_relationship
from crm_payments.models import ProviderCustomer
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    EventFactory,
    FinancialTypeFactory,
    GroupFactory,
    MembershipTypeFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def keep():
    return ContactFactory(
        first_name="Ann",
        last_name="Lee",
        emails=["ann@example.org"],
        phones=["020 7946 0001"],
        addresses=[{"street_address": "1 High St", "postal_code": "N1 1AA", "country": "GB"}],
    )


@pytest.fixture
def remove():
    return ContactFactory(
        first_name="Anne",
        last_name="Lee",
        emails=["ANN@example.org", "anne.lee@example.org"],
        phones=["+44 20 7946 0001", "020 7946 0002"],
        addresses=[{"street_address": "1 High St", "postal_code": "N1 1AA", "country": "GB"}],
        job_title="Librarian",
    )


def donation(contact, amount="20.00", **kwargs):
    return contributions.create_pending(
        contact, currency="GBP", lines=[{"kind": "donation", "amount": amount}], **kwargs
    )


def test_chosen_fields_are_taken_and_blanks_never_win(keep, remove, user):
    merge_contacts(keep, remove, field_choices={"first_name": "remove"}, actor=user)
    keep.refresh_from_db()
    assert keep.first_name == "Anne"
    assert keep.display_name == "Anne Lee"
    # Not chosen, but the kept contact had no job title.
    assert keep.job_title == "Librarian"


def test_emails_phones_and_addresses_are_united_without_duplicates(keep, remove, user):
    merge_contacts(keep, remove, actor=user)
    assert sorted(keep.emails.values_list("email_normalized", flat=True)) == [
        "ann@example.org",
        "anne.lee@example.org",
    ]
    assert sorted(keep.phones.values_list("number", flat=True)) == [
        "+442079460001",
        "+442079460002",
    ]
    assert keep.addresses.count() == 1
    assert keep.emails.filter(is_primary=True).get().email == "ann@example.org"


def test_removed_contact_is_trashed_and_pair_marked_merged(keep, remove, user):
    flag_possible_duplicate(keep, remove, 90, ["email"])
    record = merge_contacts(keep, remove, actor=user)
    remove.refresh_from_db()
    assert remove.is_deleted
    assert remove.merged_into_records.get() == record
    assert PossibleDuplicate.objects.get().status == DuplicateStatus.MERGED
    assert not Contact.objects.filter(pk=remove.pk).exists()


def test_audit_record_says_who_what_and_how_many(keep, remove, user):
    activity_count = remove.activities.count()
    record = merge_contacts(keep, remove, field_choices={"first_name": "remove"}, actor=user)
    assert record.merged_by == user
    assert (record.kept_contact_ref, record.removed_contact_ref) == (keep.pk, remove.pk)
    assert record.field_choices["first_name"] == "remove"
    assert record.removed_snapshot["first_name"] == "Anne"
    assert record.removed_snapshot["job_title"] == "Librarian"
    assert "anne.lee@example.org" in record.removed_snapshot["emails"]
    assert record.moved["emails"] == 1
    assert record.moved["crm_core.activity.contact"] == activity_count
    merged = keep.activities.filter(subject__startswith="Merged with").get()
    assert merged.created_by == user
    assert merged.changes["merge_record"] == [None, record.pk]


def test_memberships_move(keep, remove, user):
    membership = memberships.join(remove, MembershipTypeFactory())
    merge_contacts(keep, remove, actor=user)
    membership.refresh_from_db()
    assert membership.contact == keep


def test_contributions_recurring_and_soft_credits_move(keep, remove, user):
    third = ContactFactory()
    gift = donation(remove)
    credit_gift = donation(third, soft_credits=[{"contact": remove, "kind": "in_honour"}])
    standing = contributions.create_recurring(
        remove,
        amount=Decimal("5.00"),
        currency="GBP",
        frequency_unit="month",
        financial_type=FinancialTypeFactory(),
    )
    merge_contacts(keep, remove, actor=user)
    gift.refresh_from_db()
    standing.refresh_from_db()
    assert gift.contact == keep
    assert standing.contact == keep
    assert SoftCredit.objects.get(contribution=credit_gift).contact == keep


def test_soft_credit_to_the_payer_is_dropped_and_noted(keep, remove, user):
    gift = donation(remove, soft_credits=[{"contact": keep, "kind": "in_honour"}])
    record = merge_contacts(keep, remove, actor=user)
    assert not SoftCredit.objects.filter(contribution=gift).exists()
    assert any("soft credit" in note for note in record.notes)


def test_event_places_move(keep, remove, user):
    (place,) = events.register(
        EventFactory(), registered_by=remove, attendees=[{"contact": remove}]
    )
    merge_contacts(keep, remove, actor=user)
    place.refresh_from_db()
    assert (place.contact, place.registered_by) == (keep, keep)


def test_both_registered_for_one_event_keeps_one_place_and_cancels_the_other(keep, remove, user):
    event = EventFactory()
    (kept_place,) = events.register(event, registered_by=keep, attendees=[{"contact": keep}])
    (other,) = events.register(event, registered_by=remove, attendees=[{"contact": remove}])
    record = merge_contacts(keep, remove, actor=user)
    live = Participant.objects.filter(event=event).exclude(status=ParticipantStatus.CANCELLED)
    assert list(live) == [kept_place]
    other.refresh_from_db()
    assert other.status == ParticipantStatus.CANCELLED
    assert other.contact == keep
    assert "Duplicate place" in other.cancel_reason
    assert any(event.title in note for note in record.notes)


def test_activities_move(keep, remove, user):
    ids = set(remove.activities.values_list("pk", flat=True))
    merge_contacts(keep, remove, actor=user)
    assert ids <= set(Activity.objects.filter(contact=keep).values_list("pk", flat=True))


def test_group_memberships_move_without_duplicate_rows(keep, remove, user):
    both, only_removed, history = GroupFactory(), GroupFactory(), GroupFactory()
    add_to_group(keep, both)
    add_to_group(remove, both)
    add_to_group(remove, only_removed)
    add_to_group(remove, history)
    remove_from_group(remove, history)
    merge_contacts(keep, remove, actor=user)
    rows = GroupMembership.objects.filter(contact=keep)
    assert rows.current().filter(group=both).count() == 1
    assert rows.current().filter(group=only_removed).count() == 1
    assert rows.filter(group=history, left_at__isnull=False).count() == 1
    assert not GroupMembership.objects.filter(contact=remove).exists()


def test_tags_are_united(keep, remove, user):
    shared, own = TagFactory(), TagFactory()
    keep.tags.add(shared)
    remove.tags.add(shared, own)
    merge_contacts(keep, remove, actor=user)
    assert set(keep.tags.all()) == {shared, own}


def test_custom_values_move_and_the_chosen_one_wins(keep, remove, user):
    colour, size = CustomFieldFactory(name="colour"), CustomFieldFactory(name="size")
    set_custom_values(keep, {"colour": "blue"})
    set_custom_values(remove, {"colour": "green", "size": "L"})
    merge_contacts(keep, remove, field_choices={"custom:colour": "remove"}, actor=user)
    values = {v.field.name: v.value for v in CustomFieldValue.objects.filter(contact=keep)}
    assert values == {"colour": "green", "size": "L"}
    assert not CustomFieldValue.objects.filter(contact=remove).exists()
    assert colour and size


def test_consent_records_move_unchanged(keep, remove, user):
    record_consent(remove, purpose="newsletter", channel="email", granted=True, wording="Yes!")
    merge_contacts(keep, remove, actor=user)
    consent = ConsentRecord.objects.get()
    assert consent.contact == keep
    assert (consent.purpose, consent.wording, consent.granted) == ("newsletter", "Yes!", True)


def test_consent_records_stay_immutable_outside_the_merge(keep):
    from crm_core.exceptions import ConsentRecordImmutable

    record_consent(keep, purpose="newsletter", channel="email", granted=True)
    with pytest.raises(ConsentRecordImmutable):
        ConsentRecord.objects.update(granted=False)


def test_relationships_move_dropping_self_and_duplicate_ones(keep, remove, user):
    org = OrganizationFactory()
    other_org = OrganizationFactory()
    employee_of = RelationshipTypeFactory()
    friend = RelationshipTypeFactory(
        slug="friend", label_a_to_b="Friend of", label_b_to_a="Friend of", contact_kind_b=""
    )
    create_relationship(relationship_type=employee_of, contact_a=keep, contact_b=org)
    create_relationship(relationship_type=employee_of, contact_a=remove, contact_b=org)
    moved = create_relationship(
        relationship_type=employee_of, contact_a=remove, contact_b=other_org
    )
    create_relationship(relationship_type=friend, contact_a=keep, contact_b=remove)
    merge_contacts(keep, remove, actor=user)
    assert Relationship.objects.filter(contact_a=keep, contact_b=org).count() == 1
    moved.refresh_from_db()
    assert moved.contact_a == keep
    assert not Relationship.objects.filter(relationship_type=friend).exists()
    assert not Relationship.objects.filter(contact_a=remove).exists()


def test_provider_customer_moves_through_the_extension_point(keep, remove, user):
    ProviderCustomer.objects.create(contact=remove, provider="stripe", customer_id="cus_B")
    merge_contacts(keep, remove, actor=user)
    assert ProviderCustomer.objects.get().contact == keep


def test_two_stripe_customers_keep_one_and_note_the_other(keep, remove, user):
    ProviderCustomer.objects.create(contact=keep, provider="stripe", customer_id="cus_A")
    ProviderCustomer.objects.create(contact=remove, provider="stripe", customer_id="cus_B")
    record = merge_contacts(keep, remove, actor=user)
    assert list(ProviderCustomer.objects.values_list("customer_id", flat=True)) == ["cus_A"]
    assert any("cus_B" in note for note in record.notes)


def test_a_registered_handler_runs_and_counts(keep, remove, user):
    seen = []

    def handler(kept, removed, context):
        seen.append((kept.pk, removed.pk))
        context.note("custom handler ran")
        return 3

    register_merge_handler(Activity, "contact", handler)
    try:
        record = merge_contacts(keep, remove, actor=user)
    finally:
        register_merge_handler(Activity, "contact")
    assert seen == [(keep.pk, remove.pk)]
    assert record.moved["crm_core.activity.contact"] == 3
    assert "custom handler ran" in record.notes


def test_merging_a_contact_with_itself_is_refused(keep, user):
    with pytest.raises(ValidationError, match="itself"):
        merge_contacts(keep, keep, actor=user)


def test_merging_a_trashed_contact_is_refused(keep, remove, user):
    trash_contact(remove)
    with pytest.raises(ValidationError, match="trash"):
        merge_contacts(keep, remove, actor=user)
    assert not MergeRecord.objects.exists()


def test_merging_a_person_with_an_organisation_is_refused(keep, user):
    with pytest.raises(ValidationError, match="same kind"):
        merge_contacts(keep, OrganizationFactory(), actor=user)


def test_unknown_fields_and_choices_are_refused_before_writing(keep, remove, user):
    with pytest.raises(ValidationError) as caught:
        merge_contacts(keep, remove, field_choices={"password": "remove"}, actor=user)
    assert "password" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        merge_contacts(keep, remove, field_choices={"first_name": "both"}, actor=user)
    assert "first_name" in caught.value.message_dict
    remove.refresh_from_db()
    assert not remove.is_deleted


def test_an_invalid_combination_rolls_everything_back(keep, remove, user):
    Contact.all_objects.filter(pk=remove.pk).update(birth_date=datetime.date(1990, 1, 1))
    Contact.all_objects.filter(pk=keep.pk).update(
        is_deceased=True, deceased_date=datetime.date(1980, 1, 1)
    )
    with pytest.raises(ValidationError):
        merge_contacts(keep, remove, field_choices={"birth_date": "remove"}, actor=user)
    assert remove.emails.count() == 2
    assert not Contact.all_objects.get(pk=remove.pk).is_deleted


def test_external_id_can_be_taken_from_the_removed_contact(keep, remove, user):
    Contact.all_objects.filter(pk=remove.pk).update(external_id="old-system-7")
    remove.refresh_from_db()
    merge_contacts(keep, remove, field_choices={"external_id": "remove"}, actor=user)
    keep.refresh_from_db()
    assert keep.external_id == "old-system-7"


def test_an_email_on_hold_on_either_contact_stays_on_hold(keep, remove, user):
    remove.emails.filter(email_normalized="ann@example.org").update(on_hold=True)
    merge_contacts(keep, remove, actor=user)
    assert keep.emails.get(email_normalized="ann@example.org").on_hold


def test_employees_of_a_merged_organisation_move(user):
    kept_org = OrganizationFactory(organization_name="Riverside Trust")
    old_org = OrganizationFactory(organization_name="Riverside Trust Ltd")
    employee = ContactFactory(employer=old_org)
    merge_contacts(kept_org, old_org, actor=user)
    employee.refresh_from_db()
    assert employee.employer == kept_org


def test_other_open_pairs_of_the_merged_contact_concern_the_kept_one(keep, remove, user):
    third = ContactFactory()
    flag_possible_duplicate(remove, third, 85, ["name_postcode"])
    merge_contacts(keep, remove, actor=user)
    pair = PossibleDuplicate.objects.get()
    assert {pair.contact_a_id, pair.contact_b_id} == {keep.pk, third.pk}
    assert pair.status == DuplicateStatus.OPEN


def test_foreign_keys_nobody_registered_move_too_hidden_ones_included(keep, remove, user):
    # Submission.contact has related_name="+": a hidden relation, still moved.
    from crm_forms.models import Submission

    submission = Submission.objects.create(
        token=uuid.uuid4(), kind="signup", placement="p", contact=remove
    )
    record = merge_contacts(keep, remove, actor=user)
    submission.refresh_from_db()
    assert submission.contact_id == keep.pk
    assert record.moved["crm_forms.submission.contact"] == 1


def test_a_not_a_duplicate_decision_of_the_removed_contact_holds_for_the_kept_one(user):
    from crm_core.services.duplicates import find_duplicates, mark_not_duplicate

    ann = ContactFactory(first_name="Ann", last_name="Lee", emails=["shared@example.org"])
    ben = ContactFactory(first_name="Ben", last_name="Lee", emails=["shared@example.org"])
    ben_again = ContactFactory(first_name="Ben", last_name="Lee", emails=["ben@example.org"])
    find_duplicates()
    mark_not_duplicate(PossibleDuplicate.objects.get(contact_a=ann, contact_b=ben), actor=user)
    merge_contacts(ben_again, ben, actor=user)
    find_duplicates()
    pair = PossibleDuplicate.objects.get(contact_a=ann, contact_b=ben_again)
    assert pair.status == DuplicateStatus.NOT_DUPLICATE


def test_a_not_a_duplicate_decision_closes_an_open_pair_of_the_kept_contact(user):
    ann, ben, ben_again = (
        ContactFactory(first_name=name, last_name="Lee") for name in ("Ann", "Ben", "Benjamin")
    )
    flag_possible_duplicate(ann, ben, 60, ["name"])
    flag_possible_duplicate(ann, ben_again, 60, ["name"])
    PossibleDuplicate.objects.filter(contact_b=ben).update(status=DuplicateStatus.NOT_DUPLICATE)
    merge_contacts(ben_again, ben, actor=user)
    assert list(PossibleDuplicate.objects.values_list("contact_b", "status")) == [
        (ben_again.pk, DuplicateStatus.NOT_DUPLICATE)
    ]


def test_an_organisation_employed_by_the_one_it_is_merged_into_merges_by_default(user):
    keep = OrganizationFactory(organization_name="Acme")
    remove = OrganizationFactory(organization_name="Acme Ltd")
    Contact.objects.filter(pk=remove.pk).update(employer=keep)
    record = merge_contacts(keep, remove, actor=user)
    keep.refresh_from_db()
    assert keep.employer is None
    assert record.field_choices["employer"] == "keep"


def test_the_removed_contacts_source_can_be_chosen(keep, remove, user):
    Contact.objects.filter(pk=keep.pk).update(source="")
    Contact.objects.filter(pk=remove.pk).update(source="web form")
    keep.refresh_from_db()
    merge_contacts(keep, remove, actor=user)  # a blank never wins: "remove" by default
    keep.refresh_from_db()
    assert keep.source == "web form"
