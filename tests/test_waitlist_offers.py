"""Waiting-list offers: the email with a signed link, and the public page that takes the place."""

import datetime
import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from crm_core.links import make_contact_token, make_registration_token
from crm_core.models import Participant, SentMessage
from crm_core.services import events as services
from crm_core.services.messages import send_waitlist_offer
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def base_url(settings):
    settings.CRM = {**getattr(settings, "CRM", {}), "SITE_BASE_URL": "https://club.example.org"}


def book(event, name):
    contact = ContactFactory(first_name=name, last_name="Doe", emails=[f"{name}@example.org"])
    (participant,) = services.register(
        event, registered_by=contact, attendees=[{"contact": contact}]
    )
    return participant


@pytest.fixture
def waiting(django_capture_on_commit_callbacks):
    """Ann holds the only seat, Bob waits; Ann cancels and Bob is offered the seat."""
    event = EventFactory(title="Quiz night", capacity=1, waitlist_enabled=True)
    ann = book(event, "Ann")
    bob = book(event, "Bob")
    assert bob.status == "waitlisted"
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_registration(ann, reason="ill")
    bob.refresh_from_db()
    assert bob.offer_expires_at is not None
    return bob


def offer_path(message):
    url = re.search(r"https://club\.example\.org/\S+", message.body).group(0)
    return urlsplit(url).path


def test_the_offer_is_emailed_with_a_link_that_takes_the_place(client, waiting):
    [message] = mail.outbox
    assert message.to == ["Bob@example.org"]
    assert message.subject == "A place is free for you at Quiz night"
    assert "Dear Bob," in message.body and "- Bob Doe" in message.body
    path = offer_path(message)
    page = client.get(path)
    assert page.status_code == 200
    assert "Take the place" in page.content.decode()
    done = client.post(path)
    assert "Your place is confirmed" in done.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == "registered" and waiting.offer_expires_at is None
    again = client.post(path)  # a second click changes nothing
    assert again.status_code == 200
    assert "You already have this place" in again.content.decode()


def test_an_expired_offer_is_refused_and_changes_nothing(client, waiting):
    path = offer_path(mail.outbox[0])
    Participant.objects.filter(pk=waiting.pk).update(
        offer_expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    response = client.post(path)
    assert response.status_code == 409
    assert "This seat offer expired" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == "waitlisted"


def test_a_paid_seat_is_held_for_payment(client, django_capture_on_commit_callbacks):
    event = EventFactory(title="Dinner", capacity=1, waitlist_enabled=True)
    ann, bob = book(event, "Ann"), book(event, "Bob")
    Participant.objects.filter(pk=bob.pk).update(fee_amount=Decimal("20.00"))
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_registration(ann)
    response = client.post(offer_path(mail.outbox[0]))
    assert "confirmed once your payment arrives" in response.content.decode()
    bob.refresh_from_db()
    assert bob.status == "pending_payment"


@pytest.mark.parametrize(
    "token",
    ["nonsense", "x" * 600, make_registration_token("not-a-uuid")],
)
def test_forged_links_get_a_clear_400(client, token):
    response = client.get(f"/crm/waitlist/offer/{token}/")
    assert response.status_code == 400
    assert "This link does not work" in response.content.decode()


def test_a_token_made_for_another_purpose_is_refused(client, waiting):
    token = make_contact_token(waiting.contact, "form")
    assert client.post(f"/crm/waitlist/offer/{token}/").status_code == 400
    waiting.refresh_from_db()
    assert waiting.status == "waitlisted"


def test_the_page_needs_the_csrf_token(waiting):
    response = Client(enforce_csrf_checks=True).post(offer_path(mail.outbox[0]))
    assert response.status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == "waitlisted"


def test_each_offer_is_emailed_once_and_a_new_offer_again(waiting):
    assert send_waitlist_offer(waiting.registration) is False
    assert len(mail.outbox) == 1
    Participant.objects.filter(pk=waiting.pk).update(
        offer_expires_at=timezone.now() + datetime.timedelta(hours=99)
    )
    assert send_waitlist_offer(waiting.registration) is True
    assert SentMessage.objects.filter(key__startswith="waitlist-offer:").count() == 2


def test_no_email_without_an_open_offer():
    event = EventFactory(capacity=1, waitlist_enabled=True)
    book(event, "Ann")
    bob = book(event, "Bob")
    assert send_waitlist_offer(bob.registration) is False
    assert mail.outbox == []
