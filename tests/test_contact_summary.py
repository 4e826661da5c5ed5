"""The contact summary (the contact's inspect page in the back office)."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm_core.services import contributions, events, memberships
from crm_core.services.contacts import flag_possible_duplicate
from crm_core.services.relationships import create_relationship
from tests.conftest import grant
from tests.factories import (
    ContactFactory,
    EventFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
    RelationshipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

INSPECT_URL = "wagtailsnippets_crm_core_contact:inspect"


def summary(client, contact):
    response = client.get(reverse(INSPECT_URL, args=[contact.pk]))
    assert response.status_code == 200
    return response.content.decode()


def staff(*perms):
    return grant(
        UserFactory(is_staff=True), "wagtailadmin.access_admin", "crm_core.view_contact", *perms
    )


def paid(contact, amount, *, currency="GBP", received_at=None):
    contribution = contributions.create_pending(
        contact, currency=currency, lines=[{"kind": "donation", "amount": amount}]
    )
    return contributions.complete(contribution, received_at=received_at or timezone.now())


def local_noon(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))


@pytest.fixture
def ada(db):
    return ContactFactory(first_name="Ada", last_name="Lovelace")


def test_summary_shows_memberships_with_type_status_and_dates(client, superuser, ada):
    client.force_login(superuser)
    membership_type = MembershipTypeFactory(slug="annual", name="Annual supporter")
    membership = memberships.join(ada, membership_type, join_date=datetime.date(2026, 1, 15))
    content = summary(client, ada)
    assert "Annual supporter" in content
    assert membership.get_status_display() in content
    assert "15 Jan 2026" in content
    assert membership.end_date.strftime("%-d %b %Y") in content


def test_summary_shows_event_history_with_date_status_and_role(client, superuser, ada):
    client.force_login(superuser)
    event = EventFactory(
        title="Spring lecture", starts_at=timezone.now() + datetime.timedelta(days=3)
    )
    (participant,) = events.register(event, registered_by=ada, attendees=[{"contact": ada}])
    content = summary(client, ada)
    assert "Spring lecture" in content
    assert "Registered" in content
    assert str(participant.role) in content


def test_summary_gives_lifetime_and_this_year_totals_and_the_last_gift(client, superuser, ada):
    client.force_login(superuser)
    today = timezone.localdate()
    paid(ada, "100.00", received_at=local_noon(today.replace(year=today.year - 2)))
    paid(ada, "25.00", received_at=local_noon(today.replace(day=1)))
    paid(ada, "12.34", received_at=local_noon(today))
    refunded = paid(ada, "50.00", received_at=local_noon(today))
    contributions.refund(refunded, amount="50.00")
    contributions.create_pending(ada, currency="GBP", lines=[{"amount": "999"}])
    content = summary(client, ada)
    assert "137.34" in content  # lifetime: refunds and unpaid pledges do not count
    assert "37.34" in content  # this year
    assert "Last gift" in content and "12.34" in content
    assert "The latest 5 of 5 contributions" in content


def test_summary_lists_recurring_gifts_with_amount_frequency_and_status(client, superuser, ada):
    client.force_login(superuser)
    contributions.create_recurring(
        ada,
        amount="15.00",
        currency="GBP",
        frequency_unit="month",
        financial_type=FinancialTypeFactory(),
    )
    content = summary(client, ada)
    assert "Recurring gifts" in content
    assert "15.00" in content
    assert "Every month" in content
    assert "Pending" in content


def test_summary_shows_relationships_and_households_with_links(client, superuser, ada):
    client.force_login(superuser)
    home = ContactFactory(kind="household", household_name="Lovelace household")
    member_of = RelationshipTypeFactory(
        slug="household-member-of",
        label_a_to_b="Household member of",
        label_b_to_a="Household of",
        contact_kind_a="individual",
        contact_kind_b="household",
    )
    create_relationship(relationship_type=member_of, contact_a=ada, contact_b=home)
    content = summary(client, ada)
    assert "Households" in content
    assert "Lovelace household" in content
    assert reverse(INSPECT_URL, args=[home.pk]) in content
    household_page = summary(client, home)
    assert "Household members" in household_page and "Ada Lovelace" in household_page


def test_actions_link_to_the_admin_views_for_a_superuser(client, superuser, ada):
    client.force_login(superuser)
    membership = memberships.join(ada, MembershipTypeFactory(slug="annual"))
    pledge = contributions.create_pending(ada, currency="GBP", lines=[{"amount": "20"}])
    other = ContactFactory(first_name="Ada", last_name="Lovelace")
    pair = flag_possible_duplicate(ada, other, 100, ["email"])
    content = summary(client, ada)
    assert reverse("wagtailsnippets_crm_core_activity:add") in content
    assert reverse("wagtailsnippets_crm_core_participant:add") in content
    assert reverse("wagtailsnippets_crm_core_contribution:add") in content
    assert reverse("crm_membership_renew", args=[membership.pk]) in content
    assert (
        reverse("wagtailsnippets_crm_core_contribution:record_payment", args=[pledge.pk]) in content
    )
    assert reverse("crm_duplicates_review", args=[pair.pk]) in content


def test_staff_who_may_only_view_see_no_action_links(client, ada):
    client.force_login(staff())
    membership = memberships.join(ada, MembershipTypeFactory(slug="annual"))
    pledge = contributions.create_pending(ada, currency="GBP", lines=[{"amount": "20"}])
    pair = flag_possible_duplicate(ada, ContactFactory(), 100, ["email"])
    content = summary(client, ada)
    assert reverse("wagtailsnippets_crm_core_activity:add") not in content
    assert reverse("wagtailsnippets_crm_core_participant:add") not in content
    assert reverse("wagtailsnippets_crm_core_contribution:add") not in content
    assert reverse("crm_membership_renew", args=[membership.pk]) not in content
    assert (
        reverse("wagtailsnippets_crm_core_contribution:record_payment", args=[pledge.pk])
        not in content
    )
    assert reverse("crm_duplicates_review", args=[pair.pk]) not in content


def test_each_action_is_offered_to_staff_with_its_own_permission(client, ada):
    client.force_login(staff("crm_core.renew_membership", "crm_core.add_activity"))
    membership = memberships.join(ada, MembershipTypeFactory(slug="annual"))
    pledge = contributions.create_pending(ada, currency="GBP", lines=[{"amount": "20"}])
    content = summary(client, ada)
    assert reverse("crm_membership_renew", args=[membership.pk]) in content
    assert reverse("wagtailsnippets_crm_core_activity:add") in content
    assert (
        reverse("wagtailsnippets_crm_core_contribution:record_payment", args=[pledge.pk])
        not in content
    )
    assert reverse("wagtailsnippets_crm_core_participant:add") not in content


def test_a_cancelled_membership_offers_no_renewal(client, superuser, ada):
    client.force_login(superuser)
    membership = memberships.join(ada, MembershipTypeFactory(slug="annual"))
    memberships.cancel(membership, reason="moved away")
    assert reverse("crm_membership_renew", args=[membership.pk]) not in summary(client, ada)


def add_history(contact, first, last):
    for index in range(first, last):
        membership_type = MembershipTypeFactory(slug=f"type-{index}", name=f"Type {index}")
        memberships.join(contact, membership_type)
        paid(contact, "5.00")
        contributions.create_pending(contact, currency="GBP", lines=[{"amount": "7"}])
        contributions.create_recurring(
            contact,
            amount="3.00",
            currency="GBP",
            frequency_unit="month",
            financial_type=FinancialTypeFactory(),
        )
        event = EventFactory()
        events.register(event, registered_by=contact, attendees=[{"contact": contact}])
        other = ContactFactory(kind="household", household_name=f"Home {index}")
        create_relationship(
            relationship_type=RelationshipTypeFactory(
                slug="household-member-of",
                label_a_to_b="Household member of",
                label_b_to_a="Household of",
                contact_kind_a="individual",
                contact_kind_b="household",
            ),
            contact_a=contact,
            contact_b=other,
        )
        flag_possible_duplicate(contact, ContactFactory(), 90, ["email"])


def test_the_summary_runs_the_same_number_of_queries_for_little_and_much_history(
    client, superuser, ada, django_assert_num_queries
):
    client.force_login(superuser)
    add_history(ada, 0, 2)
    url = reverse(INSPECT_URL, args=[ada.pk])
    client.get(url)  # warm caches (content types, site)
    with CaptureQueriesContext(connection) as little:
        assert client.get(url).status_code == 200
    add_history(ada, 2, 14)
    with django_assert_num_queries(len(little.captured_queries)):
        response = client.get(url)
    assert "Type 13" in response.content.decode()
