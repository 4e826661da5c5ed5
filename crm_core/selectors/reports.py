"""Aggregations behind the staff reports (contributions, lapsed donors,
memberships, event attendance).

Each function runs a fixed, small number of queries whatever the size of the
data: the work is done by the database (``GROUP BY``, conditional aggregates,
``EXISTS``), never by looping over rows in Python. They work on SQLite and
PostgreSQL and know nothing about Wagtail: the back office, exports, the API
or a command can all call them.

A **gift** (what the contribution reports count) is a contribution that was
paid and not fully refunded: status ``completed`` or ``partially_refunded``.
Its amount is what was kept, ``total_amount - refunded_amount``. Failed,
pending, cancelled and fully refunded contributions are never counted.
Amounts in different currencies are never added together: every total is
per currency.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import (
    Count,
    DateTimeField,
    DecimalField,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
    Window,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce, Substr, TruncMonth
from django.db.models.query import ModelIterable
from django.utils import timezone

from ..conf import crm_setting
from ..models import (
    Activity,
    ActivityType,
    Contribution,
    Event,
    Membership,
    MembershipStatus,
    Participant,
    ParticipantStatus,
)
from ..models.contributions import AMOUNT
from .contributions import GIFT_STATUSES, KEPT_AMOUNT
from .events import seat_holding

# The largest OFFSET SQLite and PostgreSQL take (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1
ZERO = Value(Decimal(0), output_field=DecimalField(**AMOUNT))


def _kept_sum(filter=None):
    return Coalesce(Sum(KEPT_AMOUNT, filter=filter, output_field=DecimalField(**AMOUNT)), ZERO)


def _start_of_day(day):
    """Aware datetime at the start of ``day`` in the current time zone."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def gifts(*, date_from=None, date_to=None, financial_type=None, campaign=None, currency=None):
    """Contributions that count as gifts, received between ``date_from`` and
    ``date_to`` (dates in the site's time zone, both included)."""
    queryset = Contribution.objects.filter(status__in=GIFT_STATUSES, received_at__isnull=False)
    if date_from:
        queryset = queryset.filter(received_at__gte=_start_of_day(date_from))
    if date_to:
        queryset = queryset.filter(
            received_at__lt=_start_of_day(date_to + datetime.timedelta(days=1))
        )
    if financial_type:
        queryset = queryset.filter(financial_type=financial_type)
    if campaign:
        queryset = queryset.filter(campaign=campaign)
    if currency:
        queryset = queryset.filter(currency=currency.upper())
    return queryset


# -- paging a report --------------------------------------------------------------------------


class WindowCountPaginator(Paginator):
    """A paginator whose page query also counts every row: ``COUNT(*) OVER ()``.

    Django's paginator runs the query twice, once for the page and once for
    ``count``; for a report (a ``GROUP BY`` over every gift) the second run
    costs as much as the first. Here the page's rows carry the total, read
    from the first of them. Only a page past the end, which has no rows to
    read it from, costs a separate count (and ``get_page`` then shows the
    last page). Results are those of ``Paginator``: same rows, same count,
    same page numbers. Querysets of model instances or of dicts
    (``values()``) are counted this way; a list, or ``values_list()`` rows,
    are paged as ``Paginator`` does.
    """

    count_alias = "report_row_count"

    def get_page(self, number):
        if not isinstance(self.object_list, QuerySet):
            return super().get_page(number)
        try:
            return self.page(number)
        except PageNotAnInteger:
            return self.page(1)
        except EmptyPage:
            return self.page(self.num_pages)

    def page(self, number):
        if not isinstance(self.object_list, QuerySet):
            return super().page(number)
        number = self._number_or_error(number)
        bottom = (number - 1) * self.per_page
        if bottom > MAX_OFFSET:
            # Past the end of any report, and an OFFSET the database refuses (a
            # 500): count instead, which raises EmptyPage as Paginator does.
            number = self.validate_number(number)
        counted = self.object_list.annotate(**{self.count_alias: Window(Count("*"))})
        # Orphans may join the last page: fetch enough rows to know.
        rows = list(counted[bottom : bottom + self.per_page + self.orphans])
        if rows and isinstance(rows[0], tuple):
            # values_list() rows have no room for the total: page the usual way.
            return super().page(number)
        if rows:
            self.__dict__["count"] = self._pop_count(rows)
        number = self.validate_number(number)  # counts with a query only when rows is empty
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return self._get_page(rows[: top - bottom], number, self)

    def _number_or_error(self, number):
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def _pop_count(self, rows):
        """The total from the first row; the alias is removed from every row."""
        alias = self.count_alias
        for row in rows:
            if isinstance(row, dict):
                count = row.pop(alias)
            else:
                count = getattr(row, alias)
                delattr(row, alias)
        return count


