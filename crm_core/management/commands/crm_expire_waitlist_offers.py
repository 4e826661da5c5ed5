"""``manage.py crm_expire_waitlist_offers``: pass unanswered seat offers on.

Run it every few minutes from cron. Idempotent: offers that have not
expired are left alone, so a second run right after the first changes nothing.
"""

from django.core.management.base import BaseCommand

from crm_core.services.events import expire_waitlist_offers


class Command(BaseCommand):
    help = "Cancel expired waitlist offers and offer the freed seats to the next in line."

    def handle(self, *args, **options):
        offered = expire_waitlist_offers()
        self.stdout.write(f"seats offered: {len(offered)}")
