import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm_core.exceptions import ConsentRecordImmutable
from crm_core.models import ConsentRecord, GroupMembership
from crm_core.sanitize import plain_text, rich_text
from crm_core.selectors.contacts import contact_timeline, current_consent
from crm_core.services.activities import delete_activity, log_activity, update_activity
from crm_core.services.consent import record_consent
from crm_core.services.contacts import create_contact, set_custom_values, trash_contact
from crm_core.services.groups import add_to_group, remove_from_group
from crm_core.services.relationships import create_relationship, update_relationship
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    GroupFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
)

pytestmark = pytest.mark.django_db


# -- groups -------------------------------------------------------------------


def test_add_to_group_is_idempotent(superuser):
    contact, group = ContactFactory(), GroupFactory()
    first, added = add_to_group(contact, group, actor=superuser)
    again, added_again = add_to_group(contact, group, actor=superuser)
    assert (added, added_again) == (True, False)
    assert first.pk == again.pk
    assert GroupMembership.objects.current().filter(group=group).count() == 1


def test_leaving_and_rejoining_keeps_history():
    contact, group = ContactFactory(), GroupFactory()
    add_to_group(contact, group)
    remove_from_group(contact, group)
    add_to_group(contact, group)
    spells = list(GroupMembership.objects.filter(contact=contact).order_by("id"))
    assert len(spells) == 2
    assert spells[0].left_at is not None
    assert spells[1].left_at is None


def test_remove_from_group_when_not_in_it_returns_none():
    assert remove_from_group(ContactFactory(), GroupFactory()) is None


def test_group_changes_appear_in_the_timeline(superuser):
    contact, group = ContactFactory(), GroupFactory(name="Volunteers", slug="volunteers")
    add_to_group(contact, group, actor=superuser)
    remove_from_group(contact, group, actor=superuser)
    subjects = [a.subject for a in contact_timeline(contact)]
    assert "Added to group Volunteers" in subjects
    assert "Removed from group Volunteers" in subjects


def test_trashed_contact_cannot_join_a_group():
    contact = ContactFactory()
    trash_contact(contact)
    with pytest.raises(ValidationError):
        add_to_group(contact, GroupFactory())


def test_inactive_group_refuses_new_members():
    with pytest.raises(ValidationError) as exc:
        add_to_group(ContactFactory(), GroupFactory(is_active=False))
    assert "group" in exc.value.message_dict


# -- consent ------------------------------------------------------------------


def test_latest_consent_record_is_the_current_state():
    contact = ContactFactory()
    record_consent(contact, purpose="newsletter", channel="email", granted=True, wording="Yes!")
    later = record_consent(contact, purpose="newsletter", channel="email", granted=False)
    state = current_consent(contact)
    assert state[("newsletter", "email")] == later
    assert ConsentRecord.objects.filter(contact=contact).count() == 2


def test_consent_keeps_exact_wording_and_source():
    contact = ContactFactory()
    record = record_consent(
        contact,
        purpose="newsletter",
        channel="email",
        granted=True,
        wording="Send me the monthly newsletter.\nI can unsubscribe at any time.",
        source="form",
        source_reference="page:12 revision:40 block:abc",
        ip_address="203.0.113.9",
    )
    record.refresh_from_db()
    assert record.wording == "Send me the monthly newsletter.\nI can unsubscribe at any time."
    assert record.source_reference == "page:12 revision:40 block:abc"


def test_consent_record_cannot_be_edited_or_deleted():
    record = record_consent(ContactFactory(), purpose="newsletter", channel="email", granted=True)
    record.granted = False
    with pytest.raises(ConsentRecordImmutable):
        record.save()
    with pytest.raises(ConsentRecordImmutable):
        record.delete()
    with pytest.raises(ConsentRecordImmutable):
        ConsentRecord.objects.filter(pk=record.pk).update(granted=False)
    with pytest.raises(ConsentRecordImmutable):
        ConsentRecord.objects.all().delete()
    record.refresh_from_db()
    assert record.granted is True


