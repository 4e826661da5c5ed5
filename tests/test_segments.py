"""Smart groups: criteria filter contacts, bad criteria are refused, admin and API."""

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from crm_core.models import SmartGroup
from crm_core.selectors.segments import segment_contacts, validate_criteria
from crm_core.services import contributions, memberships
from crm_core.services import events as event_services
from crm_core.services.contacts import trash_contact
from crm_core.services.groups import add_to_group, remove_from_group
from tests.conftest import grant
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    EventFactory,
    GroupFactory,
    MembershipTypeFactory,
    OrganizationFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def matches(criteria):
    return set(segment_contacts(criteria).values_list("pk", flat=True))


def ids(*contacts):
    return {contact.pk for contact in contacts}


def at(year, month, day):
    return timezone.make_aware(datetime.datetime(year, month, day, 12))


def gift(contact, amount, received_at, *, currency="GBP"):
    contribution = contributions.create_pending(
        contact, currency=currency, lines=[{"kind": "donation", "amount": amount}]
    )
    return contributions.complete(contribution, received_at=received_at)


def took_part(event, contact, *, attended=False):
    (participant,) = event_services.register(
        event,
        registered_by=contact,
        attendees=[{"contact": contact}],
        now=event.starts_at - datetime.timedelta(days=1),
    )
    if attended:
        event_services.check_in(participant)
    return participant


# -- each criterion -------------------------------------------------------------------------


def test_empty_criteria_match_every_contact_not_in_the_trash():
    kept = ContactFactory()
    trashed = ContactFactory()
    trash_contact(trashed)

    assert matches({}) == ids(kept)


def test_kind_filters_contacts():
    person = ContactFactory()
    org = OrganizationFactory()

    assert matches({"kinds": ["organization"]}) == ids(org)
    assert matches({"kinds": ["individual", "organization"]}) == ids(person, org)


def test_name_and_email_contain_text_in_any_case():
    ada = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@engine.example"])
    ContactFactory(first_name="Charles", last_name="Babbage", emails=["cb@other.example"])

    assert matches({"name_contains": "LOVE"}) == ids(ada)
    assert matches({"email_contains": "Engine"}) == ids(ada)


def test_city_postcode_and_country_look_at_addresses():
    london = ContactFactory(
        addresses=[{"city": "London", "postal_code": "SW1A 1AA", "country": "GB"}]
    )
    paris = ContactFactory(addresses=[{"city": "Paris", "postal_code": "75001", "country": "FR"}])

    assert matches({"city": "london"}) == ids(london)
    assert matches({"postcode": "sw1a"}) == ids(london)
    assert matches({"countries": ["FR"]}) == ids(paris)
    assert matches({"countries": ["fr", "GB"]}) == ids(london, paris)


def test_created_date_range_includes_both_ends():
    old = ContactFactory()
    new = ContactFactory()
    type(old).objects.filter(pk=old.pk).update(created_at=at(2020, 3, 1))
    type(new).objects.filter(pk=new.pk).update(created_at=at(2024, 6, 30))

    assert matches({"created_from": "2024-06-30"}) == ids(new)
    assert matches({"created_to": "2020-03-01"}) == ids(old)
    assert matches({"created_from": "2019-01-01", "created_to": "2024-06-29"}) == ids(old)


def test_in_group_counts_current_members_only():
    group = GroupFactory()
    member, former, outsider = ContactFactory(), ContactFactory(), ContactFactory()
    add_to_group(member, group)
    add_to_group(former, group)
    remove_from_group(former, group)

    assert matches({"in_groups": [group.pk]}) == ids(member)
    assert matches({"not_in_groups": [group.pk]}) == ids(former, outsider)


def test_tags_match_any_of_the_tags():
    donor, volunteer = TagFactory(slug="donor"), TagFactory(slug="volunteer")
    a = ContactFactory(tags=[donor.slug])
    b = ContactFactory(tags=[volunteer.slug])
    ContactFactory()

    assert matches({"tags": [donor.pk]}) == ids(a)
    assert matches({"tags": [donor.pk, volunteer.pk]}) == ids(a, b)


