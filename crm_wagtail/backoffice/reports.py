"""Staff reports under Wagtail's "Reports" menu.

Each report is one of Wagtail's own ``ReportView``s (filters, CSV and XLSX
export) over an aggregation from ``crm_core.selectors.reports``; the view
only reads the filter form, formats the figures and draws a bar chart as
inline SVG (no script). Every report needs a view permission on the model it
counts; without it the menu item is hidden and the page (and its exports)
answers 403 Forbidden rather than Wagtail's usual redirect to the dashboard.
"""

import datetime

import django_filters
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import get_resolver, path, reverse
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.menu import MenuItem
from wagtail.admin.paginator import WagtailPaginator
from wagtail.admin.views.reports import ReportView
from wagtail.admin.widgets import AdminDateInput

from crm_core.dates import EARLIEST_DATE, LATEST_DATE
from crm_core.models import (
    Campaign,
    Contribution,
    Event,
    FinancialType,
    Membership,
    MembershipStatus,
)
from crm_core.money import format_money
from crm_core.selectors import reports as selectors
from crm_core.services.imports import neutralise_formula

# -- building blocks ----------------------------------------------------------------------


class ReportColumn:
    """One column of a report: ``key`` in the row, heading, and how to show it.

    ``kind`` is "text", "count", "money" (with the row's ``currency``),
    "percent" (a share from 0 to 1), "date", "month" or "datetime".
    """

    def __init__(self, key, label, kind="text", *, link=None):
        self.key, self.label, self.kind = key, label, kind
        self.link = link  # row -> URL: the cell links there (on the page, not in exports)

    def display(self, value, row):
        text = self._text(value, row)
        if self.link is None or text == "—":
            return text
        return format_html('<a href="{}">{}</a>', self.link(row), text)

    def _text(self, value, row):
        if value is None or value == "":
            return "—"
        if self.kind == "money":
            return format_money(value, row_value(row, "currency"))
        if self.kind == "percent":
            return f"{value:.0%}"
        if self.kind == "count":
            return f"{value:,}"
        if self.kind == "month":
            return date_format(value, "YEAR_MONTH_FORMAT")
        if self.kind == "date":
            return date_format(value, "SHORT_DATE_FORMAT")
        if self.kind == "datetime":
            return date_format(value, "SHORT_DATETIME_FORMAT")
        return str(value)


def _contact_summary_url(row):
    return reverse("wagtailsnippets_crm_core_contact:inspect", args=[row_value(row, "contact_id")])


def row_value(row, key):
    if isinstance(row, dict):
        return row.get(key)
    value = getattr(row, key)
    return value() if callable(value) else value


def bar_chart(title, bars, *, value_kind="count"):
    """Geometry of a horizontal bar chart for ``templates/crm_wagtail/reports/bar_chart.html``.

    ``bars`` is a list of ``(label, value, scale_group)``: bars are scaled
    against the largest value of their group (amounts in different
    currencies are not comparable), so each group's longest bar is full
    width. Values are drawn as text too, and the same numbers are in the
    report's table.
    """
    label_width, bar_width, row_height = 200, 360, 26
    largest = {}
    for _label, value, group in bars:
        largest[group] = max(largest.get(group, 0), value or 0)
    drawn = []
    for index, (label, value, group) in enumerate(bars):
        value = value or 0
        width = round(bar_width * value / largest[group]) if largest[group] else 0
        drawn.append(
            {
                "label": label if len(label) <= 28 else label[:27] + "…",
                "full_label": label,
                "y": index * row_height,
                "text_y": index * row_height + 17,
                "width": max(width, 1 if value else 0),
                "value_x": label_width + width + 6,
                "value": ReportColumn("", "", value_kind).display(value, {"currency": group}),
            }
        )
    return {
        "title": title,
        "bars": drawn,
        "label_width": label_width,
        "bar_height": row_height - 6,
        "width": label_width + bar_width + 140,
        "height": max(len(drawn), 1) * row_height,
    }


def validate_report_date(value):
    # Near year 1 or 9999 the bounds of the day in the site's time zone
    # overflow (a 500); no report needs dates outside the range staff may give.
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValidationError(
            _("Give a date between %(earliest)s and %(latest)s.")
            % {"earliest": EARLIEST_DATE.isoformat(), "latest": LATEST_DATE.isoformat()}
        )