# -- a) contributions by month, fund, campaign ---------------------------------------------

CONTRIBUTION_GROUPINGS = ("month", "fund", "campaign")


def contribution_totals(group_by="month", **filters):
    """Count and total of gifts per month, fund or campaign, and per currency.

    ``group_by`` is "month" (of the received date, in the site's time zone),
    "fund" (the contribution's financial type) or "campaign" (``None`` for
    contributions without one). ``filters`` are those of ``gifts``. Returns
    a list of dicts ``{"key", "label", "currency", "count", "total"}``, in
    month / name order, then currency. One query.
    """
    queryset = gifts(**filters)
    if group_by == "month":
        queryset = queryset.annotate(key=TruncMonth("received_at")).values("key", "currency")
        order = ("key", "currency")
    elif group_by == "fund":
        queryset = queryset.values(
            "currency", key=F("financial_type_id"), label=F("financial_type__name")
        )
        order = ("label", "key", "currency")
    elif group_by == "campaign":
        queryset = queryset.values("currency", key=F("campaign_id"), label=F("campaign__name"))
        order = (F("label").asc(nulls_last=True), "key", "currency")
    else:
        raise ValueError(f"Unknown grouping {group_by!r}")
    rows = list(queryset.annotate(count=Count("id"), total=_kept_sum()).order_by(*order))
    for row in rows:
        if group_by == "month":
            month = row["key"]
            if isinstance(month, datetime.datetime):
                month = (
                    timezone.localtime(month).date() if timezone.is_aware(month) else month.date()
                )
            row["key"] = month
            row["label"] = month.strftime("%Y-%m")
    return rows


# -- b) LYBUNT / SYBUNT ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReportYears:
    """The reporting year containing ``today`` and the one before.

    Years start on the first day of ``CRM["FISCAL_YEAR_START_MONTH"]``
    (default 1: calendar years). A year is named after the calendar year it
    starts in.
    """

    this_year_start: datetime.date
    last_year_start: datetime.date

    @classmethod
    def containing(cls, today=None, *, start_month=None):
        today = today or timezone.localdate()
        month = start_month or crm_setting("FISCAL_YEAR_START_MONTH")
        year = today.year if today.month >= month else today.year - 1
        return cls(datetime.date(year, month, 1), datetime.date(year - 1, month, 1))


LAPSED_KINDS = ("lybunt", "sybunt")


def lapsed_donors(kind="lybunt", *, today=None, financial_type=None):
    """Donors who gave before but not this year, with their giving; a queryset of dicts.

    - ``"lybunt"`` (Last Year But Unfortunately Not This year): at least one
      gift in last year, none this year.
    - ``"sybunt"`` (Some Year But Unfortunately Not This year): at least one
      gift before last year, none last year and none this year (so a contact
      is never both).

    Years are those of ``ReportYears`` (calendar years by default). Only
    gifts count (see the module docstring), optionally only those to
    ``financial_type``; contacts in the trash are left out. "This year" is
    checked across every currency; each row is one contact and one
    currency (a contact who gave in two currencies has two rows), with
    ``contact_id``, ``display_name``, ``currency``, ``last_gift_at``,
    ``gift_count``, ``last_year_total`` and ``lifetime_total`` (all gifts
    before this year). Ordered by the most recent last gift. One query;
    page it with ``WindowCountPaginator`` to get the count of all rows from
    the same query.
    """
    if kind not in LAPSED_KINDS:
        raise ValueError(f"Unknown kind {kind!r}")
    years = ReportYears.containing(today)
    this_start = _start_of_day(years.this_year_start)
    last_start = _start_of_day(years.last_year_start)
    given = gifts(financial_type=financial_type)
    # Anything given after the cut-off (this year; for SYBUNT last year too)
    # takes the contact off the list, whatever the currency.
    cut_off = this_start if kind == "lybunt" else last_start
    gave_since = given.filter(contact=OuterRef("contact_id"), received_at__gte=cut_off)
    queryset = (
        given.filter(received_at__lt=this_start, contact__is_deleted=False)
        .exclude(Exists(gave_since))
        .values("contact_id", "currency", display_name=F("contact__display_name"))
        .annotate(
            last_gift_at=Max("received_at"),
            gift_count=Count("id"),
            last_year_gifts=Count("id", filter=Q(received_at__gte=last_start)),
            last_year_total=_kept_sum(Q(received_at__gte=last_start)),
            lifetime_total=_kept_sum(),
        )
    )
    if kind == "lybunt":
        queryset = queryset.filter(last_year_gifts__gt=0)
    return queryset.order_by("-last_gift_at", "contact_id", "currency")


