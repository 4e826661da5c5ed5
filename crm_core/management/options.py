"""Command-line options shared by the CRM's management commands."""

import datetime

from django.core.management.base import CommandError


def date_option(value, option="--date"):
    """``value`` (YYYY-MM-DD) as a date, or a ``CommandError`` naming ``option``."""
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: expected YYYY-MM-DD, got {value[:20]!r}.") from None
