"""Property tests of membership date arithmetic: month ends, leap years, time zones."""

import datetime
import zoneinfo

import pytest
from django.db import transaction
from django.utils import timezone
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.dates import add_months, add_years, last_day_of_month
from crm_core.memberships_dates import (
    first_term,
    period_start_on_or_before,
    renewal_end,
    rolling_end,
)
from crm_core.models import MembershipType
from crm_core.services import memberships
from tests.factories import ContactFactory, MembershipTypeFactory

D = datetime.date
ONE_DAY = datetime.timedelta(days=1)
PROPERTY = settings(deadline=None, max_examples=200)

dates = st.dates(min_value=D(1900, 1, 1), max_value=D(2500, 12, 31))
month_counts = st.integers(min_value=-1200, max_value=1200)
units = st.sampled_from(["day", "month", "year"])
intervals = st.integers(min_value=1, max_value=100)
terms = st.integers(min_value=1, max_value=10)


def rolling_type(unit, interval):
    return MembershipType(duration_unit=unit, duration_interval=interval, period_type="rolling")


@st.composite
def fixed_types(draw):
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, last_day_of_month(2023, month)))
    rollover = draw(st.none() | st.tuples(st.integers(1, 12), st.integers(1, 28)))
    unit = draw(st.sampled_from(["month", "year"]))
    return MembershipType(
        duration_unit=unit,
        duration_interval=draw(st.integers(1, 3)),
        period_type="fixed",
        fixed_period_start_month=month,
        fixed_period_start_day=day,
        fixed_period_rollover_month=rollover[0] if rollover else None,
        fixed_period_rollover_day=rollover[1] if rollover else None,
    )


# -- examples the issue names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2025, 1, 31), 1, D(2025, 2, 28)),
        (D(2024, 1, 31), 1, D(2024, 2, 29)),
        (D(2024, 2, 29), 12, D(2025, 2, 28)),
        (D(2024, 2, 29), 48, D(2028, 2, 29)),
        (D(2025, 3, 31), -1, D(2025, 2, 28)),
    ],
)
def test_adding_months_clamps_to_the_end_of_the_target_month(day, months, expected):
    assert add_months(day, months) == expected


def test_a_year_from_29_february_is_28_february():
    assert add_years(D(2024, 2, 29), 1) == D(2025, 2, 28)


def test_a_term_ends_the_day_before_start_plus_duration():
    assert rolling_end(D(2025, 3, 1), rolling_type("month", 1)) == D(2025, 3, 31)
    assert rolling_end(D(2025, 1, 1), rolling_type("year", 1)) == D(2025, 12, 31)
    assert rolling_end(D(2025, 1, 1), rolling_type("day", 30)) == D(2025, 1, 30)


def test_a_lifetime_term_has_no_end():
    assert rolling_end(D(2025, 1, 1), MembershipType(duration_unit="lifetime")) is None


def test_monthly_renewals_from_31_january_do_not_drift():
    mtype = rolling_type("month", 1)
    start = D(2025, 1, 31)
    end = rolling_end(start, mtype)
    assert end == D(2025, 2, 27)
    end = renewal_end(start, end, mtype)
    assert end == D(2025, 3, 30)


# -- properties -----------------------------------------------------------------------


@PROPERTY
@given(dates, month_counts)
def test_adding_months_lands_on_a_real_day_no_later_than_the_month_end(day, months):
    result = add_months(day, months)
    expected_month = (day.year * 12 + day.month - 1 + months) % 12 + 1
    assert result.month == expected_month
    assert result.day == min(day.day, last_day_of_month(result.year, result.month))


@PROPERTY
@given(dates, st.integers(min_value=-100, max_value=100))
def test_adding_years_keeps_the_month_and_clamps_the_day(day, years):
    result = add_years(day, years)
    assert (result.year, result.month) == (day.year + years, day.month)
    assert result.day <= last_day_of_month(result.year, result.month)


@PROPERTY
@given(dates, units, intervals, terms)
def test_a_rolling_term_never_ends_before_it_starts(start, unit, interval, count):
    assert rolling_end(start, rolling_type(unit, interval), count) >= start


@PROPERTY
@given(dates, fixed_types(), terms)
def test_a_fixed_term_never_ends_before_it_starts(start, mtype, count):
    begin, end = first_term(start, mtype, count)
    assert begin == start
    assert end >= start


@PROPERTY
@given(dates, units, st.integers(min_value=1, max_value=24), terms)
def test_renewing_n_times_equals_joining_for_n_terms(start, unit, interval, count):
    mtype = rolling_type(unit, interval)
    _, end = first_term(start, mtype)
    for _ in range(count - 1):
        end = renewal_end(start, end, mtype)
    assert end == first_term(start, mtype, count)[1]


@PROPERTY
@given(dates, st.integers(min_value=0, max_value=4000), units, intervals, terms)
def test_renewal_never_shortens_a_membership(anchor, length, unit, interval, count):
    end = anchor + datetime.timedelta(days=length)
    assert renewal_end(anchor, end, rolling_type(unit, interval), count) > end


@PROPERTY
@given(dates, fixed_types(), terms)
def test_fixed_terms_end_the_day_before_a_period_starts(start, mtype, count):
    _, end = first_term(start, mtype, count)
    assert period_start_on_or_before(end + ONE_DAY, mtype) == end + ONE_DAY
    renewed = renewal_end(start, end, mtype, count)
    assert renewed > end
    assert period_start_on_or_before(renewed + ONE_DAY, mtype) == renewed + ONE_DAY


# -- time zones -----------------------------------------------------------------------

ZONES = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/London", "UTC"]
around_midnight = st.builds(
    lambda day, minutes: (
        datetime.datetime.combine(day, datetime.time(0), datetime.UTC)
        + datetime.timedelta(minutes=minutes)
    ),
    st.dates(min_value=D(2000, 1, 1), max_value=D(2100, 12, 31)),
    st.integers(min_value=-180, max_value=180),
)


@PROPERTY
@given(around_midnight, st.sampled_from(ZONES))
def test_the_local_date_is_within_a_day_of_the_utc_date(instant, zone):
    local = timezone.localdate(instant, zoneinfo.ZoneInfo(zone))
    assert abs((local - instant.date()).days) <= 1


@pytest.mark.django_db
@settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(instant=around_midnight, zone=st.sampled_from(ZONES))
def test_joining_and_renewing_depend_only_on_the_local_date(instant, zone):
    mtype = MembershipTypeFactory(slug="tz-yearly")
    with transaction.atomic():
        contact = ContactFactory()
        with timezone.override(zone), freeze_time(instant):
            local = timezone.localdate()
            membership = memberships.join(contact, mtype)
            memberships.renew(membership)
        assert membership.join_date == local
        assert membership.end_date == first_term(local, mtype, 2)[1]
        transaction.set_rollback(True)
