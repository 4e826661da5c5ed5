"""Quick search through the service, on SQLite and on PostgreSQL."""

import pytest
from django.db import connection

from crm_core.selectors.contacts import search_contacts
from crm_core.services.contacts import trash_contact
from tests.factories import ContactFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="fuzzy matching needs pg_trgm"
)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite behaviour")


def names(results):
    return [contact.display_name for contact in results]


@pytest.fixture
def people():
    return [
        ContactFactory(first_name="John", last_name="Smith", emails=["john.smith@example.org"]),
        ContactFactory(first_name="Kiara", last_name="Thomas", emails=["kiara@example.net"]),
        ContactFactory(first_name="Zoë", last_name="Brontë", emails=["zoe@example.org"]),
        ContactFactory(
            first_name="Alice",
            last_name="Walker",
            emails=["alice@example.org"],
            phones=["020 7946 0123"],
        ),
    ]


def test_exact_name_finds_the_contact_first(people):
    assert names(search_contacts("John Smith"))[0] == "John Smith"


@postgres_only
def test_misspelt_name_finds_the_contact_on_postgres(people):
    assert "John Smith" in names(search_contacts("Jonh Smiht"))
    assert "Kiara Thomas" in names(search_contacts("Kiraa Tohmas"))


@sqlite_only
def test_name_words_match_as_substrings_on_sqlite(people):
    assert names(search_contacts("ohn mit")) == ["John Smith"]
    assert search_contacts("Jonh Smiht") == []


def test_surname_prefix_finds_the_contact(people):
    assert "John Smith" in names(search_contacts("smi"))


def test_email_prefix_finds_the_contact(people):
    assert names(search_contacts("john.smith@ex")) == ["John Smith"]


@pytest.mark.parametrize("typed", ["020 7946 0123", "+44 20 7946 0123", "+442079460123"])
def test_phone_in_any_format_finds_the_contact(people, typed):
    assert names(search_contacts(typed)) == ["Alice Walker"]


def test_organisation_name_finds_the_organisation():
    OrganizationFactory(organization_name="Riverside Bakery")
    assert names(search_contacts("Riverside Bakery")) == ["Riverside Bakery"]


def test_trashed_contact_is_never_found(people):
    trash_contact(people[0])
    assert "John Smith" not in names(search_contacts("John Smith"))
    assert search_contacts("john.smith@ex") == []


def test_accented_name_is_found(people):
    assert "Zoë Brontë" in names(search_contacts("Zoë Brontë"))


@pytest.mark.parametrize(
    "query",
    ["", "   ", None, "x" * 10_000, "<script>alert(1)</script>", "%_\\'\"", "()+ -", "名前 😀"],
)
def test_odd_queries_return_a_list_without_errors(people, query):
    results = search_contacts(query)
    assert isinstance(results, list)
    assert len(results) <= 20
