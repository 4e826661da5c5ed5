"""The contact screens of the Wagtail back office, through HTTP."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm_core.models import Activity, Contact, ContactEmail
from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group
from tests.conftest import grant
from tests.factories import ContactFactory, GroupFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "wagtailsnippets_crm_core_contact:list"
INSPECT_URL = "wagtailsnippets_crm_core_contact:inspect"
ADD_URL = "wagtailsnippets_crm_core_contact:add"
EDIT_URL = "wagtailsnippets_crm_core_contact:edit"
DELETE_URL = "wagtailsnippets_crm_core_contact:delete"


def staff(*perms):
    user = UserFactory(is_staff=True)
    return grant(user, "wagtailadmin.access_admin", *perms)


@pytest.fixture
def viewer(client):
    user = staff("crm_core.view_contact")
    client.force_login(user)
    return user


@pytest.fixture
def editor(client):
    user = staff(
        "crm_core.view_contact",
        "crm_core.add_contact",
        "crm_core.change_contact",
        "crm_core.delete_contact",
    )
    client.force_login(user)
    return user


def form_data(**overrides):
    data = {
        "kind": "individual",
        "first_name": "Grace",
        "last_name": "Hopper",
        "emails": "grace@example.org",
        "phones": "",
        "country": "",
        "preferred_language": "",
        "preferred_channel": "",
    }
    data.update(overrides)
    return data


def test_staff_without_view_permission_is_refused_the_contact_listing(client):
    client.force_login(staff())
    response = client.get(reverse(LIST_URL))
    assert response.status_code in (302, 403)
    assert response.status_code == 403 or response.url != reverse(LIST_URL)


def test_staff_without_view_permission_is_refused_the_contact_summary(client, contact):
    client.force_login(staff())
    response = client.get(reverse(INSPECT_URL, args=[contact.pk]))
    assert response.status_code in (302, 403)
    assert "Lovelace" not in response.content.decode()


def test_staff_with_view_permission_sees_contacts_in_the_listing(client, viewer):
    ContactFactory(first_name="Ada", last_name="Lovelace")
    response = client.get(reverse(LIST_URL))
    assert response.status_code == 200
    assert "Ada Lovelace" in response.content.decode()


def test_listing_runs_the_same_number_of_queries_for_3_and_25_contacts(
    client, viewer, django_assert_num_queries
):
    tag = TagFactory(slug="volunteer", name="Volunteer")

    def add_contacts(count):
        for _ in range(count):
            ContactFactory(phones=["020 7946 0000"], tags=[tag])

    add_contacts(3)
    url = reverse(LIST_URL)
    client.get(url)  # warm caches (content types, permissions, site)
    with CaptureQueriesContext(connection) as three:
        assert client.get(url).status_code == 200
    add_contacts(22)
    with django_assert_num_queries(len(three.captured_queries)):
        response = client.get(url)
    assert response.content.decode().count("@example.org") >= 25


def test_listing_search_finds_a_contact_by_name(client, viewer):
    ContactFactory(first_name="Ada", last_name="Lovelace")
    ContactFactory(first_name="Charles", last_name="Babbage")
    response = client.get(reverse(LIST_URL), {"q": "Lovelace"})
    content = response.content.decode()
    assert "Ada Lovelace" in content
    assert "Charles Babbage" not in content


def test_listing_search_finds_a_contact_by_email(client, viewer):
    ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@engine.example"])
    ContactFactory(first_name="Charles", last_name="Babbage")
    response = client.get(reverse(LIST_URL), {"q": "ada@engine"})
    content = response.content.decode()
    assert "Ada Lovelace" in content
    assert "Charles Babbage" not in content


def test_listing_filters_contacts_by_group(client, viewer):
    trustees = GroupFactory(name="Trustees", slug="trustees")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    ContactFactory(first_name="Charles", last_name="Babbage")
    add_to_group(ada, trustees)
    response = client.get(reverse(LIST_URL), {"group": trustees.pk})
    content = response.content.decode()
    assert "Ada Lovelace" in content
    assert "Charles Babbage" not in content


def test_trashed_contacts_are_not_listed(client, editor):
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    client.post(reverse(DELETE_URL, args=[ada.pk]))
    content = client.get(reverse(LIST_URL)).content.decode()
    assert f'id="snippet_{ada.pk}_title"' not in content


def test_summary_shows_emails_groups_consent_and_who_changed_what(client, viewer):
    author = UserFactory(username="registrar")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@engine.example"])
    add_to_group(ada, GroupFactory(name="Trustees", slug="trustees"))
    record_consent(ada, purpose="newsletter", channel="email", granted=True, actor=author)
    from crm_core.services.contacts import update_contact

    update_contact(ada, job_title="Analyst", actor=author, source="test")
    content = client.get(reverse(INSPECT_URL, args=[ada.pk])).content.decode()
    assert "ada@engine.example" in content
    assert "Trustees" in content
    assert "newsletter" in content and "Granted" in content
    assert "Contact updated" in content
    assert "job_title" in content and "Analyst" in content
    assert "registrar" in content


def test_creating_a_contact_in_the_admin_records_who_created_it(client, editor):
    response = client.post(reverse(ADD_URL), form_data())
    assert response.status_code == 302, response.content.decode()[:3000]
    contact = Contact.objects.get(last_name="Hopper")
    assert contact.display_name == "Grace Hopper"
    assert ContactEmail.objects.filter(contact=contact, email="grace@example.org").exists()
    created = contact.activities.get(subject="Contact created")
    assert created.created_by == editor
    assert created.source == "admin"


def test_editing_a_contact_in_the_admin_records_the_change_and_who_made_it(client, editor):
    grace = ContactFactory(first_name="Grace", last_name="Hopper", emails=["grace@example.org"])
    response = client.post(reverse(EDIT_URL, args=[grace.pk]), form_data(job_title="Rear admiral"))
    assert response.status_code == 302, response.content.decode()[:3000]
    updated = grace.activities.get(subject="Contact updated")
    assert updated.created_by == editor
    assert updated.changes["job_title"] == ["", "Rear admiral"]


def test_saving_an_unchanged_contact_adds_no_history(client, editor):
    grace = ContactFactory(first_name="Grace", last_name="Hopper", emails=["grace@example.org"])
    client.post(reverse(EDIT_URL, args=[grace.pk]), form_data())
    assert not grace.activities.filter(subject="Contact updated").exists()


def test_a_service_validation_error_is_shown_on_the_form_and_nothing_is_saved(client, editor):
    response = client.post(reverse(ADD_URL), form_data(emails="not-an-email"))
    assert response.status_code == 200
    assert "Row 1" in response.content.decode()
    assert not Contact.all_objects.filter(last_name="Hopper").exists()


def test_deleting_a_contact_in_the_admin_moves_it_to_the_trash(client, editor):
    grace = ContactFactory(first_name="Grace", last_name="Hopper")
    response = client.post(reverse(DELETE_URL, args=[grace.pk]))
    assert response.status_code == 302
    trashed = Contact.all_objects.get(pk=grace.pk)
    assert trashed.is_deleted
    assert Activity.objects.get(contact=trashed, subject="Moved to trash").created_by == editor


def test_bulk_delete_of_contacts_is_refused(client, superuser):
    client.force_login(superuser)
    grace = ContactFactory(first_name="Grace", last_name="Hopper")
    url = reverse("wagtail_bulk_action", args=["crm_core", "contact", "delete"]) + f"?id={grace.pk}"
    client.post(url)
    assert Contact.all_objects.filter(pk=grace.pk).exists()
