"""Events and participants in the Wagtail back office."""

import re

import pytest
from django.urls import reverse

from crm_core.models import Participant
from crm_core.services import events as services
from tests.conftest import grant
from tests.factories import ContactFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def book(event, contact=None):
    contact = contact or ContactFactory()
    (participant,) = services.register(
        event, registered_by=contact, attendees=[{"contact": contact}]
    )
    return participant


def action_url(participant, action):
    return reverse("wagtailsnippets_crm_core_participant:action", args=[participant.pk, action])


def test_event_list_shows_seats_taken(client):
    staff(client, "crm_core.view_event")
    event = EventFactory(title="Quiz <night>", capacity=7)
    book(event)
    book(event)
    response = client.get(reverse("wagtailsnippets_crm_core_event:list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Quiz &lt;night&gt;" in html
    assert "Quiz <night>" not in html
    cells = [cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
    assert cells[-3:] == ["7", "2", "5"]  # capacity, seats taken, seats left


def test_event_list_needs_view_permission(client):
    staff(client)
    response = client.get(reverse("wagtailsnippets_crm_core_event:list"))
    assert response.status_code in (302, 403)


def test_check_in_from_the_admin_goes_through_the_service(client):
    user = staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    participant = book(EventFactory())
    assert client.get(action_url(participant, "check-in")).status_code == 200
    response = client.post(action_url(participant, "check-in"))
    assert response.status_code == 302
    participant.refresh_from_db()
    assert participant.status == "attended"
    entry = participant.contact.activities.latest("id")
    assert entry.created_by == user
    assert entry.source == "admin"


def test_check_in_without_permission_is_refused(client):
    staff(client, "crm_core.view_participant", "crm_core.change_participant")
    participant = book(EventFactory())
    response = client.post(action_url(participant, "check-in"))
    assert response.status_code in (302, 403)
    participant.refresh_from_db()
    assert participant.status == "registered"


def test_cancel_from_the_admin_records_the_reason(client):
    staff(client, "crm_core.view_participant", "crm_core.change_participant")
    participant = book(EventFactory())
    client.post(action_url(participant, "cancel"), {"reason": "Moved away"})
    participant.refresh_from_db()
    assert (participant.status, participant.cancel_reason) == ("cancelled", "Moved away")


def test_refused_transition_is_shown_as_a_message(client):
    staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    event = EventFactory(capacity=1)
    book(event)
    waiting = book(event)
    response = client.post(action_url(waiting, "check-in"), follow=True)
    assert "cannot be marked attended" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == "waitlisted"


def test_adding_a_participant_registers_through_the_service(client):
    staff(client, "crm_core.add_participant", "crm_core.view_participant")
    event = EventFactory()
    contact = ContactFactory()
    response = client.post(
        reverse("wagtailsnippets_crm_core_participant:add"),
        {"event": event.pk, "contact": contact.pk, "role": "", "fee_level": ""},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    participant = Participant.objects.get(event=event, contact=contact)
    assert participant.status == "registered"
    assert participant.source == "admin"


def test_adding_to_a_full_event_shows_the_reason_on_the_form(client):
    staff(client, "crm_core.add_participant", "crm_core.view_participant")
    event = EventFactory(capacity=1, waitlist_enabled=False)
    book(event)
    response = client.post(
        reverse("wagtailsnippets_crm_core_participant:add"),
        {"event": event.pk, "contact": ContactFactory().pk, "role": "", "fee_level": ""},
    )
    assert response.status_code == 200
    assert "This event is full." in response.content.decode()
    assert Participant.objects.filter(event=event).count() == 1


def test_participants_cannot_be_edited_directly_even_by_superusers(client, superuser):
    client.force_login(superuser)
    participant = book(EventFactory())
    response = client.post(
        reverse("wagtailsnippets_crm_core_participant:edit", args=[participant.pk]),
        {"event": participant.event_id, "contact": participant.contact_id},
    )
    assert response.status_code in (302, 403)
    participant.refresh_from_db()
    assert participant.status == "registered"


def test_participant_list_offers_permitted_actions_only(client):
    staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    participant = book(EventFactory())
    html = client.get(reverse("wagtailsnippets_crm_core_participant:list")).content.decode()
    assert action_url(participant, "check-in") in html
    assert action_url(participant, "cancel") not in html