def test_consent_with_unknown_channel_is_refused():
    with pytest.raises(ValidationError) as exc:
        record_consent(ContactFactory(), purpose="newsletter", channel="pigeon", granted=True)
    assert "channel" in exc.value.message_dict
    assert not ConsentRecord.objects.exists()


def test_consent_in_the_future_is_refused():
    with pytest.raises(ValidationError) as exc:
        record_consent(
            ContactFactory(),
            purpose="newsletter",
            channel="email",
            granted=True,
            recorded_at=timezone.now() + datetime.timedelta(days=1),
        )
    assert "recorded_at" in exc.value.message_dict


# -- activities ---------------------------------------------------------------


def test_log_task_with_assignee_and_due_date(superuser):
    contact = ContactFactory()
    task = log_activity(
        contact,
        activity_type="task",
        subject="Call back about legacy gift",
        status="scheduled",
        assignee=superuser,
        due_date=datetime.date.today() + datetime.timedelta(days=7),
        actor=superuser,
    )
    assert task.assignee == superuser
    assert task in contact_timeline(contact)


def test_volunteer_hours_need_a_positive_duration():
    contact = ContactFactory()
    with pytest.raises(ValidationError) as exc:
        log_activity(contact, activity_type="volunteer", subject="Shop shift")
    assert "duration" in exc.value.message_dict
    with pytest.raises(ValidationError):
        log_activity(
            contact,
            activity_type="volunteer",
            subject="Shop shift",
            duration=datetime.timedelta(hours=-1),
        )
    shift = log_activity(
        contact,
        activity_type="volunteer",
        subject="Shop shift",
        duration=datetime.timedelta(hours=3),
    )
    assert shift.duration == datetime.timedelta(hours=3)


def test_activity_details_are_sanitized():
    note = log_activity(
        ContactFactory(),
        activity_type="note",
        subject="Met at fair",
        details='<p onclick="x()">Hi <script>alert(1)</script><a href="javascript:x">l</a></p>',
    )
    assert "script" not in note.details
    assert "onclick" not in note.details
    assert "javascript" not in note.details
    assert note.details.startswith("<p>Hi ")


def test_system_events_cannot_be_logged_edited_or_deleted():
    contact = ContactFactory()
    with pytest.raises(ValidationError):
        log_activity(contact, activity_type="system", subject="Forged history")
    created = contact.activities.get(activity_type="system")
    with pytest.raises(ValidationError):
        update_activity(created, subject="Rewritten")
    with pytest.raises(ValidationError):
        delete_activity(created)
    created.refresh_from_db()
    assert created.subject == "Contact created"


def test_deleting_a_note_leaves_a_trace(superuser):
    contact = ContactFactory()
    note = log_activity(contact, activity_type="note", subject="Typo note")
    delete_activity(note, actor=superuser)
    assert contact.activities.filter(subject="Activity deleted: Typo note").exists()


# -- relationships ------------------------------------------------------------


def test_relationship_is_recorded_on_both_contacts():
    person = ContactFactory(first_name="Ann", last_name="Lee")
    org = OrganizationFactory(organization_name="Acme Ltd")
    create_relationship(
        relationship_type=RelationshipTypeFactory(), contact_a=person, contact_b=org
    )
    assert person.activities.filter(subject="Relationship added: Ann Lee Employee of Acme Ltd")
    assert org.activities.filter(subject__startswith="Relationship added").exists()


def test_relationship_respects_contact_kinds():
    a, b = ContactFactory(), ContactFactory()
    with pytest.raises(ValidationError) as exc:
        create_relationship(relationship_type=RelationshipTypeFactory(), contact_a=a, contact_b=b)
    assert "contact_b" in exc.value.message_dict


def test_relationship_end_before_start_is_refused():
    person, org = ContactFactory(), OrganizationFactory()
    rel = create_relationship(
        relationship_type=RelationshipTypeFactory(),
        contact_a=person,
        contact_b=org,
        start_date=datetime.date(2024, 1, 1),
    )
    with pytest.raises(ValidationError) as exc:
        update_relationship(rel, end_date=datetime.date(2023, 1, 1))
    assert "end_date" in exc.value.message_dict


