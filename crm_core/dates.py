"""Calendar arithmetic shared by memberships and recurring contributions.

Adding months or years clamps to the end of the target month (31 January +
1 month is 28 or 29 February), and callers count from a fixed anchor rather
than from the previous result, so clamping never makes a schedule drift.
Results outside years 1..9999 raise ``OverflowError``.
"""

import calendar
import datetime

# Dates staff, forms and the API may give (memberships, event times). Far
# enough from years 1 and 9999 that a term added, or a conversion to any time
# zone, never leaves the range Python's datetime can hold.
EARLIEST_DATE = datetime.date(1900, 1, 1)
LATEST_DATE = datetime.date(2199, 12, 31)


def last_day_of_month(year, month):
    return calendar.monthrange(year, month)[1]


def month_index(day):
    """Months since year 0: consecutive months have consecutive indexes."""
    return day.year * 12 + day.month - 1


def date_in_month(index, day_of_month):
    """The ``day_of_month`` (clamped to the month's last day) of month ``index``."""
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    month = month0 + 1
    return datetime.date(year, month, min(day_of_month, last_day_of_month(year, month)))


def add_days(day, days):
    return day + datetime.timedelta(days=days)


def add_months(day, months):
    """``day`` plus ``months`` (may be negative), clamped to the target month's last day."""
    return date_in_month(month_index(day) + months, day.day)


def add_years(day, years):
    return add_months(day, 12 * years)


def add_interval(day, unit, count):
    """``day`` plus ``count`` days, months or years (``unit`` is "day", "month" or "year")."""
    if unit == "day":
        return add_days(day, count)
    if unit == "month":
        return add_months(day, count)
    if unit == "year":
        return add_years(day, count)
    raise ValueError(f"unknown unit {unit!r}")


def in_zone(moment, zone):
    """``moment`` (aware) in ``zone``; left as it is when that would pass year 1 or 9999.

    Event times are bounded to EARLIEST_DATE..LATEST_DATE, but rows saved
    before that may sit at the very edge, where the zone's offset overflows:
    showing them in UTC beats a 500.
    """
    try:
        return moment.astimezone(zone)
    except OverflowError:
        return moment
