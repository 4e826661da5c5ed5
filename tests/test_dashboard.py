"""The CRM panels on the Wagtail admin home page, and the figures behind them."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm_core.models import Contact
from crm_core.selectors import dashboard
from crm_core.services import contributions, events, memberships
from tests.conftest import grant
from tests.factories import ContactFactory, EventFactory, MembershipTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

HOME = "wagtailadmin_home"


def paid(contact, amount, *, currency="GBP", received_at=None):
    contribution = contributions.create_pending(
        contact, currency=currency, lines=[{"kind": "donation", "amount": amount}]
    )
    return contributions.complete(contribution, received_at=received_at or timezone.now())


def local_noon(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))


def month_days(today):
    this_month = today.replace(day=1)
    last_month = (this_month - datetime.timedelta(days=1)).replace(day=1)
    return this_month, last_month, this_month.replace(year=this_month.year - 1)


def staff(*perms):
    return grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)


def expiring_membership(contact, *, ends_in_days):
    today = timezone.localdate()
    membership_type = MembershipTypeFactory(slug="annual", name="Annual")
    start = today + datetime.timedelta(days=ends_in_days + 1)
    start = start.replace(year=start.year - 1)
    return memberships.join(contact, membership_type, join_date=start, start_date=start)


def test_income_compares_this_month_last_month_and_last_year_per_currency():
    today = timezone.localdate()
    this_month, last_month, last_year = month_days(today)
    donor = ContactFactory()
    paid(donor, "10.00", received_at=local_noon(this_month))
    paid(donor, "5.50", received_at=local_noon(this_month))
    paid(donor, "20.00", received_at=local_noon(last_month))
    paid(donor, "7.00", received_at=local_noon(last_year))
    paid(donor, "3.00", currency="EUR", received_at=local_noon(this_month))
    paid(donor, "99.00", received_at=local_noon(last_year - datetime.timedelta(days=40)))
    contributions.create_pending(donor, currency="GBP", lines=[{"amount": "1000"}])

    rows = dashboard.income_by_month(today=today)

    assert rows == [
        {
            "currency": "EUR",
            "this_month": Decimal("3.00"),
            "last_month": Decimal("0"),
            "same_month_last_year": Decimal("0"),
        },
        {
            "currency": "GBP",
            "this_month": Decimal("15.50"),
            "last_month": Decimal("20.00"),
            "same_month_last_year": Decimal("7.00"),
        },
    ]


def test_income_leaves_out_what_was_refunded():
    contribution = paid(ContactFactory(), "40.00")
    contributions.refund(contribution, amount="15.00")
    (row,) = dashboard.income_by_month()
    assert row["this_month"] == Decimal("25.00")


def test_expiring_memberships_counts_those_ending_in_the_next_30_days():
    soon = [expiring_membership(ContactFactory(), ends_in_days=days) for days in (3, 12, 29)]
    expiring_membership(ContactFactory(), ends_in_days=60)
    count, first = dashboard.expiring_memberships(days=30, limit=2)
    assert count == 3
    assert first == soon[:2]


def test_upcoming_events_show_seats_taken_and_fill_rate():
    later = EventFactory(title="Later", capacity=10)
    sooner = EventFactory(
        title="Sooner", capacity=4, starts_at=timezone.now() + datetime.timedelta(days=2)
    )
    for _ in range(3):
        contact = ContactFactory()
        events.register(sooner, registered_by=contact, attendees=[{"contact": contact}])
    upcoming = dashboard.upcoming_events(limit=5)
    assert [e.title for e in upcoming] == ["Sooner", "Later"]
    assert (upcoming[0].seats_taken, upcoming[0].fill_rate) == (3, 75)
    assert (upcoming[1].seats_taken, upcoming[1].fill_rate) == (0, 0)
    assert later.pk == upcoming[1].pk


def test_new_contacts_counts_this_week_and_this_month():
    today = timezone.localdate()
    week_start = today - datetime.timedelta(days=today.weekday())
    before_both = min(week_start, today.replace(day=1)) - datetime.timedelta(days=1)
    old = ContactFactory(first_name="Old", last_name="Timer")
    Contact.objects.filter(pk=old.pk).update(created_at=local_noon(before_both))
    newest = ContactFactory(first_name="New", last_name="Comer")
    figures = dashboard.new_contacts(limit=5)
    assert figures["this_week"] == 1
    assert figures["this_month"] == 1
    assert figures["latest"][0] == newest


def test_the_home_page_shows_the_crm_panels_with_links(client, superuser):
    client.force_login(superuser)
    donor = ContactFactory(first_name="Ada", last_name="Lovelace")
    contribution = paid(donor, "12.00")
    expiring_membership(donor, ends_in_days=5)
    EventFactory(title="Annual dinner", capacity=20)
    content = client.get(reverse(HOME)).content.decode()
    for panel_id in (
        "crm-income",
        "crm-recent-contributions",
        "crm-expiring-memberships",
        "crm-upcoming-events",
        "crm-new-contacts",
    ):
        assert f'id="{panel_id}' in content
    assert "12.00" in content
    assert "Annual dinner" in content and "0 / 20" in content
    assert reverse("wagtailsnippets_crm_core_contact:inspect", args=[donor.pk]) in content
    assert (
        reverse("wagtailsnippets_crm_core_contribution:inspect", args=[contribution.pk]) in content
    )
    assert "1 membership ends in the next 30 days" in content


def test_staff_see_only_the_panels_of_what_they_may_view(client):
    client.force_login(staff("crm_core.view_contact"))
    paid(ContactFactory(), "12.00")
    content = client.get(reverse(HOME)).content.decode()
    assert 'id="crm-new-contacts' in content
    assert 'id="crm-income' not in content
    assert 'id="crm-recent-contributions' not in content
    assert 'id="crm-expiring-memberships' not in content
    assert 'id="crm-upcoming-events' not in content


def add_data(count):
    event = EventFactory(capacity=500)
    for index in range(count):
        contact = ContactFactory()
        paid(contact, "5.00")
        expiring_membership(contact, ends_in_days=index % 30)
        events.register(event, registered_by=contact, attendees=[{"contact": contact}])
        EventFactory()


def test_the_home_page_runs_the_same_number_of_queries_for_little_and_more_data(
    client, superuser, django_assert_num_queries
):
    client.force_login(superuser)
    add_data(2)
    url = reverse(HOME)
    client.get(url)  # warm caches (content types, site)
    with CaptureQueriesContext(connection) as little:
        assert client.get(url).status_code == 200
    add_data(15)
    with django_assert_num_queries(len(little.captured_queries)):
        assert client.get(url).status_code == 200
