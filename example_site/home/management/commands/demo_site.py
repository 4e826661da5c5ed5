"""Set up the example site for the demo: ``manage.py demo_site``.

Creates the home page (replacing Wagtail's "Welcome" page), points the
default Site at it, and creates the staff superuser ``admin``. Safe to run
again: the home page is kept, and the admin password only changes when
DEMO_ADMIN_PASSWORD is set.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.html import format_html
from wagtail.models import Page, Site

from crm_core.models import FinancialType, Group, MembershipType
from crm_core.selectors.events import upcoming_public_events, with_seats
from crm_wagtail.models import DonationPage, EventIndexPage, EventPage, FormPage, MembershipPage
from example_site.home.models import HomePage

ADMIN_USERNAME = "admin"
MAX_DEMO_EVENT_PAGES = 6
INTRO = """
<p>This is the demo of a CRM that lives inside a Wagtail site. Staff run
contacts, households, organisations, groups, consent and each contact's
timeline from the Wagtail admin.</p>
<p>The demo data is invented: names come from a seeded generator, email
addresses use example domains and phone numbers are from the ranges set
aside for drama, so nothing reaches a real person.</p>
<p>Staff can <a href="/admin/">log in to the admin</a> with the account the
<code>demo_site</code> command printed.</p>
"""


class Command(BaseCommand):
    help = "Create the demo home page and the 'admin' staff user (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the site is served, for the printed login address.",
        )

    def handle(self, *args, base_url, **options):
        home, created = self.ensure_home_page()
        self.stdout.write(
            f"Home page {'created' if created else 'already there'}: {home.title} ({home.url})"
        )
        donate, created = self.ensure_donation_page(home)
        self.stdout.write(
            f"Donation page {'created' if created else 'already there'}: {donate.url}"
        )
        self.stdout.write(self.ensure_membership_page(home))
        self.stdout.write(self.ensure_event_pages(home))
        self.stdout.write(self.ensure_contact_page(home))
        self.stdout.write(self.ensure_admin(base_url.rstrip("/")))

    @transaction.atomic
    def ensure_contact_page(self, home):
        if FormPage.objects.child_of(home).filter(slug="stay-in-touch").exists():
            return "Contact page already there: /stay-in-touch/"
        newsletter = Group.objects.filter(name__iexact="Newsletter").first()
        if newsletter is None:
            newsletter = Group.objects.create(name="Newsletter", slug="newsletter")
        page = FormPage(
            title="Stay in touch",
            slug="stay-in-touch",
            body=[
                (
                    "signup_form",
                    {
                        "title": "Get our newsletter",
                        "groups": [newsletter],
                        "double_opt_in": True,
                        "consent": [],
                        "thank_you": "",
                    },
                ),
                (
                    "contact_form",
                    {
                        "title": "Write to us",
                        "subject": "Message from the website",
                        "notify_emails": ["office@example.org"],
                        "consent": [],
                        "thank_you": "<p>Thank you for writing.</p>",
                    },
                ),
            ],
        )
        home.add_child(instance=page)
        page.save_revision().publish()
        return f"Contact page created: {page.url}"

    @transaction.atomic
    def ensure_event_pages(self, home):
        """/events/: the upcoming events, each on its page with a registration form."""
        index = EventIndexPage.objects.child_of(home).filter(slug="events").first()
        if index is not None:
            return f"Events pages already there: {index.url}"
        events = list(with_seats(upcoming_public_events())[:MAX_DEMO_EVENT_PAGES])
        if not events:
            return "Events pages not made: no upcoming event yet (run crm_demo_data first)."
        index = EventIndexPage(
            title="What's on",
            slug="events",
            intro="<p>Come along: most of our events are free, and all are open to everyone.</p>",
        )
        home.add_child(instance=index)
        index.save_revision().publish()
        for event in events:
            page = EventPage(
                title=event.title,
                slug=event.slug,
                event=event,
                intro=format_html("<p>{}</p>", event.summary) if event.summary else "",
                body=[
                    (
                        "event_registration_form",
                        {
                            "title": "Book your place",
                            "event": event,
                            "max_attendees": min(4, event.max_seats_per_registration),
                            "payment_methods": ["stripe", "offline"],
                            "consent": [],
                            "thank_you": "<p>See you there!</p>",
                        },
                    )
                ],
            )
            index.add_child(instance=page)
            page.save_revision().publish()
        return f"Events pages created: {index.url} with {len(events)} events"

    @transaction.atomic
    def ensure_membership_page(self, home):
        if MembershipPage.objects.child_of(home).filter(slug="join").exists():
            return "Membership page already there: /join/"
        types = list(
            MembershipType.objects.filter(is_active=True, is_renewable_online=True)
            .exclude(auto_renew="required")
            .order_by("fee", "name")[:3]
        )
        if not types:
            return "Membership page not made: no membership types yet (run crm_demo_data first)."
        page = MembershipPage(
            title="Become a member",
            slug="join",
            intro="<p>Members keep Riverside going, and get a vote at the annual meeting.</p>",
            body=[
                (
                    "membership_form",
                    {
                        "title": "Join Riverside",
                        "membership_types": types,
                        "payment_methods": ["stripe", "offline"],
                        "consent": [
                            {
                                "purpose": "newsletter",
                                "wording": "Yes, send me the members' newsletter by email.",
                                "required": False,
                            }
                        ],
                        "thank_you": "<p>Welcome to Riverside!</p>",
                    },
                )
            ],
        )
        home.add_child(instance=page)
        page.save_revision().publish()
        return f"Membership page created: {page.url}"

    @transaction.atomic
    def ensure_donation_page(self, home):
        page = DonationPage.objects.child_of(home).filter(slug="donate").first()
        if page is not None:
            return page, False
        fund = FinancialType.objects.filter(slug="donation").first()
        if fund is None:
            fund = FinancialType.objects.create(name="Donation", slug="donation")
        page = DonationPage(
            title="Support our work",
            slug="donate",
            intro="<p>Your gift keeps the community hall open and the food bank stocked.</p>",
            body=[
                (
                    "donation_form",
                    {
                        "title": "Make a donation",
                        "currency": "GBP",
                        "amounts": [
                            {"amount": "10", "label": "buys a week of tea and biscuits"},
                            {"amount": "25", "label": "stocks a food parcel"},
                            {"amount": "50", "label": "heats the hall for a day"},
                        ],
                        "allow_custom_amount": True,
                        "min_amount": "1",
                        "max_amount": "10000",
                        "financial_type": fund,
                        "frequencies": ["one_off", "monthly", "annual"],
                        "cover_fees_percent": "2.5",
                        "payment_methods": ["stripe", "offline"],
                        "consent": [
                            {
                                "purpose": "newsletter",
                                "wording": "Yes, email me news of what my gift achieves.",
                                "required": False,
                            }
                        ],
                        "thank_you": "<p>Thank you for supporting Riverside.</p>",
                    },
                )
            ],
        )
        home.add_child(instance=page)
        page.save_revision().publish()
        return page, True

    @transaction.atomic
    def ensure_home_page(self):
        home = HomePage.objects.first()
        created = home is None
        # Wagtail's initial migration adds a plain "Welcome" page at /home/.
        welcome = Page.objects.filter(
            depth=2, content_type=ContentType.objects.get_for_model(Page)
        ).first()
        if home is None:
            if welcome is not None:
                # Free its slug now; it is deleted once no Site points at it.
                welcome.slug = f"welcome-{welcome.pk}"
                welcome.save(update_fields=["slug", "url_path"])
            home = HomePage(
                title=settings.WAGTAIL_SITE_NAME, slug="home", intro=INTRO.strip(), live=True
            )
            Page.get_first_root_node().add_child(instance=home)
            home.save_revision().publish()
        site = Site.objects.filter(is_default_site=True).first()
        if site is None:
            Site.objects.create(
                hostname="localhost",
                port=80,
                root_page=home,
                is_default_site=True,
                site_name=settings.WAGTAIL_SITE_NAME,
            )
        elif site.root_page_id != home.pk:
            site.root_page = home
            site.site_name = settings.WAGTAIL_SITE_NAME
            site.save()
        if welcome is not None and not Site.objects.filter(root_page=welcome).exists():
            welcome.delete()
        return home, created

    def ensure_admin(self, base_url):
        user_model = get_user_model()
        given = os.environ.get("DEMO_ADMIN_PASSWORD")
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        login = f"Staff login: {base_url}/admin/  user: {ADMIN_USERNAME}"
        if user is None:
            password = given or secrets.token_urlsafe(12)
            user_model.objects.create_superuser(
                ADMIN_USERNAME, email="admin@example.org", password=password
            )
            return f"{login}  password: {password}"
        if given:
            user.set_password(given)
            user.is_active = user.is_staff = user.is_superuser = True
            user.save()
            return f"{login}  password: {given}  (reset from DEMO_ADMIN_PASSWORD)"
        return (
            f"{login}  password: unchanged (the user already exists; "
            "set DEMO_ADMIN_PASSWORD to reset it)"
        )
