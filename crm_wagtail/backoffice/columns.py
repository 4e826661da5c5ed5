"""Listing columns shared by the back office viewsets."""

import datetime

from django.utils import formats, timezone
from wagtail.admin.ui.tables import Column


def calendar_date(value):
    """A date or a local date and time as staff read them: "8 Dec 2025", "8 Dec 2025 18:00"."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return formats.date_format(timezone.localtime(value), "j M Y H:i")
    return formats.date_format(value, "j M Y")


class CalendarDateColumn(Column):
    """An absolute date, sortable by the field.

    Wagtail's ``DateColumn`` says "3 months ago", right for "last updated"
    but not for an end date, a payment date or an event next month.
    """

    def __init__(self, name, **kwargs):
        kwargs.setdefault("sort_key", name)
        super().__init__(name, **kwargs)

    def get_value(self, instance):
        return calendar_date(super().get_value(instance))
