"""Staff reports: figures, lapsed donors, renewals, attendance, exports, permissions, queries."""

import csv
import datetime
import io
from decimal import Decimal

import openpyxl
import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from wagtail.admin.paginator import WagtailPaginator

from crm_core.models import Event, ParticipantRole
from crm_core.selectors import reports
from crm_core.services import contributions as svc
from crm_core.services import events as event_svc
from crm_core.services import memberships as membership_svc
from crm_wagtail.backoffice import reports as report_views
from tests.conftest import grant
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    EventFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
THIS_YEAR = TODAY.year


def at(year, month=6, day=15):
    """A moment in the past: mid-``month`` of ``year``, or earlier today this year."""
    moment = timezone.make_aware(datetime.datetime(year, month, day, 12))
    return min(moment, timezone.now() - datetime.timedelta(minutes=1))


def gift(contact, amount, when, *, fund=None, campaign=None, currency="GBP"):
    contribution = svc.create_pending(
        contact,
        currency=currency,
        lines=[{"amount": amount}],
        financial_type=fund,
        campaign=campaign,
    )
    return svc.complete(contribution, received_at=when)


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def url(name, **params):
    from urllib.parse import urlencode

    return reverse(f"crm_reports:{name}") + ("?" + urlencode(params) if params else "")


def csv_rows(response):
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def xlsx_rows(response):
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return [list(row) for row in workbook.active.iter_rows(values_only=True)]


# -- a) contributions ---------------------------------------------------------------------


def test_contribution_totals_by_month_count_only_money_kept():
    donor = ContactFactory()
    year = THIS_YEAR - 1
    gift(donor, "10.00", at(year, 3))
    gift(donor, "15.00", at(year, 3, 20))
    partly = gift(donor, "40.00", at(year, 5))
    svc.refund(partly, amount="10.00")
    svc.refund(gift(donor, "99.00", at(year, 5)))  # refunded in full: not counted
    svc.cancel(svc.create_pending(donor, currency="GBP", lines=[{"amount": "7"}]))
    svc.create_pending(donor, currency="GBP", lines=[{"amount": "8"}])  # still pending
    gift(donor, "1000", at(year, 5), currency="JPY")

    rows = reports.contribution_totals("month")

    assert [(r["label"], r["currency"], r["count"], r["total"]) for r in rows] == [
        (f"{year}-03", "GBP", 2, Decimal("25.00")),
        (f"{year}-05", "GBP", 1, Decimal("30.00")),
        (f"{year}-05", "JPY", 1, Decimal("1000")),
    ]


def test_contribution_totals_by_fund_and_campaign_with_filters():
    donor = ContactFactory()
    general = FinancialTypeFactory(slug="donation")
    appeal_fund = FinancialTypeFactory(slug="roof-appeal")
    spring = CampaignFactory(name="Spring")
    gift(donor, "10.00", at(THIS_YEAR - 1, 2), fund=general, campaign=spring)
    gift(donor, "20.00", at(THIS_YEAR - 1, 4), fund=appeal_fund, campaign=spring)
    gift(donor, "30.00", at(THIS_YEAR - 1, 4), fund=appeal_fund)
    gift(donor, "5.00", at(THIS_YEAR - 3), fund=appeal_fund)  # outside the dates
    gift(donor, "9.00", at(THIS_YEAR - 1, 4), fund=appeal_fund, currency="EUR")

    period = {
        "date_from": datetime.date(THIS_YEAR - 1, 1, 1),
        "date_to": datetime.date(THIS_YEAR - 1, 12, 31),
    }
    by_fund = reports.contribution_totals("fund", currency="GBP", **period)
    by_campaign = reports.contribution_totals("campaign", financial_type=appeal_fund, **period)

    assert [(r["label"], r["count"], r["total"]) for r in by_fund] == [
        ("Donation", 1, Decimal("10.00")),
        ("Roof appeal", 2, Decimal("50.00")),
    ]
    assert [(r["label"], r["currency"], r["total"]) for r in by_campaign] == [
        ("Spring", "GBP", Decimal("20.00")),
        (None, "EUR", Decimal("9.00")),
        (None, "GBP", Decimal("30.00")),
    ]


