"""Figures for the staff dashboard.

Each function runs a fixed number of queries (given in its docstring)
whatever the number of rows, so the admin home page stays fast on a big
database. Dates are days of the current time zone: "this month" starts at
midnight on the 1st where the staff work, not in UTC.
"""

import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from ..models import (
    Contact,
    Contribution,
    Event,
    Membership,
    MembershipStatus,
)
from .contributions import GIFT_STATUSES, KEPT_AMOUNT
from .events import with_seats

# Memberships whose end date is worth a reminder: running ones. Pending,
# cancelled and deceased ones are not about to "expire"; grace ones already have.
EXPIRING_STATUSES = (MembershipStatus.NEW, MembershipStatus.CURRENT)


def _month_start(day):
    return day.replace(day=1)


def _previous_month(day):
    return _month_start(_month_start(day) - datetime.timedelta(days=1))


def _next_month(day):
    return _month_start(_month_start(day) + datetime.timedelta(days=32))


def _local_midnight(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _same_month_last_year(day):
    return _month_start(day).replace(year=day.year - 1)


def income_by_month(*, today=None):
    """Money received this month, last month and in the same month last year.

    ``[{"currency": "GBP", "this_month": Decimal, "last_month": Decimal,
    "same_month_last_year": Decimal}, ...]`` by currency code, one row per
    currency received in any of the three months (amounts never summed
    across currencies). Received date is ``received_at``; refunds are taken
    off (see ``GIFT_STATUSES``). One query.
    """
    today = today or timezone.localdate()
    this_month = _month_start(today)
    periods = {
        "this_month": (this_month, _next_month(this_month)),
        "last_month": (_previous_month(this_month), this_month),
        "same_month_last_year": (
            _same_month_last_year(this_month),
            _next_month(_same_month_last_year(this_month)),
        ),
    }
    ranges = {
        name: (_local_midnight(start), _local_midnight(end))
        for name, (start, end) in periods.items()
    }
    any_period = Q()
    for start, end in ranges.values():
        any_period |= Q(received_at__gte=start, received_at__lt=end)
    rows = (
        Contribution.objects.filter(any_period, status__in=GIFT_STATUSES)
        .values("currency")
        .annotate(
            **{
                name: Sum(KEPT_AMOUNT, filter=Q(received_at__gte=start, received_at__lt=end))
                for name, (start, end) in ranges.items()
            }
        )
        .order_by("currency")
    )
    return [
        {"currency": row["currency"], **{name: row[name] or Decimal("0") for name in ranges}}
        for row in rows
    ]


def recent_contributions(*, limit=10):
    """The latest contributions recorded, any status, with their contact. One query."""
    return list(
        Contribution.objects.filter(contact__is_deleted=False)
        .select_related("contact", "financial_type")
        .order_by("-created_at", "-id")[:limit]
    )


def expiring_memberships(*, days=30, limit=10, today=None):
    """Running memberships whose end date falls in the next ``days`` days.

    ``(count, first)``: how many, and the ``limit`` that end soonest with
    their contact and type. Two queries.
    """
    today = today or timezone.localdate()
    queryset = Membership.objects.filter(
        status__in=EXPIRING_STATUSES,
        end_date__gte=today,
        end_date__lte=today + datetime.timedelta(days=days),
        contact__is_deleted=False,
    )
    first = list(
        queryset.select_related("contact", "membership_type").order_by("end_date", "id")[:limit]
    )
    return queryset.count(), first


def upcoming_events(*, limit=5, now=None):
    """The next active events to start, with ``seats_taken`` and ``fill_rate``.

    ``fill_rate`` is the share of the capacity taken, as a whole percentage
    (``None`` for events without a limit). One query.
    """
    now = now or timezone.now()
    events = list(
        with_seats(Event.objects.filter(is_active=True, starts_at__gte=now), now=now).order_by(
            "starts_at", "id"
        )[:limit]
    )
    for event in events:
        event.fill_rate = (
            round(100 * event.seats_taken / event.capacity) if event.capacity else None
        )
    return events


def new_contacts(*, limit=5, today=None):
    """Contacts created this week (from Monday) and this month, and the latest.

    ``{"this_week": n, "this_month": n, "latest": [Contact, ...]}``; contacts
    in the trash are left out. Two queries.
    """
    today = today or timezone.localdate()
    week_start = _local_midnight(today - datetime.timedelta(days=today.weekday()))
    month_start = _local_midnight(_month_start(today))
    counts = Contact.objects.aggregate(
        this_week=Count("pk", filter=Q(created_at__gte=week_start)),
        this_month=Count("pk", filter=Q(created_at__gte=month_start)),
    )
    latest = list(Contact.objects.order_by("-created_at", "-id")[:limit])
    return {**counts, "latest": latest}