class ReportDateFilter(django_filters.DateFilter):
    """A date filter with the admin's date picker, from EARLIEST_DATE to LATEST_DATE."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, widget=AdminDateInput, validators=[validate_report_date], **kwargs)


class ReportMenuItem(MenuItem):
    def __init__(self, *args, permission, **kwargs):
        super().__init__(*args, **kwargs)
        self.permission = permission

    def is_shown(self, request):
        return request.user.has_perm(self.permission)


class ReportPaginator(selectors.WindowCountPaginator, WagtailPaginator):
    """Wagtail's paginator (page links, "n rows"), counting from the page's own query.

    A report's rows are groups (a donor and currency, an event), not rows of
    the model queried: the count says "rows", never "contributions".
    """

    verbose_name = _("row")
    verbose_name_plural = _("rows")


class CRMReportView(ReportView):
    """A report over the rows ``get_report_rows()`` returns (a list or a queryset).

    The filter form is a django-filter set whose values are handed to the
    selector; the filter set never filters a queryset itself.
    """

    results_template_name = "crm_wagtail/reports/report_results.html"
    permission = None  # "crm_core.view_..."
    paginate_by = None
    # A paginated report runs its grouped query once, not a second time to count.
    paginator_class = ReportPaginator
    report_columns = []
    url_name = ""
    row_class = None  # wraps each row for display and export, e.g. to add rates

    def dispatch(self, request, *args, **kwargs):
        if not request.user.has_perm(self.permission):
            # A response, not PermissionDenied: Wagtail's admin turns that
            # exception into a redirect to the dashboard, and a refused report
            # must say 403. (Anonymous visitors never get here: Wagtail sends
            # them to the login page first.)
            return get_resolver().resolve_error_handler(403)(request, exception=PermissionDenied())
        return super().dispatch(request, *args, **kwargs)

    @property
    def index_url_name(self):
        return f"crm_reports:{self.url_name}"

    @property
    def index_results_url_name(self):
        return f"crm_reports:{self.url_name}_results"

    @cached_property
    def filter_values(self):
        if self.filters is not None and self.filters.is_valid():
            return {
                name: value
                for name, value in self.filters.form.cleaned_data.items()
                if value not in (None, "")
            }
        return {}

    def get_report_rows(self):
        raise NotImplementedError

    def get_filtered_queryset(self):
        return self.get_report_rows()

    def get_queryset(self):
        return self.get_report_rows()

    # Exports: the report's columns, values as they are (amounts as numbers,
    # with the currency in a column of its own), text neutralised so a
    # spreadsheet never runs a name like "=cmd|..." as a formula.

    @property
    def list_export(self):
        return [column.key for column in self.get_report_columns()]

    @property
    def export_headings(self):
        return {column.key: column.label for column in self.get_report_columns()}

    def get_report_columns(self):
        return self.report_columns

    def to_row_dict(self, item):
        if self.row_class is not None:
            item = self.row_class(item)
        return {key: row_value(item, key) for key in self.list_export}

    def preprocess_field_value(self, field, value, export_format):
        if isinstance(value, float):
            value = round(value, 4)
        value = super().preprocess_field_value(field, value, export_format)
        if isinstance(value, str):
            value = neutralise_formula(value)
        return value

    def get_filename(self):
        return f"{self.url_name}-{datetime.date.today().isoformat()}"

    def get_chart(self, rows):
        return None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.is_export:
            return context
        rows = context["object_list"]
        if self.row_class is not None:
            rows = [self.row_class(row) for row in rows]
        columns = self.get_report_columns()
        context["report_columns"] = columns
        context["report_rows"] = [
            [column.display(row_value(row, column.key), row) for column in columns] for row in rows
        ]
        context["chart"] = self.get_chart(rows)
        context["table_caption"] = self.get_page_title()
        return context


# -- a) contributions -------------------------------------------------------------------


class ContributionsReportFilterSet(WagtailFilterSet):
    group_by = django_filters.ChoiceFilter(
        label=_("Group by"),
        choices=[("month", _("Month")), ("fund", _("Fund")), ("campaign", _("Campaign"))],
        empty_label=_("Month"),
    )
    date_from = ReportDateFilter(label=_("Received from"))
    date_to = ReportDateFilter(label=_("Received until"))
    financial_type = django_filters.ModelChoiceFilter(
        label=_("Fund"), queryset=FinancialType.objects.all()
    )
    campaign = django_filters.ModelChoiceFilter(
        label=_("Campaign"), queryset=Campaign.objects.all()
    )
    currency = django_filters.CharFilter(label=_("Currency"), max_length=3)

    class Meta:
        model = Contribution
        fields = []


class ContributionsReportView(CRMReportView):
    page_title = _("Contributions")
    header_icon = "doc-full"
    permission = "crm_core.view_contribution"
    filterset_class = ContributionsReportFilterSet
    url_name = "contributions"

    @property
    def group_by(self):
        return self.filter_values.get("group_by") or "month"

    def get_report_columns(self):
        first = {
            "month": ReportColumn("key", _("Month"), "month"),
            "fund": ReportColumn("label", _("Fund")),
            "campaign": ReportColumn("label", _("Campaign")),
        }[self.group_by]
        return [
            first,
            ReportColumn("currency", _("Currency")),
            ReportColumn("count", _("Contributions"), "count"),
            ReportColumn("total", _("Total"), "money"),
        ]

    def get_report_rows(self):
        filters = {k: v for k, v in self.filter_values.items() if k != "group_by"}
        rows = selectors.contribution_totals(self.group_by, **filters)
        for row in rows:
            if self.group_by == "campaign" and row["key"] is None:
                row["label"] = str(_("No campaign"))
        return rows

    def get_chart(self, rows):
        column = self.get_report_columns()[0]
        bars = [
            (
                f"{column.display(row[column.key], row)} ({row['currency']})",
                row["total"],
                row["currency"],
            )
            for row in rows
        ]
        chart = bar_chart(_("Total received"), bars, value_kind="money")
        return chart if bars else None


# -- b) LYBUNT / SYBUNT ---------------------------------------------------------------


class LapsedDonorsFilterSet(WagtailFilterSet):
    kind = django_filters.ChoiceFilter(
        label=_("Donors"),
        choices=[
            ("lybunt", _("LYBUNT: gave last year, not this year")),
            ("sybunt", _("SYBUNT: gave some year before last, not since")),
        ],
        empty_label=_("LYBUNT: gave last year, not this year"),
    )
    financial_type = django_filters.ModelChoiceFilter(
        label=_("Fund"), queryset=FinancialType.objects.all()
    )

    class Meta:
        model = Contribution
        fields = []


class LapsedDonorsReportView(CRMReportView):
    page_title = _("Lapsed donors (LYBUNT / SYBUNT)")
    header_icon = "user"
    permission = "crm_core.view_contribution"
    filterset_class = LapsedDonorsFilterSet
    url_name = "lapsed_donors"
    paginate_by = 50
    report_columns = [
        ReportColumn("contact_id", _("Contact id")),
        ReportColumn("display_name", _("Contact"), link=_contact_summary_url),
        ReportColumn("currency", _("Currency")),
        ReportColumn("last_gift_at", _("Last gift"), "datetime"),
        ReportColumn("gift_count", _("Gifts"), "count"),
        ReportColumn("last_year_total", _("Last year"), "money"),
        ReportColumn("lifetime_total", _("Lifetime"), "money"),
    ]

    def get_report_rows(self):
        return selectors.lapsed_donors(
            self.filter_values.get("kind") or "lybunt",
            financial_type=self.filter_values.get("financial_type"),
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        years = selectors.ReportYears.containing()
        context["report_note"] = _(
            "This year started on %(this)s; last year on %(last)s. "
            "Only paid contributions that were not fully refunded count."
        ) % {
            "this": date_format(years.this_year_start, "DATE_FORMAT"),
            "last": date_format(years.last_year_start, "DATE_FORMAT"),
        }
        return context


# -- c) memberships -------------------------------------------------------------------


class MembershipsReportView(CRMReportView):
    page_title = _("Memberships by type and status")
    header_icon = "group"
    permission = "crm_core.view_membership"
    url_name = "memberships"

    @cached_property
    def figures(self):
        return selectors.memberships_by_type_and_status()

    def get_report_columns(self):
        _types, statuses = self.figures
        labels = dict(MembershipStatus.choices)
        return [
            ReportColumn("name", _("Membership type")),
            *(ReportColumn(status, labels[status], "count") for status in statuses),
            ReportColumn("total", _("Total"), "count"),
        ]

    def get_report_rows(self):
        types, _statuses = self.figures
        return [{"name": t["name"], "total": t["total"], **t["counts"]} for t in types]

    def get_chart(self, rows):
        if not rows:
            return None
        return bar_chart(_("Memberships per type"), [(r["name"], r["total"], "") for r in rows])


class RenewalsFilterSet(WagtailFilterSet):
    date_from = ReportDateFilter(label=_("Ending from"))
    date_to = ReportDateFilter(label=_("Ending until"))

    class Meta:
        model = Membership
        fields = []


class RenewalsReportView(CRMReportView):
    page_title = _("Membership renewal rate")
    header_icon = "repeat"
    permission = "crm_core.view_membership"
    filterset_class = RenewalsFilterSet
    url_name = "renewals"
    report_columns = [
        ReportColumn("month", _("Terms ending in"), "month"),
        ReportColumn("due", _("Due"), "count"),
        ReportColumn("renewed", _("Renewed"), "count"),
        ReportColumn("not_renewed", _("Not renewed"), "count"),
        ReportColumn("rate", _("Renewal rate"), "percent"),
    ]

    @cached_property
    def period(self):
        """The chosen period; by default the last reporting year."""
        years = selectors.ReportYears.containing()
        date_from = self.filter_values.get("date_from") or years.last_year_start
        date_to = self.filter_values.get("date_to") or (
            years.this_year_start - datetime.timedelta(days=1)
        )
        return date_from, date_to

    def get_report_rows(self):
        months, total = selectors.renewal_rates(*self.period)
        return [*months, total] if months else []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if context.get("report_rows"):
            context["report_rows"][-1][0] = _("Whole period")
        date_from, date_to = self.period
        context["report_note"] = _(
            "Membership terms ending from %(start)s to %(end)s. Each term whose end date "
            "falls in the period is due; it counts as renewed when a renewal was recorded "
            "for it, at any time."
        ) % {
            "start": date_format(date_from, "DATE_FORMAT"),
            "end": date_format(date_to, "DATE_FORMAT"),
        }
        return context

    def get_chart(self, rows):
        months = [row for row in rows if row.month is not None]
        if not months:
            return None
        return bar_chart(
            _("Renewal rate per month"),
            [(date_format(m.month, "YEAR_MONTH_FORMAT"), m.rate, "") for m in months],
            value_kind="percent",
        )


# -- d) event attendance ---------------------------------------------------------------


class EventAttendanceFilterSet(WagtailFilterSet):
    date_from = ReportDateFilter(label=_("Starting from"))
    date_to = ReportDateFilter(label=_("Starting until"))

    class Meta:
        model = Event
        fields = []


class AttendanceRow:
    """An event of ``event_attendance`` with its rates, for the table and exports."""

    def __init__(self, event):
        self.event = event

    def __getattr__(self, name):
        return getattr(self.event, name)

    @property
    def fill_rate(self):
        return selectors.fill_rate(self.event)

    @property
    def attendance_rate(self):
        return selectors.attendance_rate(self.event)


class EventAttendanceReportView(CRMReportView):
    page_title = _("Event attendance")
    header_icon = "date"
    permission = "crm_core.view_participant"
    filterset_class = EventAttendanceFilterSet
    url_name = "event_attendance"
    paginate_by = 50
    row_class = AttendanceRow
    report_columns = [
        ReportColumn("title", _("Event")),
        ReportColumn("starts_at", _("Starts"), "datetime"),
        ReportColumn("capacity", _("Capacity"), "count"),
        ReportColumn("booked", _("Booked"), "count"),
        ReportColumn("registered", _("Registered"), "count"),
        ReportColumn("attended", _("Attended"), "count"),
        ReportColumn("no_show", _("No-show"), "count"),
        ReportColumn("cancelled", _("Cancelled"), "count"),
        ReportColumn("waitlisted", _("Waitlisted"), "count"),
        ReportColumn("fill_rate", _("Fill rate"), "percent"),
        ReportColumn("attendance_rate", _("Attendance rate"), "percent"),
    ]

    def get_report_rows(self):
        return selectors.event_attendance(
            date_from=self.filter_values.get("date_from"),
            date_to=self.filter_values.get("date_to"),
        )

    def get_chart(self, rows):
        bars = [(row.title, row.fill_rate, "") for row in rows if row.fill_rate is not None]
        return bar_chart(_("Fill rate"), bars, value_kind="percent") if bars else None


# -- registration ----------------------------------------------------------------------

REPORTS = (
    (ContributionsReportView, "contributions/", _("Contributions"), "doc-full", 1100),
    (LapsedDonorsReportView, "lapsed-donors/", _("Lapsed donors"), "user", 1110),
    (MembershipsReportView, "memberships/", _("Memberships"), "group", 1120),
    (RenewalsReportView, "renewals/", _("Membership renewals"), "repeat", 1130),
    (EventAttendanceReportView, "event-attendance/", _("Event attendance"), "date", 1140),
)


def report_urls():
    patterns = []
    for view, prefix, _label, _icon, _order in REPORTS:
        patterns += [
            path(prefix, view.as_view(), name=view.url_name),
            path(
                f"{prefix}results/",
                view.as_view(results_only=True),
                name=f"{view.url_name}_results",
            ),
        ]
    return [path("crm/reports/", (patterns, "crm_reports", "crm_reports"))]


def _menu_item_hook(view, label, icon, order):
    def menu_item():
        return ReportMenuItem(
            label,
            reverse(f"crm_reports:{view.url_name}"),
            name=f"crm-report-{view.url_name.replace('_', '-')}",
            icon_name=icon,
            order=order,
            permission=view.permission,
        )

    return menu_item


def register():
    """Add the reports to Wagtail's "Reports" menu and their URLs to the admin."""
    hooks.register("register_admin_urls", report_urls)
    for view, _prefix, label, icon, order in REPORTS:
        hooks.register("register_reports_menu_item", _menu_item_hook(view, label, icon, order))
