"""Fill the duplicates review queue: ``manage.py crm_find_duplicates``.

Compares every contact (or those given with ``--contact``) using the rules
configured in the admin (Data quality > Duplicate rules) and queues the
pairs that match. Pairs staff marked "not a duplicate" stay closed.
"""

from django.core.management.base import BaseCommand

from crm_core.services.duplicates import find_duplicates

STAGES = {
    "loaded contacts": "Read %(count)d contacts",
    "loaded details": "Read their emails, phones and addresses",
    "compared": "Compared %(count)d pairs",
    "saved": "Wrote %(count)d pairs",
}


class Command(BaseCommand):
    help = "Find possible duplicate contacts and queue them for review."

    def add_arguments(self, parser):
        parser.add_argument(
            "--contact",
            type=int,
            action="append",
            dest="contacts",
            metavar="ID",
            help="Only pairs involving this contact (repeatable).",
        )

    def handle(self, *args, contacts=None, verbosity=1, **options):
        last = {}

        def progress(stage, count):
            if verbosity < 1 or last.get(stage) == count:
                return
            last[stage] = count
            self.stdout.write(STAGES.get(stage, stage) % {"count": count})

        result = find_duplicates(contacts=contacts, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.found} possible duplicates: {result.created} new, "
                f"{result.updated} updated, {result.kept_closed} already decided "
                f"({result.contacts} contacts, {result.compared} pairs compared)."
            )
        )
