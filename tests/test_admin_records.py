"""Activities, relationships, consent and group memberships in the back office."""

import pytest
from django.urls import reverse

from crm_core.models import Activity, ConsentRecord, GroupMembership, Relationship
from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group
from tests.conftest import grant
from tests.factories import (
    ContactFactory,
    GroupFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def test_logging_a_call_in_the_admin_records_who_logged_it(client):
    user = staff(client, "crm_core.add_activity", "crm_core.view_activity")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    response = client.post(
        reverse("wagtailsnippets_crm_core_activity:add"),
        {
            "contact": ada.pk,
            "activity_type": "call",
            "subject": "Thank-you call",
            "details": "",
            "occurred_at": "2025-03-01 10:00",
            "status": "completed",
            "duration": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    call = Activity.objects.get(contact=ada, activity_type="call")
    assert call.created_by == user
    assert call.source == "admin"


def test_system_events_cannot_be_edited_in_the_admin(client, contact):
    staff(client, "crm_core.change_activity", "crm_core.view_activity")
    created = contact.activities.get(subject="Contact created")
    response = client.post(
        reverse("wagtailsnippets_crm_core_activity:edit", args=[created.pk]),
        {"subject": "Rewritten history", "occurred_at": "2025-03-01 10:00", "status": "completed"},
    )
    assert response.status_code == 200
    created.refresh_from_db()
    assert created.subject == "Contact created"


def test_relating_contacts_in_the_admin_records_it_on_both_timelines(client):
    user = staff(client, "crm_core.add_relationship", "crm_core.view_relationship")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    engine = OrganizationFactory(organization_name="Analytical Engines Ltd")
    employee_of = RelationshipTypeFactory()
    response = client.post(
        reverse("wagtailsnippets_crm_core_relationship:add"),
        {
            "relationship_type": employee_of.pk,
            "contact_a": ada.pk,
            "contact_b": engine.pk,
            "is_active": "on",
            "description": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Relationship.objects.filter(contact_a=ada, contact_b=engine).exists()
    for contact in (ada, engine):
        logged = contact.activities.get(subject__startswith="Relationship added")
        assert logged.created_by == user


def test_consent_records_cannot_be_added_even_by_a_superuser(client, superuser):
    client.force_login(superuser)
    response = client.get(reverse("wagtailsnippets_crm_core_consentrecord:add"))
    assert response.status_code in (302, 403)


def test_consent_records_cannot_be_deleted_even_by_a_superuser(client, superuser, contact):
    client.force_login(superuser)
    record = record_consent(contact, purpose="newsletter", channel="email", granted=True)
    client.post(reverse("wagtailsnippets_crm_core_consentrecord:delete", args=[record.pk]))
    assert ConsentRecord.objects.filter(pk=record.pk).exists()


def test_consent_records_are_listed_for_staff_with_view_permission(client, contact):
    staff(client, "crm_core.view_consentrecord")
    record_consent(contact, purpose="fundraising", channel="post", granted=False)
    response = client.get(reverse("wagtailsnippets_crm_core_consentrecord:list"))
    assert "fundraising/post withdrawn" in response.content.decode()


def test_group_memberships_cannot_be_edited_even_by_a_superuser(client, superuser, contact):
    client.force_login(superuser)
    membership, _ = add_to_group(contact, GroupFactory())
    client.post(
        reverse("wagtailsnippets_crm_core_groupmembership:edit", args=[membership.pk]),
        {"contact": contact.pk, "group": membership.group.pk, "source": "edited"},
    )
    membership.refresh_from_db()
    assert membership.source != "edited"
    assert GroupMembership.objects.filter(pk=membership.pk).exists()