def test_custom_field_equals_compares_typed_values():
    size = CustomFieldFactory(name="shirt_size", field_type="choice", choices=["S", "M", "L"])
    age = CustomFieldFactory(name="age", field_type="number")
    medium = ContactFactory(custom_fields={"shirt_size": "M", "age": "40"})
    ContactFactory(custom_fields={"shirt_size": "L", "age": "41"})

    assert matches({"custom_fields": [{"field": size.pk, "value": "M"}]}) == ids(medium)
    assert matches({"custom_fields": [{"field": age.pk, "value": "40.00"}]}) == ids(medium)


def test_membership_type_and_status_must_hold_for_the_same_membership():
    gold, silver = MembershipTypeFactory(slug="gold"), MembershipTypeFactory(slug="silver")
    today = timezone.localdate()
    recent = ContactFactory()
    lapsed = ContactFactory()
    fresh = memberships.join(recent, gold, today=today)
    old = memberships.join(lapsed, silver, join_date=today - datetime.timedelta(days=3 * 365))
    memberships.update_membership_statuses(today=today)
    fresh.refresh_from_db()
    old.refresh_from_db()
    assert old.status == "expired"

    assert matches({"membership_types": [gold.pk]}) == ids(recent)
    assert matches({"membership_statuses": ["expired"]}) == ids(lapsed)
    assert matches({"membership_types": [gold.pk], "membership_statuses": ["expired"]}) == set()
    assert matches({"membership_statuses": [fresh.status, "expired"]}) == ids(recent, lapsed)


def test_event_participation_and_attendance_in_a_date_range():
    gala = EventFactory(
        starts_at=at(2025, 5, 10), ends_at=at(2025, 5, 10) + datetime.timedelta(hours=2)
    )
    talk = EventFactory(
        starts_at=at(2025, 9, 1), ends_at=at(2025, 9, 1) + datetime.timedelta(hours=2)
    )
    registered, attended, cancelled = ContactFactory(), ContactFactory(), ContactFactory()
    took_part(gala, registered)
    took_part(talk, attended, attended=True)
    event_services.cancel_registration(took_part(gala, cancelled))

    assert matches({"events": [gala.pk]}) == ids(registered)
    assert matches({"events": [gala.pk, talk.pk]}) == ids(registered, attended)
    assert matches({"attended_from": "2025-08-01", "attended_to": "2025-09-01"}) == ids(attended)
    assert matches({"attended_to": "2025-08-01"}) == set()


def test_total_given_in_a_date_range_counts_kept_money_in_one_currency():
    big, small, none = ContactFactory(), ContactFactory(), ContactFactory()
    gift(big, "80", at(2025, 2, 1))
    gift(big, "30", at(2025, 3, 1))
    gift(big, "500", at(2023, 1, 1))
    gift(small, "10", at(2025, 2, 1))
    gift(small, "900", at(2025, 2, 1), currency="EUR")
    range_ = {"giving_from": "2025-01-01", "giving_to": "2025-12-31", "giving_currency": "GBP"}

    assert matches({**range_, "total_given_min": "100"}) == ids(big)
    assert matches({**range_, "total_given_max": "10"}) == ids(small, none)
    assert matches({"giving_currency": "GBP", "total_given_min": "600"}) == ids(big)


def test_last_gift_before_and_after_a_date():
    lapsed, recent = ContactFactory(), ContactFactory()
    ContactFactory()
    gift(lapsed, "10", at(2022, 5, 1))
    gift(recent, "10", at(2022, 5, 1))
    gift(recent, "10", at(2025, 5, 1))

    assert matches({"last_gift_before": "2024-01-01"}) == ids(lapsed)
    assert matches({"last_gift_after": "2024-01-01"}) == ids(recent)


