"""Back office listings show calendar dates and amounts in the currency's own places."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from crm_core.services import contributions, memberships
from tests.factories import EventFactory, MembershipTypeFactory

pytestmark = pytest.mark.django_db


def test_membership_listing_shows_end_dates_as_calendar_dates(client, superuser, contact):
    memberships.join(
        contact,
        MembershipTypeFactory(),
        join_date=datetime.date(2026, 3, 1),
        today=datetime.date(2026, 3, 1),
    )
    client.force_login(superuser)

    html = client.get(reverse("wagtailsnippets_crm_core_membership:list")).content.decode()

    assert "28 Feb 2027" in html
    assert " ago" not in html


def test_event_listing_shows_when_an_upcoming_event_starts(client, superuser):
    event = EventFactory()
    client.force_login(superuser)

    html = client.get(reverse("wagtailsnippets_crm_core_event:list")).content.decode()

    assert timezone.localtime(event.starts_at).strftime("%-d %b %Y %H:%M") in html
    assert "Just now" not in html


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("GBP", "30", "30.00 GBP"), ("JPY", "500", "500 JPY"), ("KWD", "1.5", "1.500 KWD")],
)
def test_contribution_page_shows_amounts_with_the_currency_places(
    client, superuser, contact, currency, amount, shown
):
    contribution = contributions.create_pending(
        contact, currency=currency, lines=[{"kind": "donation", "amount": amount}]
    )
    client.force_login(superuser)

    url = reverse("wagtailsnippets_crm_core_contribution:inspect", args=[contribution.pk])
    html = client.get(url).content.decode()

    assert shown in html
    assert f"{amount}.000" not in html and "30.000" not in html


def test_participant_rows_offer_only_the_actions_their_status_allows(client, superuser):
    from crm_core.services import events
    from tests.factories import ContactFactory

    event = EventFactory()
    registered, attended = ContactFactory(), ContactFactory()
    for person in (registered, attended):
        events.register(event, registered_by=person, attendees=[{"contact": person}])
    events.check_in(event.participants.get(contact=attended))
    client.force_login(superuser)

    html = client.get(reverse("wagtailsnippets_crm_core_participant:list")).content.decode()

    def actions_of(participant):
        base = reverse("wagtailsnippets_crm_core_participant:list")
        return {slug for slug in ("check-in", "no-show", "accept-offer", "cancel")
                if f"{base}action/{participant.pk}/{slug}/" in html}  # fmt: skip

    assert actions_of(event.participants.get(contact=registered)) == {
        "check-in",
        "no-show",
        "cancel",
    }
    assert actions_of(event.participants.get(contact=attended)) == set()


def test_membership_rows_offer_renew_and_cancel_only_while_they_apply(client, superuser):
    from tests.factories import ContactFactory

    mtype = MembershipTypeFactory()
    live = memberships.join(ContactFactory(), mtype)
    cancelled = memberships.cancel(memberships.join(ContactFactory(), mtype), reason="Moved")
    client.force_login(superuser)

    html = client.get(reverse("wagtailsnippets_crm_core_membership:list")).content.decode()

    for name in ("crm_membership_renew", "crm_membership_cancel"):
        assert reverse(name, args=[live.pk]) in html
        assert reverse(name, args=[cancelled.pk]) not in html


def test_contribution_rows_link_to_the_contribution(client, superuser, contact):
    contribution = contributions.create_pending(
        contact, currency="GBP", lines=[{"kind": "donation", "amount": "5"}]
    )
    client.force_login(superuser)

    html = client.get(reverse("wagtailsnippets_crm_core_contribution:list")).content.decode()

    assert reverse("wagtailsnippets_crm_core_contribution:inspect", args=[contribution.pk]) in html


@pytest.mark.parametrize("model", ["membership", "contribution", "recurringcontribution"])
def test_add_forms_choose_the_contact_with_a_chooser_not_a_list_of_everyone(
    client, superuser, model
):
    from tests.factories import ContactFactory

    people = [ContactFactory(last_name=f"Listed{n}") for n in range(30)]
    client.force_login(superuser)

    html = client.get(reverse(f"wagtailsnippets_crm_core_{model}:add")).content.decode()

    assert not any(person.display_name in html for person in people)
    assert reverse("wagtailsnippetchoosers_crm_core_contact:choose") in html


def test_event_listing_puts_the_latest_start_first(client, superuser):
    now = timezone.now()
    soon = EventFactory(title="Event coming soon", starts_at=now + datetime.timedelta(days=3))
    later = EventFactory(title="Event much later", starts_at=now + datetime.timedelta(days=60))
    EventFactory(title="Event in the past", starts_at=now - datetime.timedelta(days=30))
    soon.save()  # the most recently edited, which Wagtail would list first
    client.force_login(superuser)

    html = client.get(reverse("wagtailsnippets_crm_core_event:list")).content.decode()

    assert html.index(later.title) < html.index(soon.title) < html.index("Event in the past")
