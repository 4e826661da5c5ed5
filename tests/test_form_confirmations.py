"""Confirmation emails after a form: registration with .ics, welcome, receipt on payment; once."""

import io
import json
from decimal import Decimal

import icalendar
import pytest
from django.core import mail
from pypdf import PdfReader
from wagtail.models import Page

from crm_core.models import Activity, Contribution, Participant, ReceiptStatus, SentMessage
from crm_core.services.messages import (
    send_membership_confirmation,
    send_receipt,
    send_registration_confirmation,
)
from crm_payments.models import Payment
from crm_wagtail.models import DonationPage, EventPage, MembershipPage
from tests.factories import (
    EventFactory,
    EventFeeLevelFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
)
from tests.payments_fixtures import sign_webhook

pytestmark = pytest.mark.django_db

SUBMIT = "/crm/forms/submit/"


def publish(page):
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def hidden(html, name):
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def submit(client, page, **data):
    html = client.get(page.url).content.decode()
    posted = {
        "placement": hidden(html, "placement"),
        "token": hidden(html, "token"),
        "first_name": "Alan",
        "last_name": "Turing",
        "email": "alan@example.org",
        **data,
    }
    return client.post(SUBMIT, posted, REMOTE_ADDR="203.0.113.9")


def pay_at_stripe(client, fake_stripe):
    fake_stripe.pay(Payment.objects.get().provider_id)
    deliver_webhooks(client, fake_stripe)


def deliver_webhooks(client, fake_stripe):
    for event in fake_stripe.events:
        body, header = sign_webhook(json.dumps(event))
        answer = client.post(
            "/crm/payments/stripe/webhook/",
            body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=header,
        )
        assert answer.status_code == 200


@pytest.fixture
def event(db):
    event = EventFactory(title="Quiz night", slug="quiz-night", capacity=10, location="Town hall")
    EventFeeLevelFactory(event=event, label="Standard", amount=Decimal("12.00"), is_default=True)
    return event


@pytest.fixture
def event_page(event):
    block = {
        "title": "Book",
        "event": event,
        "max_attendees": 2,
        "payment_methods": ["offline", "stripe"],
        "consent": [],
    }
    return publish(
        EventPage(
            title=event.title,
            slug=event.slug,
            event=event,
            body=[("event_registration_form", block)],
        )
    )


def calendar_of(message):
    [(name, content, mimetype)] = [a for a in message.attachments if a[2] == "text/calendar"]
    assert name == "quiz-night.ics"
    return icalendar.Calendar.from_ical(content)


