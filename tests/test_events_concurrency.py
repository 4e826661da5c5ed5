"""Capacity under a rush: 50 real concurrent connections race for the last 5 seats.

Each thread has its own database connection (Django opens one per thread)
and calls ``register`` at the same moment (a barrier). Runs on SQLite (a
file database, WAL, IMMEDIATE transactions) and on PostgreSQL (row lock on
the event) alike.
"""

import threading

import pytest
from django.db import connection

from crm_core.exceptions import AlreadyRegistered, EventFull
from crm_core.models import Activity, Participant, ParticipantRole
from crm_core.selectors.events import seats_taken
from crm_core.services.events import register
from tests.factories import ContactFactory, EventFactory

THREADS = 50
CAPACITY = 20
SEATS_LEFT = 5


def rush(event, contacts):
    """Every contact registers at once; returns (participants, errors by type)."""
    registrations, errors = rush_groups(event, [[contact] for contact in contacts])
    return [participant for (participant,) in registrations], errors


def rush_groups(event, groups):
    """Each group of contacts registers together, all at once; returns (registrations, errors)."""
    barrier = threading.Barrier(len(groups))
    results, errors = [], []
    lock = threading.Lock()

    def attempt(group):
        try:
            barrier.wait()
            participants = register(
                event,
                registered_by=group[0],
                attendees=[{"contact": contact} for contact in group],
            )
            with lock:
                results.append(participants)
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(group,)) for group in groups]
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


@pytest.mark.django_db(transaction=True)
def test_concurrent_pairs_for_five_seats_register_two_pairs_and_waitlist_the_rest_whole():
    event, contacts = event_with_five_seats_left(waitlist_enabled=True)
    pairs = [contacts[index : index + 2] for index in range(0, 40, 2)]
    registrations, errors = rush_groups(event, pairs)
    assert errors == []
    statuses = [{p.status for p in participants} for participants in registrations]
    assert statuses.count({"registered"}) == 2
    assert statuses.count({"waitlisted"}) == len(pairs) - 2
    assert seats_taken(event) == CAPACITY - 1
    # Each person's history says where they ended up, not where they were first put.
    for participants in registrations:
        for participant in participants:
            entry = Activity.objects.get(
                contact=participant.contact, subject__startswith=f"{event.title}:"
            )
            assert entry.changes == {"event_participation": [None, participant.status]}
            assert entry.subject.endswith(participant.get_status_display().lower())


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_the_same_people_in_any_order_place_them_once():
    event, contacts = event_with_five_seats_left(waitlist_enabled=False)
    first, second = contacts[:2]
    groups = [[first, second] if index % 2 else [second, first] for index in range(20)]
    registrations, errors = rush_groups(event, groups)
    assert len(registrations) == 1
    assert len(errors) == 19
    assert all(isinstance(error, AlreadyRegistered) for error in errors), errors[:3]
    assert seats_taken(event) == CAPACITY - SEATS_LEFT + 2
