"""Bugs found reviewing the memberships, events and contributions services."""

import contextlib
import datetime
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from crm_core.models import Membership, Participant, ParticipantRole
from crm_core.services import contributions, events, memberships
from crm_core.services.relationships import create_relationship
from tests.factories import (
    ContactFactory,
    EventFactory,
    MembershipTypeFactory,
    OrganizationFactory,
    RelationshipTypeFactory,
)

HOUR = datetime.timedelta(hours=1)


def dues(membership, quantity=1):
    return contributions.create_pending(
        membership.contact,
        currency="GBP",
        lines=[
            {
                "kind": "membership",
                "amount": "30.00",
                "quantity": quantity,
                "membership": membership,
            }
        ],
    )


# -- contributions for memberships that could never be completed ------------------------


@pytest.mark.django_db
def test_a_membership_line_for_more_terms_than_a_renewal_allows_is_refused_up_front(contact):
    membership = memberships.join(contact, MembershipTypeFactory(), pending=True)
    with pytest.raises(ValidationError) as error:
        dues(membership, quantity=11)
    assert "Line 1" in str(error.value)


@pytest.mark.django_db
def test_a_membership_line_for_an_active_lifetime_membership_is_refused_up_front(contact):
    membership = memberships.join(contact, MembershipTypeFactory(duration_unit="lifetime"))
    with pytest.raises(ValidationError) as error:
        dues(membership)
    assert "lifetime" in str(error.value)


@pytest.mark.django_db
def test_a_membership_line_for_an_inherited_membership_is_refused_up_front():
    employee_of = RelationshipTypeFactory()
    mtype = MembershipTypeFactory()
    mtype.inherit_relationship_types.add(employee_of)
    org, staff = OrganizationFactory(), ContactFactory()
    create_relationship(relationship_type=employee_of, contact_a=staff, contact_b=org)
    memberships.join(org, mtype)
    inherited = staff.memberships.get()
    with pytest.raises(ValidationError) as error:
        dues(inherited)
    assert "inherited" in str(error.value)


# -- the waiting list -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_offer_accepted_just_before_it_expires_is_not_cancelled_by_the_expiry_run():
    ParticipantRole.objects.get_or_create(slug="attendee", defaults={"name": "Attendee"})
    event = EventFactory(capacity=1, waitlist_enabled=True)
    seated, waiting = ContactFactory(), ContactFactory()
    [seat] = events.register(event, registered_by=seated, attendees=[{"contact": seated}])
    [place] = events.register(event, registered_by=waiting, attendees=[{"contact": waiting}])
    events.cancel_registration(seat)
    expires = Participant.objects.get(pk=place.pk).offer_expires_at
    assert expires is not None

    accepted, errors = threading.Event(), []

    def accept():
        try:
            with transaction.atomic():
                events.accept_waitlist_offer(place, now=expires - HOUR)
                accepted.set()
                # Hold the accepted row uncommitted while the expiry run starts.
                threading.Event().wait(1.5)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            accepted.set()
        finally:
            connection.close()

    def expire():
        try:
            accepted.wait(10)
            events.promote_from_waitlist(event, now=expires + HOUR)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=accept), threading.Thread(target=expire)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert Participant.objects.get(pk=place.pk).status == "registered"


@pytest.mark.django_db
def test_a_payment_arriving_after_the_seat_offer_lapsed_keeps_a_free_seat():
    event = EventFactory(capacity=1, waitlist_enabled=True)
    seated, waiting = ContactFactory(), ContactFactory()
    [seat] = events.register(event, registered_by=seated, attendees=[{"contact": seated}])
    [place] = events.register(event, registered_by=waiting, attendees=[{"contact": waiting}])
    events.cancel_registration(seat)
    contribution = contributions.create_pending(
        waiting,
        currency="GBP",
        lines=[{"kind": "event_fee", "amount": Decimal("25.00"), "participant": place}],
    )
    # The offer lapses; the expiry task has not run yet when the money arrives.
    Participant.objects.filter(pk=place.pk).update(
        offer_expires_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    contributions.complete(contribution)
    events.expire_waitlist_offers()
    assert Participant.objects.get(pk=place.pk).status == "registered"


# -- memberships ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_renewals_of_memberships_of_two_types_in_opposite_order_both_succeed():
    adult, child = MembershipTypeFactory(), MembershipTypeFactory()
    today = datetime.date(2025, 3, 10)
    first, second = ContactFactory(), ContactFactory()
    rows = {
        name: memberships.join(contact, mtype, today=today, pending=True)
        for name, contact, mtype in (
            ("first_adult", first, adult),
            ("first_child", first, child),
            ("second_child", second, child),
            ("second_adult", second, adult),
        )
    }
    # Pending memberships are not renewable; give them dates and a live status.
    Membership.objects.filter(pk__in=[m.pk for m in rows.values()]).update(status="current")
    barrier, errors = threading.Barrier(2), []

    def renew_both(names):
        try:
            with transaction.atomic():
                memberships.renew(rows[names[0]], today=today)
                # SQLite: the other writer waits for this one to commit.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(3)
                memberships.renew(rows[names[1]], today=today)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=renew_both, args=(("first_adult", "first_child"),)),
        threading.Thread(target=renew_both, args=(("second_child", "second_adult"),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    renewed = Membership.objects.filter(pk__in=[m.pk for m in rows.values()])
    assert {m.end_date for m in renewed} == {datetime.date(2027, 3, 9)}
