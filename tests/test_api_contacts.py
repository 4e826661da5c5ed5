"""The contacts endpoints: reading, writing through the services, trash, filters."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.models import ActivityType, Contact
from crm_core.services.contacts import trash_contact
from crm_core.services.groups import add_to_group, remove_from_group
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    GroupFactory,
    OrganizationFactory,
    TagFactory,
)

LIST = reverse("crm_api:contact-list")


def detail(contact):
    return reverse("crm_api:contact-detail", args=[contact.pk])


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


# -- reading -------------------------------------------------------------------------


def test_detail_shows_nested_emails_phones_addresses_tags_and_custom_fields(api):
    TagFactory(slug="donor")
    CustomFieldFactory(name="shirt_size", field_type="choice", choices=["S", "M", "L"])
    contact = ContactFactory(
        first_name="Ada",
        last_name="Lovelace",
        emails=["ada@example.org"],
        phones=["020 7946 0000"],
        addresses=[{"street_address": "1 Main St", "city": "London", "country": "GB"}],
        tags=["donor"],
        custom_fields={"shirt_size": "M"},
    )

    body = api.get(detail(contact)).json()

    assert body["display_name"] == "Ada Lovelace"
    assert [e["email"] for e in body["emails"]] == ["ada@example.org"]
    assert body["phones"][0]["number"] == "+442079460000"
    assert body["addresses"][0]["country"] == "GB"
    assert body["tags"] == ["donor"]
    assert body["custom_fields"] == {"shirt_size": "M"}


def test_money_custom_value_is_a_string_keeping_its_decimals(api):
    CustomFieldFactory(name="pledge", field_type="money", currency="GBP")
    contact = ContactFactory(custom_fields={"pledge": "12.50"})

    assert api.get(detail(contact)).json()["custom_fields"] == {"pledge": "12.5000"}


def test_trashed_contact_is_not_listed(api):
    kept = ContactFactory()
    trash_contact(ContactFactory())

    ids = [row["id"] for row in api.get(LIST).json()["results"]]

    assert ids == [kept.pk]


def test_trashed_contact_detail_is_404(api):
    contact = trash_contact(ContactFactory())

    assert api.get(detail(contact)).status_code == 404


# -- creating ------------------------------------------------------------------------


def test_create_goes_through_the_service_and_records_who_and_where(api, superuser):
    response = api.post(
        LIST,
        {"first_name": "Grace", "last_name": "Hopper", "emails": [{"email": "grace@example.org"}]},
        format="json",
    )

    assert response.status_code == 201
    contact = Contact.objects.get(pk=response.json()["id"])
    event = contact.activities.get(activity_type=ActivityType.SYSTEM)
    assert (event.subject, event.source, event.created_by) == ("Contact created", "api", superuser)
    assert contact.source == "api"


def test_create_returns_the_saved_contact_with_derived_names(api):
    body = api.post(
        LIST,
        {"first_name": "Grace", "last_name": "Hopper", "tags": [TagFactory(slug="vip").slug]},
        format="json",
    ).json()

    assert body["display_name"] == "Grace Hopper"
    assert body["sort_name"] == "Hopper, Grace"
    assert body["tags"] == ["vip"]


def test_create_sets_custom_fields_by_name(api):
    CustomFieldFactory(name="joined_year", field_type="number")

    body = api.post(
        LIST, {"last_name": "Hopper", "custom_fields": {"joined_year": 1952}}, format="json"
    ).json()

    assert body["custom_fields"] == {"joined_year": "1952.0000"}


def test_create_organization_employer_by_id(api):
    employer = OrganizationFactory(organization_name="Navy")

    body = api.post(LIST, {"last_name": "Hopper", "employer": employer.pk}, format="json").json()

    assert body["employer"] == employer.pk


def test_html_in_names_is_stored_stripped_and_never_returned(api):
    response = api.post(
        LIST, {"first_name": "<b>Ann</b>", "last_name": "<script>x()</script>Lee"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["first_name"] == "Ann"
    assert b"<b>" not in response.content and b"<script>" not in response.content
    assert Contact.objects.get().display_name == "Ann x()Lee"


# -- updating ------------------------------------------------------------------------


def test_patch_changes_only_given_fields_and_records_the_change(api):
    contact = ContactFactory(first_name="Ada", last_name="Byron")

    response = api.patch(detail(contact), {"last_name": "Lovelace"}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Ada Lovelace"
    event = contact.activities.get(subject="Contact updated")
    assert event.changes["last_name"] == ["Byron", "Lovelace"]
    assert event.source == "api"


def test_get_modify_put_round_trip_is_accepted(api):
    TagFactory(slug="donor")
    CustomFieldFactory(name="shirt_size", field_type="choice", choices=["S", "M"])
    contact = ContactFactory(
        first_name="Ada",
        emails=["ada@example.org"],
        phones=["020 7946 0000"],
        addresses=[{"city": "London", "country": "GB"}],
        tags=["donor"],
        custom_fields={"shirt_size": "S"},
    )
    body = api.get(detail(contact)).json()
    body["nickname"] = "Countess"

    response = api.put(detail(contact), body, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["nickname"] == "Countess"
    assert response.json()["emails"][0]["id"] == body["emails"][0]["id"]


def test_put_with_a_new_email_list_replaces_the_old_one(api):
    contact = ContactFactory(emails=["old@example.org"])

    api.patch(detail(contact), {"emails": [{"email": "new@example.org"}]}, format="json")

    assert list(contact.emails.values_list("email", flat=True)) == ["new@example.org"]


# -- trash ---------------------------------------------------------------------------


def test_delete_moves_the_contact_to_the_trash(api):
    contact = ContactFactory()

    response = api.delete(detail(contact))

    assert response.status_code == 204
    assert Contact.all_objects.get(pk=contact.pk).is_deleted


def test_restore_brings_a_trashed_contact_back(api):
    contact = trash_contact(ContactFactory(first_name="Lazarus"))

    response = api.post(reverse("crm_api:contact-restore", args=[contact.pk]))

    assert response.status_code == 200
    assert response.json()["is_deleted"] is False
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_updating_a_trashed_contact_is_404(api):
    contact = trash_contact(ContactFactory())

    assert api.patch(detail(contact), {"nickname": "x"}, format="json").status_code == 404


# -- filters, search, ordering, pagination -------------------------------------------


def ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_filter_by_kind(api):
    ContactFactory()
    org = OrganizationFactory()

    assert ids(api.get(LIST, {"kind": "organization"})) == [org.pk]


def test_filter_by_tag_slug(api):
    TagFactory(slug="donor")
    donor = ContactFactory(tags=["donor"])
    ContactFactory()

    assert ids(api.get(LIST, {"tag": "donor"})) == [donor.pk]


def test_filter_by_group_lists_current_members_only(api):
    group = GroupFactory()
    member, former = ContactFactory(), ContactFactory()
    add_to_group(member, group)
    add_to_group(former, group)
    remove_from_group(former, group)

    assert ids(api.get(LIST, {"group": group.pk})) == [member.pk]


def test_filter_by_flags(api):
    ContactFactory()
    deceased = ContactFactory(is_deceased=True, do_not_email=True)

    assert ids(api.get(LIST, {"is_deceased": "true"})) == [deceased.pk]
    assert ids(api.get(LIST, {"do_not_email": "true"})) == [deceased.pk]


def test_filter_by_created_range(api):
    old = ContactFactory()
    Contact.objects.filter(pk=old.pk).update(created_at="2020-01-01T00:00:00Z")
    new = ContactFactory()

    assert ids(api.get(LIST, {"created_after": "2021-01-01T00:00:00Z"})) == [new.pk]
    assert ids(api.get(LIST, {"created_before": "2021-01-01T00:00:00Z"})) == [old.pk]


def test_search_finds_by_name_and_by_email(api):
    ada = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@example.org"])
    ContactFactory(first_name="Grace", last_name="Hopper", emails=["grace@example.org"])

    assert ids(api.get(LIST, {"search": "Lovelace"})) == [ada.pk]
    assert ids(api.get(LIST, {"search": "ada@exa"})) == [ada.pk]


def test_search_does_not_find_trashed_contacts(api):
    trash_contact(ContactFactory(last_name="Lovelace"))

    assert ids(api.get(LIST, {"search": "Lovelace"})) == []


def test_ordering_by_an_allowed_field(api):
    first = ContactFactory(last_name="Aardvark")
    second = ContactFactory(last_name="Zebra")

    assert ids(api.get(LIST, {"ordering": "-sort_name"})) == [second.pk, first.pk]


def test_ordering_by_a_field_not_allowed_is_ignored(api):
    first = ContactFactory(last_name="Aardvark", birth_date="2000-01-01")
    second = ContactFactory(last_name="Zebra", birth_date="1950-01-01")

    assert ids(api.get(LIST, {"ordering": "birth_date"})) == [first.pk, second.pk]


def test_cursor_pagination_walks_every_contact_once(api):
    made = {ContactFactory().pk for _ in range(5)}
    seen, url = [], LIST + "?page_size=2"
    while url:
        body = api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]

    assert sorted(seen) == sorted(made)


def test_huge_page_size_is_not_an_error(api):
    for _ in range(3):
        ContactFactory()

    response = api.get(LIST, {"page_size": 10**30})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


def test_page_size_over_the_cap_returns_at_most_100(api):
    Contact.objects.bulk_create(
        Contact(display_name=f"C{i}", sort_name=f"C{i:03}", name_key=f"c{i}") for i in range(101)
    )

    assert len(api.get(LIST, {"page_size": 500}).json()["results"]) == 100


def test_invalid_filter_value_is_400_naming_the_parameter(api):
    response = api.get(LIST, {"created_after": "yesterday", "kind": "robot"})

    assert response.status_code == 400
    assert set(response.json()) == {"created", "kind"}


def test_null_byte_in_search_is_400_not_500(api):
    response = api.get(LIST, {"search": "Ada\x00"})

    assert response.status_code == 400
    assert "search" in response.json()


def test_huge_group_id_in_filter_is_400(api):
    response = api.get(LIST, {"group": 10**30})

    assert response.status_code == 400
    assert "group" in response.json()
