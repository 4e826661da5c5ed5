"""``manage.py crm_stripe_reconcile --since 3d [--dry-run]``: repair what missed webhooks left.

Lists recent Stripe checkout sessions, payment intents, invoices and refunds
and applies each one as its webhook would have (see
``crm_payments.providers.stripe_reconcile``). Prints one line per change,
or "Nothing to repair."; a second run right after the first prints nothing
changed. Schedule it (or ``crm_payments.tasks.reconcile_stripe_task``) a few
times a day; see docs/payments.md.
"""

from django.core.management.base import BaseCommand, CommandError

from crm_core.exceptions import CRMError
from crm_payments.providers.stripe_reconcile import parse_since, reconcile


class Command(BaseCommand):
    help = "Compare recent Stripe payments with ours and repair what missed webhooks left."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            default="3d",
            help="How far back: 3d, 12h, 90m or an ISO date such as 2026-01-31 (default 3d).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would change and save nothing.",
        )

    def handle(self, *args, since, dry_run, **options):
        try:
            moment = parse_since(since)
        except ValueError as error:
            raise CommandError(f"--since: {error}") from None
        try:
            changes = reconcile(moment, dry_run=dry_run)
        except CRMError as error:
            raise CommandError(str(error.message)) from None
        prefix = "Would repair: " if dry_run else "Repaired: "
        for change in changes:
            self.stdout.write(prefix + change)
        if not changes:
            self.stdout.write("Nothing to repair.")