def test_a_registration_is_confirmed_once_with_the_event_in_a_calendar_file(
    client, event_page, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(
            client,
            event_page,
            fee_level=str(event_page.event.fee_levels.get().pk),
            seats="2",
            guest_2_first_name="Joan",
            guest_2_last_name="Clarke",
            payment_method="offline",
        )
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["alan@example.org"]
    assert message.subject == "Your places at Quiz night are held"
    assert "Joan Clarke (Pending payment)" in message.body
    assert "Where: Town hall" in message.body
    [vevent] = calendar_of(message).walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Quiz night"

    registration = Participant.objects.first().registration
    assert send_registration_confirmation(registration) is False
    assert len(mail.outbox) == 1
    assert Activity.objects.filter(
        activity_type="email", subject="Email sent: Your places at Quiz night are held"
    ).exists()


def test_a_paid_registration_gets_a_receipt_once_the_webhook_says_paid(
    client, event_page, fake_stripe, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit(
            client,
            event_page,
            fee_level=str(event_page.event.fee_levels.get().pk),
            seats="1",
            payment_method="stripe",
        )
    assert len(mail.outbox) == 1  # places held
    with django_capture_on_commit_callbacks(execute=True):
        pay_at_stripe(client, fake_stripe)
        deliver_webhooks(client, fake_stripe)  # delivered again
    assert len(mail.outbox) == 2
    receipt = mail.outbox[1]
    assert receipt.subject == "Receipt for your payment of 12.00 GBP"
    assert "Quiz night: Standard: 12.00 GBP" in receipt.body
    assert "A place for Alan Turing." in receipt.body
    calendar_of(receipt)
    contribution = Contribution.objects.get()
    [pdf] = [a for a in receipt.attachments if a[2] == "application/pdf"]
    assert pdf[0] == f"receipt-{contribution.pk}.pdf"
    text = PdfReader(io.BytesIO(pdf[1])).pages[0].extract_text()
    assert "Alan Turing" in text and "12.00" in text
    assert contribution.receipt_status == ReceiptStatus.SENT
    assert send_receipt(contribution.pk) is False
    assert SentMessage.objects.filter(key=f"receipt:{contribution.pk}").count() == 1


def test_a_waitlisted_registration_says_so_without_a_calendar_file(
    client, event, django_capture_on_commit_callbacks
):
    event.capacity = 0
    event.waitlist_enabled = True
    event.save()
    page = publish(
        EventPage(
            title="Full",
            slug="full",
            event=event,
            body=[
                (
                    "event_registration_form",
                    {"event": event, "max_attendees": 1, "payment_methods": ["offline"]},
                )
            ],
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        submit(
            client,
            page,
            fee_level=str(event.fee_levels.get().pk),
            seats="1",
            payment_method="offline",
        )
    [message] = mail.outbox
    assert message.subject == "You are on the waiting list for Quiz night"
    assert message.attachments == []


@pytest.fixture
def membership_page(db):
    types = [
        MembershipTypeFactory(name="Friend", fee=Decimal("0"), auto_renew="no"),
        MembershipTypeFactory(name="Individual", fee=Decimal("30.00"), auto_renew="optional"),
    ]
    return publish(
        MembershipPage(
            title="Join",
            slug="join",
            body=[
                (
                    "membership_form",
                    {"membership_types": types, "payment_methods": ["offline", "stripe"]},
                )
            ],
        )
    )


def test_a_free_membership_is_welcomed_once(
    client, membership_page, django_capture_on_commit_callbacks
):
    from crm_core.models import Membership, MembershipType

    friend = MembershipType.objects.get(name="Friend")
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, membership_page, membership_type=str(friend.pk), payment_method="offline")
    [message] = mail.outbox
    assert message.subject == "Welcome: your Friend membership"
    assert "you are now a member (Friend)" in message.body
    assert send_membership_confirmation(Membership.objects.get().pk) is False


def test_a_paid_membership_is_confirmed_by_its_receipt(
    client, membership_page, fake_stripe, django_capture_on_commit_callbacks
):
    from crm_core.models import MembershipType

    individual = MembershipType.objects.get(name="Individual")
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, membership_page, membership_type=str(individual.pk), payment_method="stripe")
    assert mail.outbox == []  # nothing is confirmed before it is paid
    with django_capture_on_commit_callbacks(execute=True):
        pay_at_stripe(client, fake_stripe)
    [receipt] = mail.outbox
    assert "Your Individual membership runs until" in receipt.body


def test_a_pay_later_gift_sends_nothing_until_paid_and_a_bounced_address_gets_nothing(
    client, fake_stripe, django_capture_on_commit_callbacks
):
    fund = FinancialTypeFactory(slug="general", name="General")
    page = publish(
        DonationPage(
            title="Give",
            slug="give",
            body=[
                (
                    "donation_form",
                    {
                        "currency": "GBP",
                        "amounts": [{"amount": "10", "label": ""}],
                        "min_amount": "1",
                        "max_amount": "100",
                        "financial_type": fund,
                        "frequencies": ["one_off"],
                        "payment_methods": ["offline", "stripe"],
                    },
                )
            ],
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, page, frequency="one_off", amount="0", payment_method="stripe")
    assert mail.outbox == []
    contribution = Contribution.objects.get()
    email = contribution.contact.emails.get()
    email.on_hold = True
    email.save()
    with django_capture_on_commit_callbacks(execute=True):
        pay_at_stripe(client, fake_stripe)
    assert mail.outbox == []
    contribution.refresh_from_db()
    assert contribution.receipt_status == ReceiptStatus.PENDING  # still to send

    email.on_hold = False  # staff fixed the address: the receipt can go now
    email.save()
    assert send_receipt(contribution.pk) is True
    assert mail.outbox[0].to == ["alan@example.org"]


def test_a_deceased_members_welcome_is_not_sent(
    client, membership_page, django_capture_on_commit_callbacks
):
    from crm_core.models import Membership, MembershipType

    friend = MembershipType.objects.get(name="Friend")
    submit(client, membership_page, membership_type=str(friend.pk), payment_method="offline")
    membership = Membership.objects.get()
    membership.contact.is_deceased = True
    membership.contact.save()
    assert send_membership_confirmation(membership.pk) is False
    assert mail.outbox == []
    membership.contact.is_deceased = False
    membership.contact.save()
    assert send_membership_confirmation(membership.pk) is True
