"""Membership API: types, memberships and their actions, status rules."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from crm_core.models import Contact, Membership, MembershipStatusRule, MembershipType
from crm_core.services import memberships
from tests.conftest import grant, walk_pages
from tests.factories import (
    ContactFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
    RelationshipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TYPES = reverse("crm_api:membership-type-list")
MEMBERSHIPS = reverse("crm_api:membership-list")
RULES = reverse("crm_api:membership-status-rule-list")


def action(membership, name):
    return reverse(f"crm_api:membership-{name}", args=[membership.pk])


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api(superuser):
    return client_for(superuser)


@pytest.fixture
def mtype():
    return MembershipTypeFactory()


@pytest.fixture
def member(contact, mtype):
    return memberships.join(contact, mtype)


def type_body(**overrides):
    return {
        "name": "Family",
        "slug": "family",
        "fee": "45.00",
        "currency": "GBP",
        "financial_type": FinancialTypeFactory(slug="member-dues").pk,
        "duration_unit": "year",
        "duration_interval": 1,
        **overrides,
    }


# -- membership types -------------------------------------------------------------------


def test_creating_a_membership_type(api):
    rtype = RelationshipTypeFactory()
    response = api.post(TYPES, type_body(inherit_relationship_types=[rtype.pk]), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["fee"] == "45.00"
    assert list(MembershipType.objects.get(slug="family").inherit_relationship_types.all()) == [
        rtype
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "XXX"}, "currency"),
        ({"fee": "-5"}, "fee"),
        ({"fee": "12.345"}, "fee"),
        ({"fee": "1e30"}, "fee"),
        ({"fee": "abc"}, "fee"),
        ({"duration_interval": 0}, "duration_interval"),
        ({"duration_interval": 10**12}, "duration_interval"),
        ({"period_type": "fixed"}, "fixed_period_start_month"),
        (
            {"period_type": "fixed", "fixed_period_start_month": 2, "fixed_period_start_day": 30},
            "fixed_period_start_day",
        ),
        ({"duration_unit": "lifetime", "auto_renew": "optional"}, "auto_renew"),
        ({"name": "x" * 100_000}, "name"),
        ({"financial_type": 10**30}, "financial_type"),
    ],
)
def test_bad_membership_types_are_refused_with_the_field_named(api, overrides, field):
    response = api.post(TYPES, type_body(**overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not MembershipType.objects.filter(slug="family").exists()


def test_a_membership_type_in_use_cannot_be_deleted(api, member):
    response = api.delete(
        reverse("crm_api:membership-type-detail", args=[member.membership_type_id])
    )
    assert response.status_code == 409
    assert MembershipType.objects.filter(pk=member.membership_type_id).exists()


def test_an_unused_membership_type_can_be_deleted(api, mtype):
    response = api.delete(reverse("crm_api:membership-type-detail", args=[mtype.pk]))
    assert response.status_code == 204


# -- joining ------------------------------------------------------------------------------


def test_joining_through_the_api_records_the_actor_and_source(api, superuser, contact, mtype):
    response = api.post(
        MEMBERSHIPS, {"contact": contact.pk, "membership_type": mtype.pk}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "new"
    assert body["join_date"] == timezone.localdate().isoformat()
    event = contact.activities.order_by("-id").first()
    assert (event.created_by, event.source) == (superuser, "api")


def test_joining_as_pending(api, contact, mtype):
    response = api.post(
        MEMBERSHIPS,
        {"contact": contact.pk, "membership_type": mtype.pk, "pending": True},
        format="json",
    )
    assert response.json()["status"] == "pending"


def test_joining_twice_is_a_conflict_that_says_to_renew(api, member):
    response = api.post(
        MEMBERSHIPS,
        {"contact": member.contact_id, "membership_type": member.membership_type_id},
        format="json",
    )
    assert response.status_code == 409
    assert "renew" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"membership_type": 999999}, "membership_type"),
        ({"membership_type": "abc"}, "membership_type"),
        ({"membership_type": 10**30}, "membership_type"),
        ({"contact": 999999}, "contact"),
        ({"join_date": "2025-02-30"}, "join_date"),
        ({"join_date": "0001-01-01"}, "join_date"),
        ({"join_date": "9999-12-31"}, "join_date"),
        ({"join_date": 20250101}, "join_date"),
        ({"start_date": ["2025-01-01"]}, "start_date"),
        ({"pending": "perhaps"}, "pending"),
        ({"status": "current"}, "status"),
        ({"end_date": "2099-01-01"}, "end_date"),
    ],
)
def test_bad_joins_are_refused_with_the_field_named(api, contact, mtype, body, field):
    payload = {"contact": contact.pk, "membership_type": mtype.pk, **body}
    response = api.post(MEMBERSHIPS, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Membership.objects.exists()


def test_memberships_cannot_be_edited_directly(api, member):
    url = reverse("crm_api:membership-detail", args=[member.pk])
    response = api.patch(url, {"end_date": "2099-01-01", "status": "current"}, format="json")
    assert response.status_code == 405
    member.refresh_from_db()
    assert member.end_date != datetime.date(2099, 1, 1)


@pytest.mark.parametrize("ordering", ["end_date", "-end_date"])
def test_paging_by_end_date_returns_each_membership_once(api, mtype, ordering):
    ending = memberships.join(ContactFactory(), mtype)
    lifetime_type = MembershipTypeFactory(duration_unit="lifetime")
    lifetime = [memberships.join(ContactFactory(), lifetime_type).pk for _ in range(3)]
    ids = walk_pages(api, MEMBERSHIPS, {"ordering": ordering, "page_size": 1})
    # A lifetime membership never ends: last going up, first going down.
    if ordering == "end_date":
        assert ids == [ending.pk, *lifetime]
    else:
        assert ids == [*reversed(lifetime), ending.pk]


# -- actions ------------------------------------------------------------------------------


def test_renewing_through_the_api_extends_the_end_date(api, member):
    old_end = member.end_date
    response = api.post(action(member, "renew"), {"terms": 2}, format="json")
    assert response.status_code == 200, response.json()
    member.refresh_from_db()
    assert member.end_date > old_end
    assert response.json()["end_date"] == member.end_date.isoformat()


@pytest.mark.parametrize("terms", [0, -3, 11, 10**20, "many", 1.5, None, [1]])
def test_renewing_with_a_bad_number_of_terms_is_refused(api, member, terms):
    old_end = member.end_date
    response = api.post(action(member, "renew"), {"terms": terms}, format="json")
    assert response.status_code == 400
    assert "terms" in response.json()
    member.refresh_from_db()
    assert member.end_date == old_end


def test_renewing_a_cancelled_membership_is_a_conflict(api, member):
    memberships.cancel(member)
    response = api.post(action(member, "renew"), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "MembershipNotRenewable"


def test_renewing_for_a_contact_marked_deceased_is_a_conflict(api, member):
    Contact.objects.filter(pk=member.contact_id).update(is_deceased=True)
    response = api.post(action(member, "renew"), {}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "This contact is deceased."
    assert Membership.objects.get(pk=member.pk).end_date == member.end_date


def test_cancelling_through_the_api_keeps_the_reason(api, member):
    response = api.post(action(member, "cancel"), {"reason": "Moved away"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_reason"] == "Moved away"


def test_a_huge_cancel_reason_is_refused(api, member):
    response = api.post(action(member, "cancel"), {"reason": "x" * 1_000_000}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()


def test_changing_type_through_the_api(api, member):
    gold = MembershipTypeFactory()
    response = api.post(action(member, "change-type"), {"membership_type": gold.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["membership_type"] == gold.pk


def test_changing_to_an_unknown_type_is_refused(api, member):
    response = api.post(action(member, "change-type"), {"membership_type": 987654}, format="json")
    assert response.status_code == 400
    assert "membership_type" in response.json()


# -- filters ------------------------------------------------------------------------------


def test_memberships_filter_by_status_and_end_date(api, mtype):
    old = memberships.join(ContactFactory(), mtype, join_date=datetime.date(2020, 1, 1))
    recent = memberships.join(ContactFactory(), mtype)
    expired = api.get(MEMBERSHIPS, {"status": "expired"}).json()["results"]
    assert [row["id"] for row in expired] == [old.pk]
    later = api.get(MEMBERSHIPS, {"end_date_after": "2021-01-01"}).json()["results"]
    assert [row["id"] for row in later] == [recent.pk]


def test_memberships_filter_by_contact(api, member, mtype):
    memberships.join(ContactFactory(), mtype)
    rows = api.get(MEMBERSHIPS, {"contact": member.contact_id}).json()["results"]
    assert [row["id"] for row in rows] == [member.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"end_date_after": "2025-02-30"},
        {"status": "alive"},
        {"contact": "10000000000000000000000"},
        {"membership_type": "x"},
    ],
)
def test_bad_filters_are_a_400(api, params):
    assert api.get(MEMBERSHIPS, params).status_code == 400


# -- status rules -------------------------------------------------------------------------


def test_staff_with_the_change_permission_can_edit_a_status_rule():
    user = grant(
        UserFactory(),
        "crm_core.view_membershipstatusrule",
        "crm_core.change_membershipstatusrule",
    )
    rule = MembershipStatusRule.objects.get(status="grace")
    url = reverse("crm_api:membership-status-rule-detail", args=[rule.pk])
    response = client_for(user).patch(url, {"end_offset_interval": 10}, format="json")
    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.end_offset_interval == 10


def test_a_status_rule_offset_out_of_range_is_refused(api):
    rule = MembershipStatusRule.objects.get(status="grace")
    url = reverse("crm_api:membership-status-rule-detail", args=[rule.pk])
    response = api.patch(url, {"end_offset_interval": 100_000}, format="json")
    assert response.status_code == 400
    assert "end_offset_interval" in response.json()


def test_status_rules_cannot_be_created_or_deleted(api):
    rule = MembershipStatusRule.objects.get(status="grace")
    assert api.post(RULES, {"status": "pending"}, format="json").status_code == 405
    url = reverse("crm_api:membership-status-rule-detail", args=[rule.pk])
    assert api.delete(url).status_code == 405


def test_reading_status_rules_needs_the_view_permission(user):
    assert client_for(user).get(RULES).status_code == 403


# -- permissions --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [TYPES, MEMBERSHIPS, RULES])
def test_anonymous_requests_get_401(url):
    assert APIClient().get(url).status_code == 401


@pytest.mark.parametrize("url", [TYPES, MEMBERSHIPS, RULES])
def test_users_without_permissions_get_403(user, url):
    assert client_for(user).get(url).status_code == 403


def test_joining_needs_the_add_permission(user, contact, mtype):
    grant(user, "crm_core.view_membership")
    response = client_for(user).post(
        MEMBERSHIPS, {"contact": contact.pk, "membership_type": mtype.pk}, format="json"
    )
    assert response.status_code == 403
    assert not Membership.objects.exists()


def test_renewing_needs_the_renew_permission(user, member):
    grant(user, "crm_core.view_membership", "crm_core.change_membership")
    old_end = member.end_date
    assert client_for(user).post(action(member, "renew"), {}, format="json").status_code == 403
    member.refresh_from_db()
    assert member.end_date == old_end


def test_the_renew_permission_allows_renewing(user, member):
    grant(user, "crm_core.renew_membership")
    assert client_for(user).post(action(member, "renew"), {}, format="json").status_code == 200


def test_cancelling_needs_the_change_permission(user, member):
    grant(user, "crm_core.view_membership", "crm_core.renew_membership")
    assert client_for(user).post(action(member, "cancel"), {}, format="json").status_code == 403
    member.refresh_from_db()
    assert member.status == "new"


def test_renewing_anonymously_gets_401(member):
    assert APIClient().post(action(member, "renew"), {}, format="json").status_code == 401


# -- constant queries ---------------------------------------------------------------------


def make_memberships(count):
    mtype = MembershipTypeFactory(slug="query-count")
    for _ in range(count):
        memberships.join(ContactFactory(), mtype)


def make_types(count):
    rtype = RelationshipTypeFactory()
    for _ in range(count):
        MembershipTypeFactory().inherit_relationship_types.add(rtype)


@pytest.mark.parametrize(
    ("url", "make"),
    [(MEMBERSHIPS, make_memberships), (TYPES, make_types)],
)
def test_list_query_count_does_not_grow_with_rows(api, url, make):
    make(2)
    with CaptureQueriesContext(connection) as few:
        assert len(api.get(url, {"page_size": 100}).json()["results"]) == 2
    make(20)
    with CaptureQueriesContext(connection) as many:
        assert len(api.get(url, {"page_size": 100}).json()["results"]) == 22
    assert len(many) == len(few)


def test_status_rule_list_query_count(api, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        assert len(api.get(RULES).json()["results"]) == 4


def test_the_currency_of_a_type_with_members_cannot_change(api, member, mtype):
    detail = reverse("crm_api:membership-type-detail", args=[mtype.pk])
    response = api.patch(detail, {"currency": "JPY", "fee": "3000"}, format="json")
    assert response.status_code == 400
    assert "currency" in response.json()
    mtype.refresh_from_db()
    assert mtype.currency == "GBP"


def test_the_currency_of_an_unused_type_may_change(api, mtype):
    detail = reverse("crm_api:membership-type-detail", args=[mtype.pk])
    response = api.patch(detail, {"currency": "EUR"}, format="json")
    assert response.status_code == 200
    mtype.refresh_from_db()
    assert mtype.currency == "EUR"