# -- c) memberships -------------------------------------------------------------------------


def memberships_by_type_and_status():
    """Count of memberships per type and status, contacts in the trash left out.

    Returns ``(types, statuses)``: ``types`` is a list of dicts
    ``{"type_id", "name", "counts": {status: n}, "total"}`` in the types'
    order, ``statuses`` the statuses that occur, in their defined order.
    Inherited memberships (through an organisation) are counted too. One query.
    """
    rows = (
        Membership.objects.filter(contact__is_deleted=False)
        .values(
            "status",
            type_id=F("membership_type_id"),
            name=F("membership_type__name"),
            weight=F("membership_type__weight"),
        )
        .annotate(count=Count("id"))
        .order_by("weight", "name", "type_id", "status")
    )
    types = {}
    seen = set()
    for row in rows:
        entry = types.setdefault(
            row["type_id"],
            {"type_id": row["type_id"], "name": row["name"], "counts": {}, "total": 0},
        )
        entry["counts"][row["status"]] = row["count"]
        entry["total"] += row["count"]
        seen.add(row["status"])
    statuses = [value for value in MembershipStatus.values if value in seen]
    return list(types.values()), statuses


@dataclass(frozen=True)
class RenewalRate:
    """Terms due for renewal in ``month`` (``None``: the whole period) and how
    many were renewed."""

    month: datetime.date | None
    due: int
    renewed: int

    @property
    def not_renewed(self):
        return self.due - self.renewed

    @property
    def rate(self):
        """Share renewed, 0 to 1; ``None`` when nothing was due."""
        return self.renewed / self.due if self.due else None


def renewal_rates(date_from, date_to):
    """Share of the membership terms ending between ``date_from`` and
    ``date_to`` (both included) that were renewed, per month of the end date
    and for the whole period; returns ``(months, total)``.

    A renewal adds a term to the same membership row and moves its end date
    on, so the end dates that fell in the period are read from two places:

    - **renewed**: renewals recorded in the contacts' history (by ``renew``
      or by a paid renewal, ``apply_paid_term``) whose end date *before* the
      renewal is in the period. A membership renewed late (during grace, or
      after it lapsed) counts as renewed; the first payment of a pending
      membership is not a renewal.
    - **not renewed**: memberships whose end date is in the period now,
      neither pending, deceased nor inherited (inherited memberships follow
      their organisation's). Cancelled ones count as not renewed, and so do
      terms still running (an end date in the future is not renewed yet).

    ``due = renewed + not renewed``; the rate is ``renewed / due``. Each term
    counts: a monthly membership renewed every month of a year-long period
    is 12 terms due, 11 of them renewed within the period (the 12th depends
    on what happened to it next). A renewal later taken back by a full
    refund still counts as renewed (the history keeps it), and the restored
    end date counts again as not renewed. Contacts in the trash are left
    out. Two queries.
    """
    first, last = date_from.isoformat(), date_to.isoformat()
    # Cast: compared as text (ISO dates sort as text), not as JSON values.
    old_end = Cast(KeyTextTransform("0", KeyTransform("end_date", "changes")), TextField())
    old_status = KeyTextTransform("0", KeyTransform("status", "changes"))
    renewed = (
        Activity.objects.filter(
            activity_type=ActivityType.SYSTEM, changes__has_key="terms", contact__is_deleted=False
        )
        .annotate(
            old_end=old_end, old_status=Coalesce(old_status, Value(""), output_field=TextField())
        )
        .filter(old_end__gte=first, old_end__lte=last)
        .exclude(old_status=MembershipStatus.PENDING)
        .annotate(month=Substr("old_end", 1, 7))
        .values("month")
        .annotate(count=Count("id"))
        .order_by()
    )
    not_renewed = (
        Membership.objects.filter(
            end_date__gte=date_from,
            end_date__lte=date_to,
            inherited_from__isnull=True,
            contact__is_deleted=False,
        )
        .exclude(status__in=(MembershipStatus.PENDING, MembershipStatus.DECEASED))
        .annotate(month=TruncMonth("end_date"))
        .values("month")
        .annotate(count=Count("id"))
        .order_by()
    )
    renewed_by_month = {row["month"]: row["count"] for row in renewed}
    lapsed_by_month = {row["month"].strftime("%Y-%m"): row["count"] for row in not_renewed}
    months = []
    for key in sorted(set(renewed_by_month) | set(lapsed_by_month)):
        done = renewed_by_month.get(key, 0)
        year, month = (int(part) for part in key.split("-"))
        months.append(
            RenewalRate(
                month=datetime.date(year, month, 1),
                due=done + lapsed_by_month.get(key, 0),
                renewed=done,
            )
        )
    total = RenewalRate(
        month=None, due=sum(m.due for m in months), renewed=sum(m.renewed for m in months)
    )
    return months, total