def test_gave_in_one_year_but_not_another_is_lybunt():
    lybunt, loyal, new = ContactFactory(), ContactFactory(), ContactFactory()
    gift(lybunt, "10", at(2024, 6, 1))
    gift(loyal, "10", at(2024, 6, 1))
    gift(loyal, "10", at(2025, 6, 1))
    gift(new, "10", at(2025, 6, 1))

    assert matches({"gave_in_year": 2024, "not_gave_in_year": 2025}) == ids(lybunt)


def test_refunded_and_pending_contributions_are_not_gifts():
    refunded, pending = ContactFactory(), ContactFactory()
    contributions.refund(gift(refunded, "50", at(2025, 1, 1)))
    contributions.create_pending(pending, currency="GBP", lines=[{"amount": "50"}])

    assert matches({"gave_in_year": 2025}) == set()


# -- combinations ---------------------------------------------------------------------------


def test_conditions_combine_with_and_by_default_and_or_with_any():
    group = GroupFactory()
    tag = TagFactory(slug="vip")
    both = ContactFactory(tags=["vip"])
    only_group = ContactFactory()
    only_tag = ContactFactory(tags=["vip"])
    ContactFactory()
    add_to_group(both, group)
    add_to_group(only_group, group)

    assert matches({"in_groups": [group.pk], "tags": [tag.pk]}) == ids(both)
    assert matches({"match": "any", "in_groups": [group.pk], "tags": [tag.pk]}) == ids(
        both, only_group, only_tag
    )


def test_contacts_in_the_trash_never_match_even_with_any():
    group = GroupFactory()
    trashed = ContactFactory(first_name="Zed")
    add_to_group(trashed, group)
    trash_contact(trashed)

    assert matches({"match": "any", "in_groups": [group.pk], "name_contains": "zed"}) == set()


def test_segment_is_a_single_query():
    group = GroupFactory()
    tag = TagFactory(slug="x")
    for _n in range(5):
        add_to_group(ContactFactory(tags=["x"]), group)
    criteria = {
        "in_groups": [group.pk],
        "tags": [tag.pk],
        "giving_currency": "GBP",
        "total_given_max": "5",
        "not_gave_in_year": 2020,
    }
    queryset = segment_contacts(criteria)

    with CaptureQueriesContext(connection) as queries:
        assert len(list(queryset)) == 5
    assert len(queries.captured_queries) == 1


def test_smart_group_contacts_uses_its_criteria():
    tag = TagFactory(slug="friend")
    friend = ContactFactory(tags=["friend"])
    ContactFactory()
    smart = SmartGroup.objects.create(name="Friends", slug="friends", criteria={"tags": [tag.pk]})

    assert list(smart.contacts()) == [friend]


# -- bad criteria ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "key"),
    [
        ({"colour": "blue"}, "criteria"),
        ([1, 2], "criteria"),
        ({"kinds": "individual"}, "kinds"),
        ({"kinds": ["robot"]}, "kinds"),
        ({"kinds": [["individual"]]}, "kinds"),
        ({"match": ["any"]}, "match"),
        ({"custom_fields": [{"field": 1, "value": "x", "op": "gt"}]}, "custom_fields"),
        ({"name_contains": 5}, "name_contains"),
        ({"name_contains": "x" * 5000}, "name_contains"),
        ({"in_groups": ["abc"]}, "in_groups"),
        ({"in_groups": [True]}, "in_groups"),
        ({"in_groups": list(range(1, 500))}, "in_groups"),
        ({"in_groups": [2**40]}, "in_groups"),
        ({"in_groups": [999999]}, "in_groups"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_from": "9999-01-01"}, "created_from"),
        ({"created_from": "2025-02-01", "created_to": "2025-01-01"}, "created_to"),
        ({"gave_in_year": 10**12}, "gave_in_year"),
        ({"gave_in_year": 2024.5}, "gave_in_year"),
        ({"total_given_min": "1e400", "giving_currency": "GBP"}, "total_given_min"),
        ({"total_given_min": "-5", "giving_currency": "GBP"}, "total_given_min"),
        ({"total_given_min": "5"}, "giving_currency"),
        ({"giving_currency": "POUNDS"}, "giving_currency"),
        ({"countries": ["XX"]}, "countries"),
        ({"match": "some"}, "match"),
        ({"custom_fields": [{"field": 999999, "value": "x"}]}, "custom_fields"),
        ({"custom_fields": "x"}, "custom_fields"),
        ({"membership_statuses": ["asleep"]}, "membership_statuses"),
    ],
)
def test_bad_criteria_raise_validation_error_naming_the_criterion(criteria, key):
    with pytest.raises(ValidationError) as raised:
        segment_contacts(criteria)

    assert key in raised.value.message_dict


