"""Every list endpoint runs the same number of queries for 3 rows as for 30."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.services.activities import log_activity
from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group
from crm_core.services.relationships import create_relationship
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    GroupFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
    TagFactory,
)

SERIAL = itertools.count()


def full_contact(n):
    return ContactFactory(
        emails=[f"c{n}@example.org", f"c{n}@work.example.org"],
        phones=["020 7946 0000", "0161 496 0000"],
        addresses=[{"street_address": f"{n} Main St", "city": "London", "country": "GB"}],
        tags=["donor", "volunteer"],
        custom_fields={"shirt_size": "M", "joined": "2020-01-01"},
    )


def make_contacts(count):
    for n in range(count):
        full_contact(n)


def make_memberships(count):
    group = GroupFactory()
    for _ in range(count):
        add_to_group(ContactFactory(), group)


def make_relationships(count):
    rtype = RelationshipTypeFactory()
    org = OrganizationFactory()
    for _ in range(count):
        create_relationship(relationship_type=rtype, contact_a=ContactFactory(), contact_b=org)


def make_activities(count):
    contact = ContactFactory()
    for n in range(count):
        log_activity(contact, activity_type="task", subject=f"Task {n}", status="scheduled")


def make_consent(count):
    contact = ContactFactory()
    for n in range(count):
        record_consent(contact, purpose=f"purpose-{n}", channel="email", granted=True)


def make_groups(count):
    for _ in range(count):
        GroupFactory()


def make_tags(count):
    for _ in range(count):
        TagFactory()


def make_custom_fields(count):
    for _ in range(count):
        CustomFieldFactory()


def make_relationship_types(count):
    for _ in range(count):
        RelationshipTypeFactory(slug=f"type-{next(SERIAL)}")


@pytest.fixture
def api(superuser):
    TagFactory(slug="donor")
    TagFactory(slug="volunteer")
    CustomFieldFactory(name="shirt_size", field_type="choice", choices=["S", "M"])
    CustomFieldFactory(name="joined", field_type="date")
    client = APIClient()
    client.force_authenticate(superuser)
    return client


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("contact-list", make_contacts),
        ("group-membership-list", make_memberships),
        ("relationship-list", make_relationships),
        ("activity-list", make_activities),
        ("consent-record-list", make_consent),
        ("group-list", make_groups),
        ("tag-list", make_tags),
        ("custom-field-list", make_custom_fields),
        ("relationship-type-list", make_relationship_types),
    ],
)
def test_list_query_count_does_not_grow_with_rows(api, django_assert_num_queries, name, make):
    url = reverse(f"crm_api:{name}")
    make(3)
    with CaptureQueriesContext(connection) as few:
        first = api.get(url, {"page_size": 100})
    assert first.status_code == 200
    rows_before = len(first.json()["results"])
    make(27)

    with django_assert_num_queries(len(few.captured_queries)):
        response = api.get(url, {"page_size": 100})

    assert len(response.json()["results"]) >= rows_before + 27
