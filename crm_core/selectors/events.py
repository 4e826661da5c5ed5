"""Read queries about events: seats taken and left, upcoming public events."""

from django.db.models import Count, Q
from django.utils import timezone

from ..models import SEAT_STATUSES, Event, Participant, ParticipantStatus


def seat_holding(now, *, prefix=""):
    """``Q`` for participants that hold a seat at ``now``.

    A seat is held by a participant whose role takes a seat and who is
    pending payment, registered, attended or a no-show, or who is on the
    waiting list with an offer still open. ``prefix`` ("participants__")
    lets the same rule filter a join from Event.
    """
    return Q(**{f"{prefix}role__counts_towards_capacity": True}) & (
        Q(**{f"{prefix}status__in": SEAT_STATUSES})
        | Q(
            **{
                f"{prefix}status": ParticipantStatus.WAITLISTED,
                f"{prefix}offer_expires_at__gt": now,
            }
        )
    )


def seats_taken(event, *, now=None):
    """Seats held at ``event`` now (one query)."""
    now = now or timezone.now()
    return Participant.objects.filter(seat_holding(now), event=event).count()


def seats_left(event, *, now=None):
    """Free seats, never negative; ``None`` when the event has no capacity limit."""
    if event.capacity is None:
        return None
    return max(event.capacity - seats_taken(event, now=now), 0)


def with_seats(queryset=None, *, now=None):
    """Events annotated with ``seats_taken`` in the same query (for lists).

    Use ``seats_left_of(event)`` on the rows to read the seats left without
    another query.
    """
    now = now or timezone.now()
    queryset = Event.objects.all() if queryset is None else queryset
    return queryset.annotate(
        seats_taken=Count("participants", filter=seat_holding(now, prefix="participants__"))
    )


def seats_left_of(event):
    """Seats left of an event from ``with_seats`` (``None`` = no limit)."""
    if event.capacity is None:
        return None
    return max(event.capacity - event.seats_taken, 0)


def upcoming_public_events(*, now=None):
    """Active public events that have not ended, soonest first."""
    now = now or timezone.now()
    return Event.objects.filter(is_active=True, is_public=True, ends_at__gte=now).order_by(
        "starts_at", "id"
    )
