"""Groups, memberships, tags, relationships, activities, custom fields and consent."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.models import (
    Activity,
    ActivityType,
    ConsentRecord,
    CustomField,
    GroupMembership,
    Relationship,
)
from crm_core.services.activities import log_activity
from crm_core.services.consent import record_consent
from crm_core.services.contacts import trash_contact
from crm_core.services.groups import add_to_group, remove_from_group
from crm_core.services.relationships import create_relationship
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    GroupFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
    TagFactory,
)


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def url(name, *args):
    return reverse(f"crm_api:{name}", args=args)


def result_ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


# -- group memberships ------------------------------------------------------------------


def test_adding_a_contact_to_a_group_is_201_and_logged_as_api(api, superuser):
    contact, group = ContactFactory(), GroupFactory()

    response = api.post(
        url("group-membership-list"), {"contact": contact.pk, "group": group.pk}, format="json"
    )

    assert response.status_code == 201
    membership = GroupMembership.objects.get(pk=response.json()["id"])
    assert (membership.source, membership.added_by) == ("api", superuser)


def test_adding_a_contact_already_in_the_group_is_200_with_the_same_membership(api):
    contact, group = ContactFactory(), GroupFactory()
    existing, _ = add_to_group(contact, group)

    response = api.post(
        url("group-membership-list"), {"contact": contact.pk, "group": group.pk}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["id"] == existing.pk
    assert GroupMembership.objects.count() == 1


def test_adding_to_an_inactive_group_is_400_naming_group(api):
    group = GroupFactory(is_active=False)

    response = api.post(
        url("group-membership-list"),
        {"contact": ContactFactory().pk, "group": group.pk},
        format="json",
    )

    assert response.status_code == 400
    assert "group" in response.json()


def test_removing_from_a_group_keeps_the_row_as_history(api):
    membership, _ = add_to_group(ContactFactory(), GroupFactory())

    response = api.delete(url("group-membership-detail", membership.pk))

    assert response.status_code == 204
    membership.refresh_from_db()
    assert membership.left_at is not None


def test_deleting_a_past_membership_leaves_the_current_one_alone(api):
    contact, group = ContactFactory(), GroupFactory()
    past, _ = add_to_group(contact, group)
    remove_from_group(contact, group)
    current, _ = add_to_group(contact, group)

    assert api.delete(url("group-membership-detail", past.pk)).status_code == 204
    current.refresh_from_db()
    assert current.left_at is None


def test_current_filter_lists_only_open_memberships(api):
    group = GroupFactory()
    current, _ = add_to_group(ContactFactory(), group)
    add_to_group(former := ContactFactory(), group)
    remove_from_group(former, group)

    assert result_ids(api.get(url("group-membership-list"), {"current": "true"})) == [current.pk]


def test_memberships_cannot_be_edited(api):
    membership, _ = add_to_group(ContactFactory(), GroupFactory())

    response = api.patch(url("group-membership-detail", membership.pk), {}, format="json")

    assert response.status_code == 405


def test_group_with_members_cannot_be_deleted(api):
    group = GroupFactory()
    add_to_group(ContactFactory(), group)

    response = api.delete(url("group-detail", group.pk))

    assert response.status_code == 409
    assert response.json()["detail"]


# -- reference data -----------------------------------------------------------------------


def test_tag_is_created_with_its_name_stripped_of_markup(api):
    response = api.post(url("tag-list"), {"name": "<i>Donor</i>", "slug": "donor"}, format="json")

    assert response.status_code == 201
    assert response.json()["name"] == "Donor"


def test_duplicate_tag_slug_is_400_naming_slug(api):
    TagFactory(slug="donor")

    response = api.post(url("tag-list"), {"name": "Donor 2", "slug": "donor"}, format="json")

    assert response.status_code == 400
    assert "slug" in response.json()


def test_choice_custom_field_without_choices_is_400_from_model_validation(api):
    response = api.post(
        url("custom-field-list"),
        {"name": "size", "label": "Size", "field_type": "choice"},
        format="json",
    )

    assert response.status_code == 400
    assert "choices" in response.json()
    assert not CustomField.objects.exists()


def test_money_custom_field_needs_a_currency(api):
    response = api.post(
        url("custom-field-list"),
        {"name": "pledge", "label": "Pledge", "field_type": "money", "currency": "pounds"},
        format="json",
    )

    assert response.status_code == 400
    assert "currency" in response.json()


def test_update_of_a_custom_field_runs_model_validation(api):
    field = CustomFieldFactory(name="size", field_type="text")

    response = api.patch(url("custom-field-detail", field.pk), {"choices": ["S"]}, format="json")

    assert response.status_code == 400
    assert "choices" in response.json()


def test_custom_field_type_cannot_change_once_it_has_values(api):
    field = CustomFieldFactory(name="nickname_at_school", field_type="text")
    ContactFactory(custom_fields={"nickname_at_school": "Ace"})

    response = api.patch(
        url("custom-field-detail", field.pk), {"field_type": "date"}, format="json"
    )

    assert response.status_code == 400
    assert "field_type" in response.json()


def test_relationship_type_in_use_cannot_be_deleted(api):
    rtype = RelationshipTypeFactory()
    create_relationship(
        relationship_type=rtype, contact_a=ContactFactory(), contact_b=OrganizationFactory()
    )

    assert api.delete(url("relationship-type-detail", rtype.pk)).status_code == 409


# -- relationships ----------------------------------------------------------------------------


def test_relationship_is_created_through_the_service_and_logged_on_both(api):
    person, org = ContactFactory(), OrganizationFactory()

    response = api.post(
        url("relationship-list"),
        {
            "relationship_type": RelationshipTypeFactory().pk,
            "contact_a": person.pk,
            "contact_b": org.pk,
        },
        format="json",
    )

    assert response.status_code == 201
    for contact in (person, org):
        assert contact.activities.filter(subject__startswith="Relationship added").exists()


def test_relationship_of_the_wrong_kind_is_400_naming_the_contact(api):
    response = api.post(
        url("relationship-list"),
        {
            "relationship_type": RelationshipTypeFactory().pk,
            "contact_a": ContactFactory().pk,
            "contact_b": ContactFactory().pk,
        },
        format="json",
    )

    assert response.status_code == 400
    assert "contact_b" in response.json()


def test_relationship_update_checks_dates(api):
    relationship = create_relationship(
        relationship_type=RelationshipTypeFactory(),
        contact_a=ContactFactory(),
        contact_b=OrganizationFactory(),
        start_date="2020-01-01",
    )

    response = api.patch(
        url("relationship-detail", relationship.pk), {"end_date": "2019-01-01"}, format="json"
    )

    assert response.status_code == 400
    assert "end_date" in response.json()


def test_relationship_delete_is_logged(api):
    person = ContactFactory()
    relationship = create_relationship(
        relationship_type=RelationshipTypeFactory(),
        contact_a=person,
        contact_b=OrganizationFactory(),
    )

    assert api.delete(url("relationship-detail", relationship.pk)).status_code == 204
    assert not Relationship.objects.exists()
    assert person.activities.filter(subject__startswith="Relationship removed").exists()


def test_relationships_filter_by_contact_on_either_side(api):
    person, org = ContactFactory(), OrganizationFactory()
    rtype = RelationshipTypeFactory()
    relationship = create_relationship(relationship_type=rtype, contact_a=person, contact_b=org)
    create_relationship(
        relationship_type=rtype, contact_a=ContactFactory(), contact_b=OrganizationFactory()
    )

    assert result_ids(api.get(url("relationship-list"), {"contact": org.pk})) == [relationship.pk]


# -- activities -----------------------------------------------------------------------------


def test_logging_a_note_records_the_actor_and_api_source(api, superuser):
    contact = ContactFactory()

    response = api.post(
        url("activity-list"),
        {"contact": contact.pk, "activity_type": "note", "subject": "Called back"},
        format="json",
    )

    assert response.status_code == 201
    activity = Activity.objects.get(pk=response.json()["id"])
    assert (activity.created_by, activity.source) == (superuser, "api")


def test_details_keep_allowed_markup_and_lose_scripts(api):
    response = api.post(
        url("activity-list"),
        {
            "contact": ContactFactory().pk,
            "activity_type": "note",
            "subject": "Met",
            "details": "<b>ok</b><script>alert(1)</script>",
        },
        format="json",
    )

    assert response.json()["details"] == "<b>ok</b>alert(1)"


def test_system_events_cannot_be_logged_through_the_api(api):
    response = api.post(
        url("activity-list"),
        {"contact": ContactFactory().pk, "activity_type": "system", "subject": "Forged"},
        format="json",
    )

    assert response.status_code == 400
    assert "activity_type" in response.json()


def test_system_event_edit_is_400_with_a_clear_message(api):
    event = ContactFactory().activities.get(activity_type=ActivityType.SYSTEM)

    response = api.patch(url("activity-detail", event.pk), {"subject": "Rewritten"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["System events cannot be edited."]}


def test_system_event_delete_is_400_with_a_clear_message(api):
    event = ContactFactory().activities.get(activity_type=ActivityType.SYSTEM)

    response = api.delete(url("activity-detail", event.pk))

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["System events cannot be deleted."]}
    assert Activity.objects.filter(pk=event.pk).exists()


def test_logged_activity_can_be_edited_with_get_modify_put(api):
    note = log_activity(ContactFactory(), activity_type="note", subject="Draft")
    body = api.get(url("activity-detail", note.pk)).json()
    body["subject"] = "Final"

    response = api.put(url("activity-detail", note.pk), body, format="json")

    assert response.status_code == 200, response.json()
    note.refresh_from_db()
    assert note.subject == "Final"


def test_moving_an_activity_to_another_contact_is_400(api):
    note = log_activity(ContactFactory(), activity_type="note", subject="Draft")

    response = api.patch(
        url("activity-detail", note.pk), {"contact": ContactFactory().pk}, format="json"
    )

    assert response.status_code == 400
    assert "contact" in response.json()


def test_logged_activity_delete_is_recorded(api):
    contact = ContactFactory()
    note = log_activity(contact, activity_type="note", subject="Oops")

    assert api.delete(url("activity-detail", note.pk)).status_code == 204
    assert contact.activities.filter(subject="Activity deleted: Oops").exists()


def test_activities_filter_by_contact_type_and_status(api):
    contact = ContactFactory()
    task = log_activity(contact, activity_type="task", subject="Ring", status="scheduled")
    log_activity(contact, activity_type="note", subject="Note")

    response = api.get(
        url("activity-list"),
        {"contact": contact.pk, "activity_type": "task", "status": "scheduled"},
    )

    assert result_ids(response) == [task.pk]


def test_activities_of_trashed_contacts_are_hidden(api):
    contact = ContactFactory()
    log_activity(contact, activity_type="note", subject="Note")
    trash_contact(contact)

    assert result_ids(api.get(url("activity-list"), {"contact": contact.pk})) == []


# -- consent -------------------------------------------------------------------------------


def test_consent_is_recorded_through_the_service(api, superuser):
    contact = ContactFactory()

    response = api.post(
        url("consent-record-list"),
        {
            "contact": contact.pk,
            "purpose": "newsletter",
            "channel": "email",
            "granted": True,
            "wording": "Send me news",
        },
        format="json",
    )

    assert response.status_code == 201
    record = ConsentRecord.objects.get()
    assert (record.source, record.recorded_by, record.wording) == ("api", superuser, "Send me news")
    assert contact.activities.filter(subject__startswith="Consent given").exists()


def test_consent_in_the_future_is_400_naming_recorded_at(api):
    response = api.post(
        url("consent-record-list"),
        {
            "contact": ContactFactory().pk,
            "purpose": "newsletter",
            "channel": "email",
            "granted": True,
            "recorded_at": "2999-01-01T00:00:00Z",
        },
        format="json",
    )

    assert response.status_code == 400
    assert "recorded_at" in response.json()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_consent_records_cannot_be_changed(api, method):
    record = record_consent(ContactFactory(), purpose="newsletter", channel="email", granted=True)

    response = getattr(api, method)(url("consent-record-detail", record.pk), {}, format="json")

    assert response.status_code == 405
    assert ConsentRecord.objects.filter(pk=record.pk, granted=True).exists()


def test_consent_filter_by_contact_and_purpose(api):
    contact = ContactFactory()
    wanted = record_consent(contact, purpose="newsletter", channel="email", granted=True)
    record_consent(contact, purpose="events", channel="email", granted=True)

    response = api.get(url("consent-record-list"), {"contact": contact.pk, "purpose": "newsletter"})

    assert result_ids(response) == [wanted.pk]