# -- d) event attendance --------------------------------------------------------------------


def event_attendance(*, date_from=None, date_to=None, now=None):
    """Events starting between ``date_from`` and ``date_to`` (site dates, both
    included) with their participants counted by status; a queryset.

    Each event carries ``booked`` (pending payment, registered,
    attended or no-show: every place that was not cancelled or waitlisted),
    ``registered`` (still registered: not checked in, not marked no-show),
    ``pending_payment``, ``attended``, ``no_show``, ``cancelled``,
    ``waitlisted`` and ``seats_taken`` (seats held, as capacity counts
    them). Use ``fill_rate(event)`` and ``attendance_rate(event)`` on the
    rows. Soonest first. One query, counted by ``WindowCountPaginator``.

    The counts are not part of the events' query: once the events are
    fetched (a page of them, or all for an export), one grouped query counts
    the participants of those events only, so a page of 50 costs its 50
    events, however many events come before it: two queries (one more per
    further 1,000 events, for an export).
    """
    now = now or timezone.now()
    queryset = Event.objects.all()
    if date_from:
        queryset = queryset.filter(starts_at__gte=_start_of_day(date_from))
    if date_to:
        queryset = queryset.filter(
            starts_at__lt=_start_of_day(date_to + datetime.timedelta(days=1))
        )
    # "now" rides along as a column, for the counting query the rows trigger.
    queryset = queryset.annotate(
        attendance_as_of=Value(now, output_field=DateTimeField())
    ).order_by("starts_at", "id")
    queryset._iterable_class = _AttendanceIterable
    return queryset


def _attendance_counts(now):
    S = ParticipantStatus

    def status_count(*statuses):
        return Count("pk", filter=Q(status__in=statuses))

    return {
        "booked": status_count(S.PENDING_PAYMENT, S.REGISTERED, S.ATTENDED, S.NO_SHOW),
        "registered": status_count(S.REGISTERED),
        "pending_payment": status_count(S.PENDING_PAYMENT),
        "attended": status_count(S.ATTENDED),
        "no_show": status_count(S.NO_SHOW),
        "cancelled": status_count(S.CANCELLED),
        "waitlisted": status_count(S.WAITLISTED),
        "seats_taken": Count("pk", filter=seat_holding(now)),
    }


class _AttendanceIterable(ModelIterable):
    """Events of ``event_attendance``, each with its counts as attributes."""

    chunk = 1000  # event ids per counting query (SQLite's limit on parameters)

    def __iter__(self):
        events = list(super().__iter__())
        if not events:
            return
        aggregates = _attendance_counts(events[0].attendance_as_of)
        counted = {}
        for start in range(0, len(events), self.chunk):
            ids = [event.pk for event in events[start : start + self.chunk]]
            rows = (
                Participant.objects.filter(event_id__in=ids)
                .order_by()
                .values("event_id")
                .annotate(**aggregates)
            )
            counted.update({row["event_id"]: row for row in rows})
        for event in events:
            row = counted.get(event.pk, {})
            for name in aggregates:
                setattr(event, name, row.get(name, 0))
        yield from events


def fill_rate(event):
    """Seats taken / capacity (0 to 1) of a row of ``event_attendance``;
    ``None`` for an event without a capacity limit."""
    if not event.capacity:
        return None
    return event.seats_taken / event.capacity


def attendance_rate(event):
    """Attended / (attended + no-show): of the people whose attendance was
    recorded, the share who came; ``None`` before any is recorded."""
    recorded = event.attended + event.no_show
    return event.attended / recorded if recorded else None
