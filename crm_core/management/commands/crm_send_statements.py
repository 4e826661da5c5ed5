"""``manage.py crm_send_statements --year 2025``: each donor's giving statement, by email.

Every contact who gave in the year gets one email with their statement as a
PDF. Idempotent: a second run sends nothing (each statement is keyed
``statement:<contact>:<year>``), so a run stopped half way is simply run again.
"""

from django.core.management.base import BaseCommand, CommandError

from crm_core.services.messages import send_annual_statements


class Command(BaseCommand):
    help = "Email each donor their giving statement for a year (a PDF), once."

    def add_arguments(self, parser):
        parser.add_argument("--year", type=int, required=True, help="The calendar year, e.g. 2025.")

    def handle(self, *args, year, **options):
        try:
            counts = send_annual_statements(year)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for name, count in counts.items():
            self.stdout.write(f"{name}: {count}")
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} statements failed; run it again later.")
