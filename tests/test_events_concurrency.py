"""Capacity under a rush: 50 real concurrent connections race for the last 5 seats.

Each thread has its own database connection (Django opens one per thread)
and calls ``register`` at the same moment (a barrier). Runs on SQLite (a
file database, WAL, IMMEDIATE transactions) and on PostgreSQL (row lock on
the event) alike.
"""

import threading

import pytest
from django.db import connection

from crm_core.exceptions import EventFull
from crm_core.models import Participant, ParticipantRole
from crm_core.selectors.events import seats_taken
from crm_core.services.events import register
from tests.factories import ContactFactory, EventFactory

THREADS = 50
CAPACITY = 20
SEATS_LEFT = 5


def rush(event, contacts):
    """Every contact registers at once; returns (participants, errors by type)."""
    barrier = threading.Barrier(len(contacts))
    results, errors = [], []
    lock = threading.Lock()

    def attempt(contact):
        try:
            barrier.wait()
            (participant,) = register(
                event, registered_by=contact, attendees=[{"contact": contact}]
            )
            with lock:
                results.append(participant)
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(contact,)) for contact in contacts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors


def event_with_five_seats_left(waitlist_enabled):
    # A transactional test starts from tables emptied by the one before it,
    # without the roles the data migration created.
    ParticipantRole.objects.get_or_create(slug="attendee", defaults={"name": "Attendee"})
    event = EventFactory(capacity=CAPACITY, waitlist_enabled=waitlist_enabled)
    for _ in range(CAPACITY - SEATS_LEFT):
        contact = ContactFactory()
        register(event, registered_by=contact, attendees=[{"contact": contact}])
    return event, [ContactFactory() for _ in range(THREADS)]


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_registrations_for_five_seats_register_five_and_refuse_the_rest():
    event, contacts = event_with_five_seats_left(waitlist_enabled=False)
    results, errors = rush(event, contacts)
    assert len(results) == SEATS_LEFT
    assert {p.status for p in results} == {"registered"}
    assert len(errors) == THREADS - SEATS_LEFT
    assert all(isinstance(error, EventFull) for error in errors), errors[:3]
    assert {error.message for error in errors} == {"This event is full."}
    assert seats_taken(event) == CAPACITY


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_registrations_for_five_seats_waitlist_the_rest():
    event, contacts = event_with_five_seats_left(waitlist_enabled=True)
    results, errors = rush(event, contacts)
    assert errors == []
    statuses = [p.status for p in results]
    assert statuses.count("registered") == SEATS_LEFT
    assert statuses.count("waitlisted") == THREADS - SEATS_LEFT
    assert seats_taken(event) == CAPACITY
    assert Participant.objects.filter(event=event, status="registered").count() == CAPACITY
