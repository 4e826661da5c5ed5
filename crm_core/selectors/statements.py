"""Annual giving statements: what a contact gave in one calendar year.

A gift counts as the dashboard, the reports and the contact summary count
it (``GIFT_STATUSES``, less refunds: ``KEPT_AMOUNT``), dated by when it was
received in the site's time zone. Pending, failed, cancelled and fully
refunded contributions are left out.
"""

import dataclasses
import datetime
from decimal import Decimal

from django.db.models import Prefetch
from django.utils import timezone

from ..models import Contribution, LineItem
from .contributions import GIFT_STATUSES, KEPT_AMOUNT

# A statement's year must leave room for the next 1 January (its end).
FIRST_YEAR, LAST_YEAR = datetime.MINYEAR, datetime.MAXYEAR - 1


@dataclasses.dataclass(frozen=True)
class StatementRow:
    contribution_id: int
    received: datetime.date
    fund: str
    description: str  # the line items' labels: what the gift paid for
    amount: Decimal  # what was kept: the total less refunds
    currency: str
    is_deductible: bool


@dataclasses.dataclass(frozen=True)
class GivingStatement:
    contact: object
    year: int
    rows: list  # of StatementRow, oldest first
    totals: dict  # currency -> Decimal, never summed across currencies, sorted by currency


def year_bounds(year):
    """The start of ``year`` and of the next, aware in the current time zone.

    Raises ``ValueError`` for a year a date cannot hold (0, 99999).
    """
    if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"No statement can cover the year {year!r}.")
    return (
        timezone.make_aware(datetime.datetime(year, 1, 1)),
        timezone.make_aware(datetime.datetime(year + 1, 1, 1)),
    )


def giving_statement(contact, year):
    """The contact's kept gifts received in ``year``: two queries whatever their number."""
    start, end = year_bounds(year)
    contributions = (
        Contribution.objects.filter(
            contact=contact,
            status__in=GIFT_STATUSES,
            received_at__gte=start,
            received_at__lt=end,
        )
        .select_related("financial_type")
        .prefetch_related(Prefetch("line_items", queryset=LineItem.objects.order_by("id")))
        .annotate(kept=KEPT_AMOUNT)
        .order_by("received_at", "id")
    )
    rows, totals = [], {}
    for contribution in contributions:
        rows.append(
            StatementRow(
                contribution_id=contribution.pk,
                received=timezone.localdate(contribution.received_at),
                fund=contribution.financial_type.name,
                description="; ".join(line.label for line in contribution.line_items.all()),
                amount=contribution.kept,
                currency=contribution.currency,
                is_deductible=contribution.financial_type.is_deductible,
            )
        )
        totals[contribution.currency] = (
            totals.get(contribution.currency, Decimal("0")) + contribution.kept
        )
    return GivingStatement(
        contact=contact, year=year, rows=rows, totals=dict(sorted(totals.items()))
    )
