"""Bad input to the API is a JSON 400 that names the field, never a 500."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.models import Contact
from tests.factories import ContactFactory, CustomFieldFactory, GroupFactory

LIST = reverse("crm_api:contact-list")


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def post_contact(api, body):
    return api.post(LIST, body, format="json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": 42}, "first_name"),
        ({"first_name": ["Ann"]}, "first_name"),
        ({"last_name": {"a": 1}}, "last_name"),
        ({"last_name": "Lee", "emails": "ann@example.org"}, "emails"),
        ({"last_name": "Lee", "emails": [42]}, "emails"),
        ({"last_name": "Lee", "phones": {"number": "1"}}, "phones"),
        ({"last_name": "Lee", "tags": {"slug": "donor"}}, "tags"),
        ({"last_name": "Lee", "tags": [1, 2]}, "tags"),
        ({"last_name": "Lee", "custom_fields": ["a"]}, "custom_fields"),
        ({"last_name": "Lee", "do_not_email": "perhaps"}, "do_not_email"),
        ({"last_name": "Lee", "birth_date": 19990101}, "birth_date"),
        ({"last_name": "Lee", "kind": "robot"}, "kind"),
        ({"last_name": "Lee", "employer": "Navy"}, "employer"),
        ({"last_name": "Lee", "employer": True}, "employer"),
    ],
)
def test_wrong_type_is_400_naming_the_field(api, body, field):
    response = post_contact(api, body)

    assert response.status_code == 400
    assert field in response.json()
    assert not Contact.objects.exists()


def test_unknown_field_is_400_naming_it(api):
    response = post_contact(api, {"last_name": "Lee", "nickname2": "Annie"})

    assert response.status_code == 400
    assert response.json() == {"nickname2": ["Unknown field."]}


def test_unknown_field_in_a_nested_email_is_400(api):
    response = post_contact(
        api, {"last_name": "Lee", "emails": [{"email": "a@example.org", "spam": True}]}
    )

    assert response.status_code == 400
    # DRF keys the errors of a list by the index of the row.
    assert response.json() == {"emails": {"0": {"spam": ["Unknown field."]}}}


def test_read_only_fields_posted_back_are_ignored(api):
    response = post_contact(
        api, {"last_name": "Lee", "id": 999, "display_name": "Hacked", "created_at": "2000-01-01"}
    )

    assert response.status_code == 201
    assert response.json()["display_name"] == "Lee"
    assert response.json()["id"] != 999


@pytest.mark.parametrize("body", ["[1, 2]", '"Ann"', "42", "null"])
def test_body_that_is_not_an_object_is_400(api, body):
    response = api.post(LIST, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()


def test_malformed_json_is_400(api):
    response = api.post(LIST, '{"last_name": "Lee",', content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()


def test_oversize_first_name_is_400_naming_it(api):
    response = post_contact(api, {"first_name": "A" * 10_000})

    assert response.status_code == 400
    assert "first_name" in response.json()


def test_null_byte_in_a_name_is_400_naming_it(api):
    response = post_contact(api, {"first_name": "Ann\x00", "last_name": "Lee"})

    assert response.status_code == 400
    assert "first_name" in response.json()


def test_null_byte_in_a_tag_slug_is_400(api):
    response = post_contact(api, {"last_name": "Lee", "tags": ["donor\x00"]})

    assert response.status_code == 400
    assert "tags" in response.json()


def test_null_byte_in_a_custom_field_name_is_400(api):
    response = post_contact(api, {"last_name": "Lee", "custom_fields": {"size\x00": "M"}})

    assert response.status_code == 400
    assert "custom_fields" in response.json()


def test_malformed_email_is_400_naming_emails(api):
    response = post_contact(api, {"last_name": "Lee", "emails": [{"email": "not-an-email"}]})

    assert response.status_code == 400
    assert "emails" in response.json()


def test_malformed_phone_is_400_naming_phones(api):
    response = post_contact(api, {"last_name": "Lee", "phones": [{"number": "12"}]})

    assert response.status_code == 400
    assert "phones" in response.json()


def test_bad_country_code_is_400_naming_addresses(api):
    response = post_contact(
        api, {"last_name": "Lee", "addresses": [{"city": "X", "country": "XX"}]}
    )

    assert response.status_code == 400
    assert "addresses" in response.json()


def test_unknown_tag_slug_is_400_naming_tags(api):
    response = post_contact(api, {"last_name": "Lee", "tags": ["no-such-tag"]})

    assert response.status_code == 400
    assert response.json() == {"tags": ["Unknown tag: no-such-tag."]}


def test_unknown_custom_field_is_400_naming_custom_fields(api):
    response = post_contact(api, {"last_name": "Lee", "custom_fields": {"no_such": 1}})

    assert response.status_code == 400
    assert response.json() == {"custom_fields": ["no_such: unknown custom field."]}


def test_invalid_custom_value_is_400_naming_the_custom_field(api):
    CustomFieldFactory(name="shirt_size", field_type="choice", choices=["S", "M"])

    response = post_contact(api, {"last_name": "Lee", "custom_fields": {"shirt_size": "XXL"}})

    assert response.status_code == 400
    assert response.json()["custom_fields"][0].startswith("shirt_size:")


@pytest.mark.parametrize("employer", [10**30, -1, 0, 2**63])
def test_out_of_range_employer_id_is_400(api, employer):
    response = post_contact(api, {"last_name": "Lee", "employer": employer})

    assert response.status_code == 400
    assert "employer" in response.json()


def test_employer_that_is_a_person_is_400(api):
    person = ContactFactory()

    response = post_contact(api, {"last_name": "Lee", "employer": person.pk})

    assert response.status_code == 400
    assert "employer" in response.json()


def test_huge_id_in_the_url_is_404(api):
    response = api.get(reverse("crm_api:contact-detail", args=[10**30]))

    assert response.status_code == 404


def test_organization_without_a_name_is_400_from_the_service(api):
    response = post_contact(api, {"kind": "organization"})

    assert response.status_code == 400
    assert "organization_name" in response.json()


def test_huge_ids_in_a_group_membership_are_400(api):
    response = api.post(
        reverse("crm_api:group-membership-list"),
        {"contact": 10**30, "group": GroupFactory().pk},
        format="json",
    )

    assert response.status_code == 400
    assert "contact" in response.json()


def test_huge_volunteer_duration_is_400(api):
    response = api.post(
        reverse("crm_api:activity-list"),
        {
            "contact": ContactFactory().pk,
            "activity_type": "volunteer",
            "subject": "Shelving",
            "duration": "999999999 00:00:00",
        },
        format="json",
    )

    assert response.status_code == 400
    assert "duration" in response.json()


def test_json_nested_too_deeply_is_400(api):
    response = api.post(LIST, "[" * 100_000 + "]" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()