def test_contributions_report_page_shows_chart_and_table(client):
    staff(client, "crm_core.view_contribution")
    gift(ContactFactory(), "12.50", at(THIS_YEAR - 1, 3))

    response = client.get(url("contributions", group_by="month"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'role="img"' in html and "<title>Total received</title>" in html
    assert "12.50 GBP" in html
    assert "<script" not in html.split('id="listing-results"')[1].split("</main>")[0]


# -- b) LYBUNT / SYBUNT ---------------------------------------------------------------------


def lapsed(kind, **kwargs):
    return {row["display_name"]: row for row in reports.lapsed_donors(kind, **kwargs)}


def test_lybunt_lists_last_year_donors_who_have_not_given_this_year():
    lost = ContactFactory(first_name="Lost", last_name="Donor")
    kept = ContactFactory(first_name="Kept", last_name="Donor")
    old = ContactFactory(first_name="Old", last_name="Donor")
    gift(lost, "10.00", at(THIS_YEAR - 1, 2))
    gift(lost, "15.00", at(THIS_YEAR - 1, 5))
    gift(lost, "100.00", at(THIS_YEAR - 4))
    gift(kept, "10.00", at(THIS_YEAR - 1))
    gift(kept, "10.00", at(THIS_YEAR, 1, 1))  # gave this year too: excluded
    gift(old, "10.00", at(THIS_YEAR - 3))

    rows = lapsed("lybunt")

    assert list(rows) == ["Lost Donor"]
    row = rows["Lost Donor"]
    assert (row["last_year_total"], row["lifetime_total"], row["gift_count"]) == (
        Decimal("25.00"),
        Decimal("125.00"),
        3,
    )
    assert row["last_gift_at"] == at(THIS_YEAR - 1, 5)


def test_sybunt_lists_donors_who_last_gave_before_last_year():
    old = ContactFactory(first_name="Old", last_name="Donor")
    last_year = ContactFactory(first_name="Recent", last_name="Donor")
    back = ContactFactory(first_name="Back", last_name="Donor")
    gift(old, "10.00", at(THIS_YEAR - 3))
    gift(last_year, "10.00", at(THIS_YEAR - 3))
    gift(last_year, "10.00", at(THIS_YEAR - 1))  # a LYBUNT, not a SYBUNT
    gift(back, "10.00", at(THIS_YEAR - 5))
    gift(back, "10.00", at(THIS_YEAR, 1, 1))

    rows = lapsed("sybunt")

    assert list(rows) == ["Old Donor"]
    assert rows["Old Donor"]["last_year_total"] == Decimal("0")


def test_refunded_and_cancelled_gifts_do_not_make_a_donor():
    refunded = ContactFactory(first_name="Refunded", last_name="Donor")
    cancelled = ContactFactory(first_name="Cancelled", last_name="Donor")
    svc.refund(gift(refunded, "10.00", at(THIS_YEAR - 1)))
    svc.cancel(svc.create_pending(cancelled, currency="GBP", lines=[{"amount": "10"}]))

    assert lapsed("lybunt") == {} and lapsed("sybunt") == {}


def test_a_refunded_gift_this_year_does_not_keep_a_donor_off_the_lybunt_list():
    donor = ContactFactory(first_name="Lost", last_name="Donor")
    gift(donor, "10.00", at(THIS_YEAR - 1))
    svc.refund(gift(donor, "10.00", at(THIS_YEAR, 1, 1)))

    assert list(lapsed("lybunt")) == ["Lost Donor"]


def test_lybunt_by_fund_counts_only_that_funds_gifts():
    donor = ContactFactory(first_name="Roof", last_name="Donor")
    roof = FinancialTypeFactory(slug="roof-appeal")
    gift(donor, "10.00", at(THIS_YEAR - 1), fund=roof)
    gift(donor, "50.00", at(THIS_YEAR, 1, 1), fund=FinancialTypeFactory(slug="donation"))

    assert list(lapsed("lybunt", financial_type=roof)) == ["Roof Donor"]
    assert lapsed("lybunt") == {}


def test_fiscal_year_start_month_moves_the_year_boundary(settings):
    settings.CRM = {"FISCAL_YEAR_START_MONTH": 4}

    years = reports.ReportYears.containing(datetime.date(2026, 3, 31))

    assert years.this_year_start == datetime.date(2025, 4, 1)
    assert years.last_year_start == datetime.date(2024, 4, 1)
    assert reports.ReportYears.containing(datetime.date(2026, 4, 1)).this_year_start == (
        datetime.date(2026, 4, 1)
    )


def test_calendar_years_by_default():
    years = reports.ReportYears.containing(datetime.date(2026, 3, 31))
    assert (years.this_year_start, years.last_year_start) == (
        datetime.date(2026, 1, 1),
        datetime.date(2025, 1, 1),
    )


# -- c) memberships -----------------------------------------------------------------------


def member(mtype, joined, **kwargs):
    return membership_svc.join(ContactFactory(), mtype, join_date=joined, today=joined, **kwargs)


def test_memberships_counted_by_type_and_status():
    gold = MembershipTypeFactory(name="Gold", weight=1)
    basic = MembershipTypeFactory(name="Basic", weight=0)
    member(gold, TODAY)
    member(gold, TODAY)
    member(basic, TODAY, pending=True)
    membership_svc.cancel(member(basic, TODAY))

    types, statuses = reports.memberships_by_type_and_status()

    assert [(t["name"], t["counts"], t["total"]) for t in types] == [
        ("Basic", {"pending": 1, "cancelled": 1}, 2),
        ("Gold", {"new": 2}, 2),
    ]
    assert statuses == ["pending", "new", "cancelled"]


def test_renewal_rate_counts_terms_ending_in_the_period():
    mtype = MembershipTypeFactory()
    renewed = member(mtype, datetime.date(2024, 3, 10))  # ends 2025-03-09
    membership_svc.renew(renewed, today=datetime.date(2025, 3, 1))
    late = member(mtype, datetime.date(2024, 6, 1))  # ends 2025-05-31, renewed in grace
    membership_svc.renew(late, today=datetime.date(2025, 6, 10))
    member(mtype, datetime.date(2024, 5, 1))  # ends 2025-04-30, not renewed
    membership_svc.cancel(member(mtype, datetime.date(2024, 7, 1)))  # ends 2025-06-30
    member(mtype, datetime.date(2024, 8, 1), pending=True)  # never paid: not due
    member(mtype, datetime.date(2025, 8, 1))  # ends 2026: outside the period

    months, total = reports.renewal_rates(datetime.date(2025, 1, 1), datetime.date(2025, 12, 31))

    assert (total.due, total.renewed, total.not_renewed) == (4, 2, 2)
    assert total.rate == 0.5
    assert [(m.month, m.due, m.renewed) for m in months] == [
        (datetime.date(2025, 3, 1), 1, 1),
        (datetime.date(2025, 4, 1), 1, 0),
        (datetime.date(2025, 5, 1), 1, 1),
        (datetime.date(2025, 6, 1), 1, 0),
    ]


def test_renewal_rate_is_none_when_nothing_was_due():
    _months, total = reports.renewal_rates(datetime.date(2025, 1, 1), datetime.date(2025, 1, 31))
    assert (total.due, total.rate) == (0, None)


# -- d) event attendance ------------------------------------------------------------------


def test_event_attendance_counts_and_fill_rate():
    event = EventFactory(capacity=10)
    people = [ContactFactory() for _ in range(5)]
    participants = [
        event_svc.register(event, registered_by=p, attendees=[{"contact": p}])[0] for p in people
    ]
    event_svc.check_in(participants[0])
    event_svc.check_in(participants[1])
    event_svc.mark_no_show(participants[2])
    event_svc.cancel_registration(participants[3])
    EventFactory(capacity=None)  # no limit, nobody yet

    rows = {row.pk: row for row in reports.event_attendance()}

    row = rows[event.pk]
    assert (row.booked, row.registered, row.attended, row.no_show, row.cancelled) == (4, 1, 2, 1, 1)
    assert reports.fill_rate(row) == 0.4
    assert reports.attendance_rate(row) == pytest.approx(2 / 3)
    others = [r for pk, r in rows.items() if pk != event.pk]
    assert reports.fill_rate(others[0]) is None and reports.attendance_rate(others[0]) is None


def test_event_attendance_counts_every_event_when_counted_in_chunks(
    monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(reports._AttendanceIterable, "chunk", 2)
    events = [EventFactory(capacity=5) for _ in range(5)]
    for index, event in enumerate(events):
        for _ in range(index):
            person = ContactFactory()
            event_svc.register(event, registered_by=person, attendees=[{"contact": person}])
    with django_assert_num_queries(1 + 3):  # the events, then 2 + 2 + 1 of them counted
        rows = list(reports.event_attendance())
    assert [(row.pk, row.booked, row.seats_taken) for row in rows] == [
        (event.pk, index, index) for index, event in enumerate(events)
    ]


def test_event_attendance_page_counts_the_waitlist_and_only_the_seats_held():
    earlier = EventFactory(starts_at=timezone.now() + datetime.timedelta(days=1))
    event = EventFactory(capacity=1, waitlist_enabled=True)
    seated, waiting, steward = ContactFactory(), ContactFactory(), ContactFactory()
    taken = event_svc.register(event, registered_by=seated, attendees=[{"contact": seated}])[0]
    event_svc.register(event, registered_by=waiting, attendees=[{"contact": waiting}])
    role = ParticipantRole.objects.create(
        name="Steward", slug="steward", counts_towards_capacity=False
    )
    event_svc.register(event, registered_by=steward, attendees=[{"contact": steward, "role": role}])
    event_svc.cancel_registration(taken)  # the seat is offered to the first on the waitlist

    paginator = reports.WindowCountPaginator(reports.event_attendance(), 1)
    first, second = paginator.get_page(1)[0], paginator.get_page(2)[0]

    assert (first.pk, first.booked, first.seats_taken) == (earlier.pk, 0, 0)
    assert second.pk == event.pk
    assert (second.booked, second.registered, second.cancelled, second.waitlisted) == (1, 1, 1, 1)
    assert second.seats_taken == 1  # the open offer; the steward takes no seat
    assert reports.fill_rate(second) == 1


# -- exports --------------------------------------------------------------------------------


def test_exports_neutralise_formulas_in_names(client):
    staff(client, "crm_core.view_contribution")
    donor = ContactFactory(first_name="=cmd|' /C calc'!A0", last_name="Smith")
    gift(donor, "10.00", at(THIS_YEAR - 1))
    fund = FinancialTypeFactory(slug="at-fund", name="@SUM(A1)")
    gift(ContactFactory(), "5.00", at(THIS_YEAR - 1), fund=fund)

    lybunt_csv = csv_rows(client.get(url("lapsed_donors", export="csv")))
    lybunt_xlsx = xlsx_rows(client.get(url("lapsed_donors", export="xlsx")))
    funds_csv = csv_rows(client.get(url("contributions", group_by="fund", export="csv")))
    funds_xlsx = xlsx_rows(client.get(url("contributions", group_by="fund", export="xlsx")))

    names = {row[1] for row in lybunt_csv[1:]} | {row[1] for row in lybunt_xlsx[1:]}
    assert any(name.startswith("'=cmd") for name in names)
    assert not any(name.startswith("=") for name in names)
    assert "'@SUM(A1)" in {row[0] for row in funds_csv[1:]}
    assert "'@SUM(A1)" in {row[0] for row in funds_xlsx[1:]}
    assert lybunt_csv[0][:3] == ["Contact id", "Contact", "Currency"]


def test_export_keeps_amounts_as_numbers(client):
    staff(client, "crm_core.view_contribution")
    gift(ContactFactory(), "12.50", at(THIS_YEAR - 1, 3))

    rows = xlsx_rows(client.get(url("contributions", export="xlsx")))

    assert rows[0] == ["Month", "Currency", "Contributions", "Total"]
    assert rows[1][1:] == ["GBP", 1, 12.5]


# -- permissions ----------------------------------------------------------------------------


def refused(response):
    # 403 Forbidden, not Wagtail's usual redirect to the dashboard.
    return response.status_code == 403


@pytest.mark.parametrize(
    "name, permission",
    [
        ("contributions", "crm_core.view_contribution"),
        ("lapsed_donors", "crm_core.view_contribution"),
        ("memberships", "crm_core.view_membership"),
        ("renewals", "crm_core.view_membership"),
        ("event_attendance", "crm_core.view_participant"),
    ],
)
def test_each_report_needs_its_view_permission(client, name, permission):
    staff(client)
    assert refused(client.get(url(name)))
    assert refused(client.get(url(name, export="csv")))
    assert (
        f"crm-report-{name.replace('_', '-')}"
        not in client.get(reverse("wagtailadmin_home")).content.decode()
    )

    staff(client, permission)
    assert client.get(url(name)).status_code == 200
    assert (
        f"crm-report-{name.replace('_', '-')}"
        in client.get(reverse("wagtailadmin_home")).content.decode()
    )


@pytest.mark.parametrize("name", ["contributions", "lapsed_donors", "event_attendance"])
def test_a_refused_report_answers_403_and_shows_no_figures(client, name):
    staff(client)
    donor = ContactFactory(first_name="Secret", last_name="Donor")
    gift(donor, "10.00", at(THIS_YEAR - 1, 3))
    for address in (url(name), url(name, export="xlsx"), reverse(f"crm_reports:{name}_results")):
        response = client.get(address)
        assert response.status_code == 403
        assert not response.streaming and "Secret Donor" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_the_login_page_not_refused(client):
    response = client.get(url("lapsed_donors"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("wagtailadmin_login"))


# -- constant queries -----------------------------------------------------------------------


def add_contribution_rows(n):
    for index in range(n):
        donor = ContactFactory()
        fund = FinancialTypeFactory(slug=f"fund-{index}")
        gift(donor, "10.00", at(THIS_YEAR - 1, 1 + index % 12, 1 + index % 27), fund=fund)


def add_membership_rows(n):
    for index in range(n):
        mtype = MembershipTypeFactory()
        joined = TODAY - datetime.timedelta(days=400 + 20 * index)
        member(mtype, joined)


def add_event_rows(n):
    for _index in range(n):
        event = EventFactory()
        person = ContactFactory()
        event_svc.register(event, registered_by=person, attendees=[{"contact": person}])


REPORT_DATA = {
    "contributions": add_contribution_rows,
    "lapsed_donors": add_contribution_rows,
    "memberships": add_membership_rows,
    "renewals": add_membership_rows,
    "event_attendance": add_event_rows,
}


@pytest.mark.parametrize("name", list(REPORT_DATA))
@pytest.mark.parametrize("export", ["", "csv", "xlsx"])
def test_report_queries_do_not_grow_with_rows(
    client, superuser, django_assert_num_queries, name, export
):
    client.force_login(superuser)
    params = {"export": export} if export else {}
    for params_extra in ({}, {"group_by": "fund"}, {"group_by": "campaign"}):
        if params_extra and name != "contributions":
            continue
        REPORT_DATA[name](1)
        with CaptureQueriesContext(connection) as one:
            response = client.get(url(name, **params, **params_extra))
            body = b"".join(response.streaming_content) if response.streaming else response.content
        assert response.status_code == 200 and body
        REPORT_DATA[name](12)
        with django_assert_num_queries(len(one.captured_queries)):
            response = client.get(url(name, **params, **params_extra))
            body = b"".join(response.streaming_content) if response.streaming else response.content


# -- paging: the count comes from the page's own query ------------------------------------


def lapsed_donor_rows(n):
    for index in range(n):
        gift(ContactFactory(), "10.00", at(THIS_YEAR - 1, 1 + index % 12, 1 + index % 27))


def page_rows(page):
    return [dict(row) for row in page.object_list]


@pytest.mark.parametrize("orphans", [0, 2])
def test_window_count_paginator_pages_exactly_like_djangos(orphans):
    lapsed_donor_rows(8)
    event_ids = [EventFactory().pk for _ in range(7)]
    for queryset in (reports.lapsed_donors("lybunt"), reports.event_attendance()):
        ours = reports.WindowCountPaginator(queryset, 3, orphans=orphans)
        django = Paginator(queryset, 3, orphans=orphans)
        for number in (1, 2, 3, "3", None, "x", 0, -1, 99):
            mine, theirs = ours.get_page(number), django.get_page(number)
            assert mine.number == theirs.number
            if queryset.model is Event:
                assert [e.pk for e in mine] == [e.pk for e in theirs]
                assert all(not hasattr(e, ours.count_alias) for e in mine)
            else:
                assert page_rows(mine) == page_rows(theirs)
            assert ours.count == django.count
            assert ours.num_pages == django.num_pages
        assert ours.count in (8, len(event_ids))


def test_window_count_paginator_counts_an_empty_report_as_django_does():
    ours = reports.WindowCountPaginator(reports.lapsed_donors("lybunt"), 50)
    page = ours.get_page(1)
    assert list(page) == [] and ours.count == 0 and ours.num_pages == 1


def test_lapsed_donors_second_page_shows_the_rest_and_the_full_count(client):
    staff(client, "crm_core.view_contribution")
    lapsed_donor_rows(53)
    expected = list(reports.lapsed_donors("lybunt"))
    html = client.get(url("lapsed_donors", p=2)).content.decode()
    assert "53 rows" in html  # Wagtail's "n items" above the pages: rows, not contributions
    assert f'<th scope="row">{expected[50]["contact_id"]}</th>' in html
    assert f'<th scope="row">{expected[49]["contact_id"]}</th>' not in html


def test_a_report_page_no_longer_runs_its_query_a_second_time_to_count(
    client, monkeypatch, django_assert_num_queries
):
    staff(client, "crm_core.view_contribution")
    lapsed_donor_rows(3)
    monkeypatch.setattr(report_views.CRMReportView, "paginator_class", WagtailPaginator)
    with CaptureQueriesContext(connection) as before:
        assert client.get(url("lapsed_donors")).status_code == 200
    grouped = [q for q in before.captured_queries if "GROUP BY" in q["sql"]]
    assert len(grouped) == 2  # the page, then Paginator.count
    monkeypatch.undo()
    with django_assert_num_queries(len(before.captured_queries) - 1) as after:
        response = client.get(url("lapsed_donors"))
    assert response.status_code == 200 and "3 rows" in response.content.decode()
    assert len([q for q in after.captured_queries if "GROUP BY" in q["sql"]]) == 1


def test_lapsed_donor_names_link_to_their_summary_escaped(client):
    staff(client, "crm_core.view_contribution")
    donor = ContactFactory(first_name="Ann", last_name="Avery")
    gift(donor, "10.00", at(THIS_YEAR - 1, 3, 1))
    from crm_core.models import Contact

    Contact.objects.filter(pk=donor.pk).update(display_name="<b>Ann</b> & Co")
    html = client.get(url("lapsed_donors")).content.decode()
    summary = reverse("wagtailsnippets_crm_core_contact:inspect", args=[donor.pk])
    assert f'<a href="{summary}">&lt;b&gt;Ann&lt;/b&gt; &amp; Co</a>' in html
    export = csv_rows(client.get(url("lapsed_donors", export="csv")))
    assert export[1][1] == "<b>Ann</b> & Co"  # the export has the name, not the link


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, permission",
    [
        ("contributions", "crm_core.view_contribution"),
        ("renewals", "crm_core.view_membership"),
        ("event_attendance", "crm_core.view_participant"),
    ],
)
@pytest.mark.parametrize("dates", [{"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}])
def test_a_date_out_of_range_is_refused_with_a_message_not_a_server_error(
    client, name, permission, dates
):
    # Year 9999 overflowed the day's bounds in the site's time zone: a 500.
    staff(client, permission)
    response = client.get(url(name, **dates))
    assert response.status_code == 200
    assert "Give a date between 1900-01-01 and 2199-12-31." in response.content.decode()
    assert client.get(url(name, export="csv", **dates)).status_code == 200


@pytest.mark.parametrize("page", ["99999999999999999999", "922337203685477580"])
def test_a_page_number_past_what_the_database_can_skip_shows_the_last_page(client, page):
    # The page's OFFSET overflowed the database's 64-bit integer: a 500.
    staff(client, "crm_core.view_contribution", "crm_core.view_participant")
    lapsed_donor_rows(3)
    EventFactory(title="Quiz night")
    lapsed = client.get(url("lapsed_donors", p=page))
    assert lapsed.status_code == 200
    assert "3 rows" in lapsed.content.decode()
    attendance = client.get(url("event_attendance", p=page))
    assert attendance.status_code == 200
    assert "Quiz night" in attendance.content.decode()
