"""Every back-office listing runs the same number of queries for 2 rows and for 8."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm_core.models import Mailing, SmartGroup
from crm_core.services import contributions as gifts
from crm_core.services import events as event_services
from crm_core.services.activities import log_activity
from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group
from crm_core.services.memberships import join
from crm_core.services.relationships import create_relationship
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    CustomFieldFactory,
    EventFactory,
    FinancialTypeFactory,
    GroupFactory,
    MembershipTypeFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db


def _activity(n):
    log_activity(ContactFactory(), activity_type="note", subject=f"Note {n}")


def _relationship(n):
    create_relationship(
        relationship_type=RelationshipTypeFactory(slug=f"employee-{n}"),
        contact_a=ContactFactory(),
        contact_b=OrganizationFactory(),
    )


def _group_membership(n):
    add_to_group(ContactFactory(), GroupFactory())


def _membership(n):
    join(ContactFactory(), MembershipTypeFactory())


def _event(n):
    event = EventFactory()
    person = ContactFactory()
    event_services.register(event, registered_by=person, attendees=[{"contact": person}])


def _participant(n):
    _event(n)


def _contribution(n):
    contribution = gifts.create_pending(
        ContactFactory(),
        currency="GBP",
        lines=[{"amount": Decimal("5.00"), "label": "Gift"}],
        campaign=CampaignFactory(),
    )
    gifts.complete(contribution)


def _consent(n):
    record_consent(ContactFactory(), purpose="newsletter", channel="email", granted=True)


def _mailing(n):
    mailing = Mailing.objects.create(name=f"News {n}", subject="Hi", body_html="<p>Hi</p>")
    mailing.include_groups.set([GroupFactory()])


def _smart_group(n):
    SmartGroup.objects.create(name=f"Smart {n}", slug=f"smart-{n}", criteria={"city": "Leeds"})


LISTINGS = {
    "activity": _activity,
    "relationship": _relationship,
    "relationshiptype": lambda n: RelationshipTypeFactory(slug=f"type-{n}"),
    "group": lambda n: GroupFactory(),
    "groupmembership": _group_membership,
    "tag": lambda n: TagFactory(),
    "customfield": lambda n: CustomFieldFactory(),
    "consentrecord": _consent,
    "membershiptype": lambda n: MembershipTypeFactory(),
    "membership": _membership,
    "event": _event,
    "participant": _participant,
    "contribution": _contribution,
    "financialtype": lambda n: FinancialTypeFactory(slug=f"fund-{n}"),
    "campaign": lambda n: CampaignFactory(),
    "mailing": _mailing,
    "smartgroup": _smart_group,
}


def model_of(name):
    from django.apps import apps

    return apps.get_model("crm_core", name)


@pytest.mark.parametrize("model", LISTINGS)
def test_listing_queries_do_not_grow_with_rows(model, client, superuser):
    client.force_login(superuser)
    url = reverse(f"wagtailsnippets_crm_core_{model}:list")
    make = LISTINGS[model]
    for n in range(2):
        make(n)
    assert client.get(url).status_code == 200  # warm caches (content types, site)
    with CaptureQueriesContext(connection) as two:
        assert client.get(url).status_code == 200
    for n in range(2, 8):
        make(n)
    with CaptureQueriesContext(connection) as eight:
        response = client.get(url)
    assert response.status_code == 200
    assert len(eight.captured_queries) == len(two.captured_queries), [
        q["sql"][:200] for q in eight.captured_queries
    ]
    assert model_of(model).objects.count() >= 8  # the rows were made
