"""Date arithmetic of membership terms: pure functions, no database.

Rules (CiviCRM's, where the issue is silent):

- Adding months or years clamps to the end of the target month: 31 January
  + 1 month is 28 (or 29) February; 29 February + 1 year is 28 February.
- A term ends the day before ``start + duration``; a lifetime term has no end
  (``None``).
- Rolling terms are counted from an anchor (the membership's start date), so
  renewing a 1-month membership that started on 31 January twice ends on the
  same day as joining for 2 months: clamping never makes later terms drift.
- Fixed periods start on the type's month and day each year (each month for a
  monthly type). A join before the rollover day covers the rest of the current
  period; a join on or after it covers the rest of the current period and the
  whole next one.

Results past the year 9999 raise ``OverflowError``.
"""

import datetime

from .dates import add_days, add_months, date_in_month, month_index

ONE_DAY = datetime.timedelta(days=1)


def _term_months(mtype):
    return mtype.duration_interval * (12 if mtype.duration_unit == "year" else 1)


def is_lifetime(mtype):
    return mtype.duration_unit == "lifetime"


def rolling_end(start, mtype, terms=1):
    """Last day of ``terms`` rolling terms counted from ``start``; None for lifetime."""
    if is_lifetime(mtype):
        return None
    if mtype.duration_unit == "day":
        return add_days(start, mtype.duration_interval * terms) - ONE_DAY
    return add_months(start, _term_months(mtype) * terms) - ONE_DAY


# -- fixed periods ------------------------------------------------------------------


def _anniversary_at(index, month, day, unit):
    """The period start in the month with ``index`` (None when no period starts then)."""
    if unit == "year" and index % 12 != month - 1:
        return None
    return date_in_month(index, day)


def period_start_on_or_before(day, mtype):
    """The latest day on or before ``day`` on which a fixed period of ``mtype`` starts."""
    month, start_day = mtype.fixed_period_start_month, mtype.fixed_period_start_day
    index = month_index(day)
    for back in range(13):
        start = _anniversary_at(index - back, month, start_day, mtype.duration_unit)
        if start is not None and start <= day:
            return start
    raise AssertionError("a fixed period starts at least once a year")  # pragma: no cover


def period_end(period_start, mtype, periods=1):
    """Last day of ``periods`` whole periods from ``period_start`` (a period start)."""
    index = month_index(period_start) + _term_months(mtype) * periods
    return date_in_month(index, mtype.fixed_period_start_day) - ONE_DAY


def _rollover_on_or_after(period_start, mtype):
    """The first rollover day on or after ``period_start`` (None without a rollover)."""
    month, day = mtype.fixed_period_rollover_month, mtype.fixed_period_rollover_day
    if month is None or day is None:
        return None
    index = month_index(period_start)
    for ahead in range(13):
        rollover = _anniversary_at(index + ahead, month, day, mtype.duration_unit)
        if rollover is not None and rollover >= period_start:
            return rollover
    raise AssertionError("a rollover day comes at least once a year")  # pragma: no cover


def fixed_first_term(start, mtype, terms=1):
    """(start, end) of a first fixed-period term beginning on ``start``.

    Before the rollover day the term ends with the current period; on or after
    it, with the next one. Further ``terms`` add whole periods.
    """
    current = period_start_on_or_before(start, mtype)
    periods = terms
    rollover = _rollover_on_or_after(current, mtype)
    if rollover is not None and start >= rollover and rollover <= period_end(current, mtype):
        periods += 1
    return start, period_end(current, mtype, periods)


def first_term(start, mtype, terms=1):
    """(start, end) of a new membership's first ``terms`` terms from ``start``."""
    if is_lifetime(mtype):
        return start, None
    if mtype.period_type == "fixed":
        return fixed_first_term(start, mtype, terms)
    return start, rolling_end(start, mtype, terms)


def renewal_end(anchor, current_end, mtype, terms=1):
    """New end date when ``terms`` terms follow on from ``current_end``.

    Rolling: when ``current_end`` closes a whole number of terms counted from
    ``anchor`` (the start date), the new end is counted from the anchor too, so
    month-end clamping never drifts; otherwise from the day after
    ``current_end``. Fixed: whole periods after the period that holds the day
    after ``current_end``.
    """
    if is_lifetime(mtype):
        return None
    next_day = current_end + ONE_DAY
    if mtype.period_type == "fixed":
        return period_end(period_start_on_or_before(next_day, mtype), mtype, terms)
    if mtype.duration_unit == "day":
        return add_days(current_end, mtype.duration_interval * terms)
    months = month_index(next_day) - month_index(anchor)
    if anchor <= current_end and add_months(anchor, months) == next_day:
        return add_months(anchor, months + _term_months(mtype) * terms) - ONE_DAY
    return add_months(next_day, _term_months(mtype) * terms) - ONE_DAY


def grace_end(end_date, mtype):
    """Last day of the grace period (None for lifetime memberships)."""
    if end_date is None:
        return None
    return add_days(end_date, mtype.grace_period_days)
