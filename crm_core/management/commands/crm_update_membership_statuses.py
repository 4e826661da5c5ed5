"""``manage.py crm_update_membership_statuses``: statuses from the status rules.

Run it once a day (see docs/memberships.md for a cron line). Idempotent: a
second run on the same day changes nothing and prints zeros.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm_core.management.options import date_option
from crm_core.services.memberships import update_membership_statuses


class Command(BaseCommand):
    help = (
        "Recompute membership statuses (new, current, grace, expired, deceased) "
        "and inherited memberships."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            type=str,
            default=None,
            help="Compute as of this day (YYYY-MM-DD); default: today in TIME_ZONE.",
        )

    def handle(self, *args, date=None, **options):
        today = date_option(date) if date else None
        try:
            counts = update_membership_statuses(today=today)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        for name, count in counts.items():
            self.stdout.write(f"{name}: {count}")
        self.stdout.write(f"total changes: {sum(counts.values())}")