def test_custom_field_value_must_fit_the_field_type():
    field = CustomFieldFactory(name="age", field_type="number")

    with pytest.raises(ValidationError) as raised:
        validate_criteria({"custom_fields": [{"field": field.pk, "value": "old"}]})

    assert "number" in raised.value.message_dict["custom_fields"][0]


def test_model_clean_reports_bad_criteria_under_the_criteria_field():
    smart = SmartGroup(name="Bad", slug="bad", criteria={"nope": 1})

    with pytest.raises(ValidationError) as raised:
        smart.full_clean()

    assert "Unknown criteria: nope." in raised.value.message_dict["criteria"]


# -- admin ----------------------------------------------------------------------------------


@pytest.fixture
def staff(superuser, client):
    client.force_login(superuser)
    return client


def form_data(**fields):
    data = {"name": "Donors in London", "slug": "donors-london", "description": "", "match": "all"}
    data.update(fields)
    return data


def test_admin_form_stores_criteria_built_from_fields(staff):
    group = GroupFactory()
    tag = TagFactory(slug="donor")

    response = staff.post(
        reverse("wagtailsnippets_crm_core_smartgroup:add"),
        form_data(
            in_groups=[str(group.pk)],
            tags=[str(tag.pk)],
            city="London",
            kinds=["individual"],
            gave_in_year="2024",
            not_gave_in_year="2025",
            total_given_min="50",
            giving_currency="gbp",
        ),
    )

    assert response.status_code == 302
    smart = SmartGroup.objects.get(slug="donors-london")
    assert smart.criteria == {
        "city": "London",
        "kinds": ["individual"],
        "in_groups": [group.pk],
        "tags": [tag.pk],
        "gave_in_year": 2024,
        "not_gave_in_year": 2025,
        "total_given_min": "50",
        "giving_currency": "GBP",
    }
    assert smart.created_by is not None


def test_admin_count_button_shows_matches_without_saving(staff):
    tag = TagFactory(slug="donor")
    ContactFactory(tags=["donor"])
    ContactFactory(tags=["donor"])
    ContactFactory()

    response = staff.post(
        reverse("wagtailsnippets_crm_core_smartgroup:add"),
        form_data(tags=[str(tag.pk)], count="1"),
    )

    assert response.status_code == 200
    assert "2 contacts match" in response.content.decode()
    assert not SmartGroup.objects.exists()