def test_contact_cannot_be_related_to_itself():
    person = ContactFactory()
    with pytest.raises(ValidationError):
        create_relationship(
            relationship_type=RelationshipTypeFactory(contact_kind_b=""),
            contact_a=person,
            contact_b=person,
        )


# -- custom fields ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_type", "extra", "value", "stored"),
    [
        ("text", {}, "  likes <b>gardening</b> ", "likes gardening"),
        ("number", {}, "42.5", Decimal("42.5")),
        ("money", {"currency": "EUR"}, 10, Decimal("10")),
        ("date", {}, "2020-02-29", datetime.date(2020, 2, 29)),
        ("boolean", {}, "yes", True),
        ("choice", {"choices": ["S", "M", "L"]}, "M", "M"),
        ("multi_choice", {"choices": ["tea", "coffee"]}, ["coffee", "tea"], ["tea", "coffee"]),
    ],
)
def test_custom_values_are_stored_in_their_type(field_type, extra, value, stored):
    CustomFieldFactory(name="extra", field_type=field_type, **extra)
    contact = create_contact(first_name="Ann", custom_fields={"extra": value})
    assert contact.custom_values.get().value == stored


@pytest.mark.parametrize(
    ("field_type", "extra", "value"),
    [
        ("number", {}, "lots"),
        ("number", {}, "1e400"),
        ("number", {}, True),
        ("money", {"currency": "EUR"}, "10.123"),
        ("date", {}, "2021-02-29"),
        ("boolean", {}, "maybe"),
        ("choice", {"choices": ["S", "M"]}, "XL"),
        ("multi_choice", {"choices": ["tea"]}, "tea"),
        ("text", {}, "x" * 2001),
    ],
)
def test_invalid_custom_values_are_refused_naming_the_field(field_type, extra, value):
    CustomFieldFactory(name="extra", field_type=field_type, **extra)
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Ann", custom_fields={"extra": value})
    [message] = exc.value.message_dict["custom_fields"]
    assert message.startswith("extra:")


def test_unknown_custom_field_is_refused():
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Ann", custom_fields={"shoe_size": 9})
    assert "shoe_size" in exc.value.message_dict["custom_fields"][0]


def test_custom_field_for_organizations_only_is_refused_on_people():
    CustomFieldFactory(name="charity_number", applies_to="organization")
    with pytest.raises(ValidationError):
        create_contact(first_name="Ann", custom_fields={"charity_number": "123"})


def test_setting_a_custom_value_records_old_and_new(superuser):
    CustomFieldFactory(name="shirt", field_type="choice", choices=["S", "M"])
    contact = create_contact(first_name="Ann", custom_fields={"shirt": "S"})
    set_custom_values(contact, {"shirt": "M"}, actor=superuser)
    event = contact.activities.get(subject="Custom fields updated")
    assert event.changes == {"custom:shirt": ["S", "M"]}
    set_custom_values(contact, {"shirt": None})
    assert not contact.custom_values.exists()


def test_custom_field_definition_validates_choices_and_currency():
    field = CustomFieldFactory.build(name="size", field_type="choice", choices=[])
    with pytest.raises(ValidationError):
        field.full_clean()
    money = CustomFieldFactory.build(name="pledge", field_type="money", currency="euro")
    with pytest.raises(ValidationError):
        money.full_clean()


# -- sanitize -----------------------------------------------------------------


def test_plain_text_strips_markup_but_keeps_comparison_signs():
    assert plain_text("a < b & c > d") == "a < b & c > d"
    assert plain_text("<i>Ann</i>  <!-- x -->Lee") == "Ann Lee"


def test_plain_text_does_not_turn_escaped_markup_into_tags():
    assert plain_text("<b></b>&lt;img src=x onerror=alert(1)&gt;Ann") == "Ann"
    assert plain_text("<i>Tom</i> &amp; Jerry") == "Tom & Jerry"
    assert plain_text("Tom & Jerry, a < b") == "Tom & Jerry, a < b"


def test_rich_text_keeps_safe_links_only():
    html = rich_text('<a href="https://example.org" onmouseover="x">ok</a><img src=x onerror=y>')
    assert html == '<a href="https://example.org">ok</a>'
