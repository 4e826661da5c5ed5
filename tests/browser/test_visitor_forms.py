"""Visitors complete each kind of CRM form in a real browser, and it lands in the core.

Pages are built in Python with the blocks' settings, as an editor would
publish them. Paying by card goes through the local Stripe fake's hosted
checkout page, which delivers its signed webhooks to the live server as
Stripe would. Every form page and every thank-you page is checked with axe.
"""

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from wagtail.models import Page

from crm_core.models import (
    Activity,
    ConsentRecord,
    Contribution,
    ContributionStatus,
    GroupMembership,
    Membership,
    MembershipStatus,
    Participant,
    ParticipantStatus,
)
from crm_payments.models import Payment, PaymentStatus, WebhookEvent
from crm_wagtail.models import EventPage, FormPage, MembershipPage
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_visitor_donation import axe_violations
from tests.factories import (
    EventFactory,
    EventFeeLevelFactory,
    FinancialTypeFactory,
    GroupFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser

PAID = "Thank you: your payment was received"  # the thank-you page after Stripe


class Visit:
    """A visitor's browser on the site: each step checked with axe and screenshotted."""

    def __init__(self, page, live_server, kind):
        self.page = page
        self.live_server = live_server
        self.kind = kind
        self.step = 0

    def shot(self):
        self.step += 1
        self.page.screenshot(
            path=str(ARTIFACTS / f"visitor-{self.kind}-{self.step}.png"), full_page=True
        )

    def accessible_step(self):
        count, report = axe_violations(self.page)
        assert count == 0, report
        self.shot()

    def open(self, page):
        self.page.goto(self.live_server.url + page.url)
        self.accessible_step()

    def fill_in(self, first_name, last_name, email):
        self.page.get_by_label("First name", exact=True).fill(first_name)
        self.page.get_by_label("Last name", exact=True).fill(last_name)
        self.page.get_by_label("Email address").fill(email)

    def send(self, button, *, to=r"/crm/forms/thanks/"):
        self.shot()
        self.page.get_by_role("button", name=button).click()
        self.page.wait_for_url(re.compile(to))

    def thanks_text(self):
        self.accessible_step()
        return self.page.locator("main").inner_text()

    def pay_by_card(self, fake_stripe):
        """At the fake's hosted checkout, pay; back on the site's thank-you page, reload it.

        Paying makes the fake post its signed webhooks to the live server. Only
        from here: Stripe sends webhooks after the call that caused them, the
        fake during it, so one sent while the submission's transaction waits
        for its checkout session would wait for that transaction's SQLite lock.
        """
        assert self.page.url.startswith(f"{fake_stripe.url}/_fake/checkout/cs_")
        fake_stripe.webhook_url = self.live_server.url + reverse("crm_payments:stripe-webhook")
        self.shot()
        self.page.get_by_role("button", name="Pay").click()
        self.page.wait_for_url(re.compile(r"/crm/payments/return/"))
        self.page.reload()
        text = self.thanks_text()
        assert PAID in text
        return text


@pytest.fixture
def visit(reference_data, live_server, browser_page):
    """``visit(kind)``: a visitor's browser, screenshots named after ``kind``."""
    return lambda kind: Visit(browser_page, live_server, kind)


def assert_webhooks_accepted(fake_stripe):
    assert fake_stripe.deliveries, "the fake sent its webhooks"
    assert {status for _id, _type, status in fake_stripe.deliveries} == {200}
    assert WebhookEvent.objects.filter(
        event_type="checkout.session.completed", status="processed"
    ).exists()
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED


def publish(page):
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


@pytest.fixture
def membership_page(demo_site):
    individual = MembershipTypeFactory(name="Individual", fee=Decimal("30.00"))
    block = {"membership_types": [individual], "payment_methods": ["stripe", "offline"]}
    return publish(
        MembershipPage(title="Join us", slug="join-us", body=[("membership_form", block)])
    )


def test_a_visitor_joins_and_pays_later(visit, membership_page):
    visitor = visit("membership-later")
    visitor.open(membership_page)
    visitor.fill_in("Grace", "Hopper", "grace@example.org")
    visitor.send("Join")

    assert (
        "Your membership is reserved; it starts when your payment of 30.00 GBP arrives."
        in visitor.thanks_text()
    )
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.PENDING
    assert membership.membership_type.name == "Individual"
    assert membership.contact.display_name == "Grace Hopper"
    contribution = Contribution.objects.get()
    assert (contribution.status, contribution.total_amount) == (
        ContributionStatus.PENDING,
        Decimal("30.00"),
    )
    assert contribution.contact == membership.contact


def test_a_visitor_joins_and_pays_by_card(visit, membership_page, fake_stripe):
    visitor = visit("membership-card")
    visitor.open(membership_page)
    visitor.fill_in("Grace", "Hopper", "grace@example.org")
    visitor.page.get_by_label("Card (Stripe)").check()
    visitor.send("Join", to=re.escape(fake_stripe.url))

    assert "We have received your payment of 30.00 GBP." in visitor.pay_by_card(fake_stripe)
    assert_webhooks_accepted(fake_stripe)
    membership = Membership.objects.get()
    assert membership.status in {MembershipStatus.NEW, MembershipStatus.CURRENT}
    assert membership.end_date is not None
    assert Contribution.objects.get().status == ContributionStatus.COMPLETED


@pytest.fixture
def event(demo_site):
    event = EventFactory(title="Quiz night", capacity=10, max_seats_per_registration=4)
    EventFeeLevelFactory(event=event, label="Standard", amount=Decimal("12.00"), is_default=True)
    return event


def event_page(event):
    """The event's page, where a visitor may book for themselves and one guest."""
    block = {"event": event, "max_attendees": 2, "payment_methods": ["stripe", "offline"]}
    return publish(
        EventPage(
            title=event.title,
            slug=event.slug,
            event=event,
            body=[("event_registration_form", block)],
        )
    )


def test_a_visitor_books_for_themselves_and_a_guest_and_pays_later(visit, event):
    visitor = visit("event-later")
    visitor.open(event_page(event))
    visitor.page.get_by_label("Number of people").select_option("2")
    visitor.fill_in("Alan", "Turing", "alan@example.org")
    visitor.page.get_by_label("Person 2: first name").fill("Joan")
    visitor.page.get_by_label("Person 2: last name").fill("Clarke")
    visitor.send("Register")

    assert (
        "Your places are held; they are confirmed when your payment of 24.00 GBP arrives."
        in visitor.thanks_text()
    )
    participants = Participant.objects.order_by("pk")
    assert [p.contact.display_name for p in participants] == ["Alan Turing", "Joan Clarke"]
    assert {p.status for p in participants} == {ParticipantStatus.PENDING_PAYMENT}
    assert participants[1].registered_by == participants[0].contact
    contribution = Contribution.objects.get()
    assert (contribution.status, contribution.total_amount) == (
        ContributionStatus.PENDING,
        Decimal("24.00"),
    )


def test_a_visitor_books_and_pays_by_card(visit, event, fake_stripe):
    visitor = visit("event-card")
    visitor.open(event_page(event))
    visitor.fill_in("Alan", "Turing", "alan@example.org")
    visitor.page.get_by_label("Card (Stripe)").check()
    visitor.send("Register", to=re.escape(fake_stripe.url))

    assert "We have received your payment of 12.00 GBP." in visitor.pay_by_card(fake_stripe)
    assert_webhooks_accepted(fake_stripe)
    participant = Participant.objects.get()
    assert participant.status == ParticipantStatus.REGISTERED
    assert participant.contact.display_name == "Alan Turing"
    assert Contribution.objects.get().status == ContributionStatus.COMPLETED


def test_a_visitor_books_a_free_event_and_is_registered_at_once(visit):
    event = EventFactory(title="Open day", capacity=None)
    EventFeeLevelFactory(event=event, label="Free", amount=Decimal("0"), is_default=True)
    visitor = visit("event-free")
    visitor.open(event_page(event))
    assert visitor.page.get_by_text("How to pay").count() == 0, "nothing to pay"
    visitor.fill_in("Alan", "Turing", "alan@example.org")
    visitor.send("Register")

    assert "You are registered." in visitor.thanks_text()
    participant = Participant.objects.get()
    assert (participant.status, participant.event) == (ParticipantStatus.REGISTERED, event)
    assert not Contribution.objects.exists()


def test_a_donor_gives_by_card(visit, fake_stripe):
    fund = FinancialTypeFactory(slug="general", name="General")
    block = {
        "title": "Support the garden",
        "currency": "GBP",
        "amounts": [{"amount": "10", "label": "seeds"}, {"amount": "25", "label": "tools"}],
        "min_amount": "1",
        "max_amount": "500",
        "financial_type": fund,
        "frequencies": ["one_off"],
        "payment_methods": ["stripe", "offline"],
    }
    page = publish(FormPage(title="Give", slug="give", body=[("donation_form", block)]))
    visitor = visit("donation-card")
    visitor.open(page)
    visitor.page.get_by_label(re.compile("25.00 GBP tools")).check()
    visitor.fill_in("Ada", "Lovelace", "ada@example.org")
    visitor.page.get_by_label("Card (Stripe)").check()
    visitor.send("Donate", to=re.escape(fake_stripe.url))

    assert "We have received your payment of 25.00 GBP." in visitor.pay_by_card(fake_stripe)
    assert_webhooks_accepted(fake_stripe)
    contribution = Contribution.objects.get()
    assert (contribution.status, contribution.total_amount) == (
        ContributionStatus.COMPLETED,
        Decimal("25.00"),
    )
    assert contribution.contact.display_name == "Ada Lovelace"


NEWSLETTER_WORDING = "Yes, email me the garden newsletter."


def test_a_visitor_signs_up_and_joins_once_the_emailed_link_is_opened(visit):
    garden = GroupFactory(name="Garden news")
    volunteering = GroupFactory(name="Volunteering news")
    block = {
        "title": "Hear from us",
        "groups": [garden, volunteering],
        "double_opt_in": True,
        "consent": [{"purpose": "newsletter", "wording": NEWSLETTER_WORDING, "required": True}],
    }
    page = publish(FormPage(title="Newsletter", slug="newsletter", body=[("signup_form", block)]))
    visitor = visit("signup")
    visitor.open(page)
    visitor.page.get_by_label("Email address").fill("zoe@example.org")
    visitor.page.get_by_label("First name (optional)").fill("Zoë")
    visitor.page.get_by_label("Garden news", exact=True).check()
    visitor.page.get_by_label(re.compile(NEWSLETTER_WORDING)).check()
    visitor.send("Sign up")

    assert "we have sent you an email" in visitor.thanks_text()
    assert not GroupMembership.objects.exists(), "nothing is joined before the link is opened"
    assert not ConsentRecord.objects.exists()
    [message] = mail.outbox
    assert message.to == ["zoe@example.org"]
    link = re.search(r"https?://\S+/crm/forms/confirm/\S+/", message.body).group(0)

    visitor.page.goto(link)
    assert "Subscription confirmed" in visitor.thanks_text()
    membership = GroupMembership.objects.get()
    assert (membership.group, membership.contact.display_name) == (garden, "Zoë")
    consent = ConsentRecord.objects.get()
    assert (consent.contact, consent.wording, consent.granted) == (
        membership.contact,
        NEWSLETTER_WORDING,
        True,
    )


def test_a_visitors_message_lands_on_the_timeline_and_the_staff_member_is_told(visit):
    staff = UserFactory(username="sam", email="sam@example.org", is_staff=True)
    block = {
        "title": "Write to us",
        "subject": "Website enquiry",
        "assignee": str(staff.pk),
        "notify_emails": ["office@example.org"],
    }
    page = publish(FormPage(title="Contact", slug="contact", body=[("contact_form", block)]))
    visitor = visit("contact")
    visitor.open(page)
    visitor.fill_in("Ada", "Lovelace", "ada@example.org")
    visitor.page.get_by_label("Your message").fill("Can I volunteer on Saturdays?")
    visitor.send("Send")

    assert "We have your message and will reply soon." in visitor.thanks_text()
    activity = Activity.objects.get(activity_type="form_submission")
    assert (activity.subject, activity.assignee) == ("Website enquiry", staff)
    assert "Can I volunteer on Saturdays?" in activity.details
    [message] = mail.outbox
    assert sorted(message.to) == ["office@example.org", "sam@example.org"]
    assert "Ada Lovelace <ada@example.org>" in message.body