def test_admin_edit_form_shows_saved_values_and_count(staff):
    tag = TagFactory(slug="donor")
    ContactFactory(tags=["donor"])
    smart = SmartGroup.objects.create(
        name="Donors", slug="donors", criteria={"tags": [tag.pk], "city": "Leeds"}
    )

    response = staff.get(reverse("wagtailsnippets_crm_core_smartgroup:edit", args=[smart.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="Leeds"' in html
    assert "0 contacts match" in html


def test_admin_edit_round_trip_keeps_unchanged_criteria(staff):
    group = GroupFactory()
    smart = SmartGroup.objects.create(
        name="G", slug="g", criteria={"in_groups": [group.pk], "match": "any"}
    )

    response = staff.post(
        reverse("wagtailsnippets_crm_core_smartgroup:edit", args=[smart.pk]),
        form_data(name="G", slug="g", match="any", in_groups=[str(group.pk)], postcode="LS1"),
    )

    assert response.status_code == 302
    smart.refresh_from_db()
    assert smart.criteria == {"match": "any", "in_groups": [group.pk], "postcode": "LS1"}


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"total_given_min": "50"}, "giving_currency"),
        ({"created_from": "2025-02-01", "created_to": "2025-01-01"}, "created_to"),
        ({"in_groups": ["999999"]}, "in_groups"),
        ({"gave_in_year": "99999"}, "gave_in_year"),
        ({"giving_currency": "XYZW"}, "giving_currency"),
        ({"custom_value": "M"}, "custom_field"),
    ],
)
def test_admin_form_shows_errors_next_to_fields(staff, fields, field_name):
    response = staff.post(reverse("wagtailsnippets_crm_core_smartgroup:add"), form_data(**fields))

    assert response.status_code == 200
    assert response.context["form"].errors[field_name]
    assert not SmartGroup.objects.exists()


def test_admin_custom_field_value_of_wrong_type_is_a_form_error(staff):
    field = CustomFieldFactory(name="age", field_type="number")

    response = staff.post(
        reverse("wagtailsnippets_crm_core_smartgroup:add"),
        form_data(custom_field=str(field.pk), custom_value="old", count="1"),
    )

    assert response.status_code == 200
    assert response.context["form"].errors["custom_value"]


