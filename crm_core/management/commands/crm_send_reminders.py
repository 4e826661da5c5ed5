"""``manage.py crm_send_reminders``: membership renewal reminders that are due.

Run it once a day, after ``crm_update_membership_statuses`` (see
docs/communications.md for cron lines). Idempotent: each reminder goes out
once, however often it runs; a second run prints ``sent: 0``.
"""

from django.core.management.base import BaseCommand, CommandError

from crm_core.management.options import date_option
from crm_core.services.reminders import send_renewal_reminders


class Command(BaseCommand):
    help = "Send the membership renewal reminders that are due (each one once)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            type=str,
            default=None,
            help="Send what is due on this day (YYYY-MM-DD); default: today in TIME_ZONE.",
        )

    def handle(self, *args, date=None, **options):
        counts = send_renewal_reminders(today=date_option(date) if date else None)
        for name, count in counts.items():
            self.stdout.write(f"{name}: {count}")
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} reminders failed; run it again later.")
