"""Who may use the API: Django model permissions, view permission to read."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm_core.services.contacts import trash_contact
from tests.conftest import grant
from tests.factories import ContactFactory

LISTS = [
    "contact-list",
    "group-list",
    "group-membership-list",
    "tag-list",
    "relationship-list",
    "relationship-type-list",
    "activity-list",
    "custom-field-list",
    "consent-record-list",
]
CONTACTS = reverse("crm_api:contact-list")


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("name", LISTS)
def test_anonymous_cannot_read(db, name):
    response = APIClient().get(reverse(f"crm_api:{name}"))

    assert response.status_code == 401


@pytest.mark.parametrize("name", LISTS)
def test_anonymous_cannot_write(db, name):
    response = APIClient().post(reverse(f"crm_api:{name}"), {}, format="json")

    assert response.status_code == 401


def test_anonymous_cannot_read_a_contact(contact):
    response = APIClient().get(reverse("crm_api:contact-detail", args=[contact.pk]))

    assert response.status_code == 401
    assert contact.display_name not in response.content.decode()


@pytest.mark.parametrize("name", LISTS)
def test_user_without_permissions_cannot_read(user, name):
    assert client_for(user).get(reverse(f"crm_api:{name}")).status_code == 403


@pytest.mark.parametrize("name", LISTS)
def test_user_without_permissions_cannot_write(user, name):
    response = client_for(user).post(reverse(f"crm_api:{name}"), {}, format="json")

    assert response.status_code == 403


def test_view_permission_allows_reading(user, contact):
    grant(user, "crm_core.view_contact")

    response = client_for(user).get(CONTACTS)

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [contact.pk]


def test_view_permission_does_not_allow_creating(user):
    grant(user, "crm_core.view_contact")

    response = client_for(user).post(CONTACTS, {"last_name": "Lee"}, format="json")

    assert response.status_code == 403


def test_view_permission_does_not_allow_trashing(user, contact):
    grant(user, "crm_core.view_contact")

    response = client_for(user).delete(reverse("crm_api:contact-detail", args=[contact.pk]))

    assert response.status_code == 403


def test_add_permission_allows_creating(user):
    grant(user, "crm_core.add_contact")

    response = client_for(user).post(CONTACTS, {"last_name": "Lee"}, format="json")

    assert response.status_code == 201


def test_view_permission_on_one_model_does_not_open_another(user):
    grant(user, "crm_core.view_contact")

    assert client_for(user).get(reverse("crm_api:consent-record-list")).status_code == 403


def test_restore_needs_the_restore_permission(user):
    contact = trash_contact(ContactFactory())
    grant(user, "crm_core.view_contact", "crm_core.change_contact", "crm_core.delete_contact")

    response = client_for(user).post(reverse("crm_api:contact-restore", args=[contact.pk]))

    assert response.status_code == 403


def test_restore_permission_allows_restoring(user):
    contact = trash_contact(ContactFactory())
    grant(user, "crm_core.restore_contact")

    response = client_for(user).post(reverse("crm_api:contact-restore", args=[contact.pk]))

    assert response.status_code == 200


def test_token_authentication_works(user, contact):
    grant(user, "crm_core.view_contact")
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert client.get(CONTACTS).status_code == 200


def test_wrong_token_is_refused(user):
    grant(user, "crm_core.view_contact")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get(CONTACTS).status_code == 401


def test_session_authentication_works(client, user, contact):
    grant(user, "crm_core.view_contact")
    client.force_login(user)

    assert client.get(CONTACTS).status_code == 200