def test_admin_inspect_lists_matching_contacts_with_links_and_count(staff):
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    ContactFactory(first_name="Charles", last_name="Babbage")
    smart = SmartGroup.objects.create(name="A", slug="a", criteria={"name_contains": "ada"})

    response = staff.get(reverse("wagtailsnippets_crm_core_smartgroup:inspect", args=[smart.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "1 contact matches" in html
    assert reverse("wagtailsnippets_crm_core_contact:inspect", args=[ada.pk]) in html
    assert "Babbage" not in html
    assert "Name contains" in html


def test_admin_inspect_of_criteria_naming_a_deleted_group_explains_instead_of_failing(staff):
    group = GroupFactory()
    smart = SmartGroup.objects.create(name="A", slug="a", criteria={"in_groups": [group.pk]})
    group.delete()

    inspect = staff.get(reverse("wagtailsnippets_crm_core_smartgroup:inspect", args=[smart.pk]))
    edit = staff.get(reverse("wagtailsnippets_crm_core_smartgroup:edit", args=[smart.pk]))

    assert inspect.status_code == 200
    assert "no longer work" in inspect.content.decode()
    assert edit.status_code == 200


def test_admin_needs_smart_group_permissions(client):
    user = UserFactory(is_staff=True)
    grant(user, "wagtailadmin.access_admin")
    client.force_login(user)

    assert client.get(reverse("wagtailsnippets_crm_core_smartgroup:list")).status_code in (
        302,
        403,
    )
    grant(user, "crm_core.view_smartgroup")
    assert client.get(reverse("wagtailsnippets_crm_core_smartgroup:list")).status_code == 200


# -- API ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_throttle_counters():
    # API throttling counts requests per user id in the (test, in-memory)
    # cache; after the rest of the suite the same ids would be throttled.
    cache.clear()


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def contacts_url(smart):
    return reverse("crm_api:smart-group-contacts", args=[smart.pk])


def test_api_lists_smart_groups_with_their_criteria(api):
    SmartGroup.objects.create(name="All", slug="all", criteria={"kinds": ["individual"]})

    response = api.get(reverse("crm_api:smart-group-list"))

    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert row["slug"] == "all"
    assert row["criteria"] == {"kinds": ["individual"]}


def test_api_is_read_only(api):
    response = api.post(reverse("crm_api:smart-group-list"), {"name": "x"}, format="json")

    assert response.status_code == 405


def test_api_contacts_of_a_smart_group_are_paginated(api):
    tag = TagFactory(slug="t")
    for n in range(3):
        ContactFactory(last_name=f"Member{n}", tags=["t"])
    ContactFactory(last_name="Outsider")
    smart = SmartGroup.objects.create(name="T", slug="t", criteria={"tags": [tag.pk]})

    first = api.get(contacts_url(smart), {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    names = [row["last_name"] for row in first["results"] + second["results"]]
    assert names == ["Member0", "Member1", "Member2"]


def test_api_contacts_of_criteria_that_no_longer_hold_is_a_400(api):
    group = GroupFactory()
    smart = SmartGroup.objects.create(name="G", slug="g", criteria={"in_groups": [group.pk]})
    group.delete()

    response = api.get(contacts_url(smart))

    assert response.status_code == 400
    assert "in_groups" in response.json()


def test_api_anonymous_is_refused():
    smart = SmartGroup.objects.create(name="A", slug="a")
    client = APIClient()

    assert client.get(reverse("crm_api:smart-group-list")).status_code == 401
    assert client.get(contacts_url(smart)).status_code == 401


def test_api_user_without_view_permission_is_refused(user):
    smart = SmartGroup.objects.create(name="A", slug="a")
    client = APIClient()
    client.force_authenticate(user)

    assert client.get(reverse("crm_api:smart-group-list")).status_code == 403
    grant(user, "crm_core.view_smartgroup")
    assert client.get(reverse("crm_api:smart-group-list")).status_code == 200
    # Listing the contacts shows personal data: that needs view_contact too.
    assert client.get(contacts_url(smart)).status_code == 403
    grant(user, "crm_core.view_contact")
    assert client.get(contacts_url(smart)).status_code == 200


def full_contact(n):
    return ContactFactory(
        last_name=f"Person{n:02d}",
        emails=[f"p{n}@example.org", f"p{n}@work.example.org"],
        phones=["020 7946 0000"],
        addresses=[{"street_address": f"{n} Main St", "city": "London", "country": "GB"}],
        tags=["donor", "volunteer"],
    )


def test_api_contacts_query_count_does_not_grow_with_contacts(api, django_assert_num_queries):
    donor = TagFactory(slug="donor")
    TagFactory(slug="volunteer")
    group = GroupFactory()
    smart = SmartGroup.objects.create(
        name="D",
        slug="d",
        criteria={"tags": [donor.pk], "in_groups": [group.pk], "gave_in_year": 2024},
    )

    def add_member(n):
        contact = full_contact(n)
        add_to_group(contact, group)
        gift(contact, "5", at(2024, 1, 1))

    add_member(0)
    with CaptureQueriesContext(connection) as few:
        response = api.get(contacts_url(smart), {"page_size": 100})
    assert len(response.json()["results"]) == 1
    for n in range(1, 20):
        add_member(n)

    with django_assert_num_queries(len(few.captured_queries)):
        response = api.get(contacts_url(smart), {"page_size": 100})
    assert len(response.json()["results"]) == 20


def test_api_list_query_count_does_not_grow_with_smart_groups(api, django_assert_num_queries):
    SmartGroup.objects.create(name="S0", slug="s0")
    with CaptureQueriesContext(connection) as few:
        api.get(reverse("crm_api:smart-group-list"))
    for n in range(1, 20):
        SmartGroup.objects.create(name=f"S{n}", slug=f"s{n}", criteria={"city": "X"})

    with django_assert_num_queries(len(few.captured_queries)):
        response = api.get(reverse("crm_api:smart-group-list"), {"page_size": 100})
    assert len(response.json()["results"]) == 20


def test_decimal_amounts_are_stored_as_text():
    assert validate_criteria({"giving_currency": "gbp", "total_given_max": Decimal("5.5")}) == {
        "giving_currency": "GBP",
        "total_given_max": "5.5",
    }
