"""ESP bounce and complaint webhooks (django-anymail) put addresses on hold.

Real Postmark and Mailgun payloads are posted to anymail's tracking URLs
(``/anymail/<esp>/tracking/``) with HTTP basic auth, as the ESPs send them.
"""

import base64
import hashlib
import hmac
import json
import uuid

import pytest
from django.core import mail
from django.db import DatabaseError
from django.test import Client

from crm_core.models import Activity, ConsentRecord, ContactEmail, Mailing, RecipientStatus
from crm_core.services import mailings as mailing_service
from crm_core.services.bounces import SOURCE
from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group
from tests.factories import ContactFactory, GroupFactory

pytestmark = pytest.mark.django_db

SECRET = "esp-user:esp-password-for-tests"
SIGNING_KEY = "mailgun-signing-key-for-tests"
ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
POSTMARK_URL = "/anymail/postmark/tracking/"
MAILGUN_URL = "/anymail/mailgun/tracking/"


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = ANYMAIL
    settings.CRM = {**getattr(settings, "CRM", {}), "MAILING_RATE_LIMIT": 0}


@pytest.fixture
def client():
    # A 500 comes back as a response, so tests can assert it never happens.
    return Client(raise_request_exception=False)


def auth(secret=SECRET):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def post(client, url, payload, secret=SECRET):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    headers = auth(secret) if secret else {}
    return client.post(url, body, content_type="application/json", **headers)


def postmark_bounce(email, bounce_type="HardBounce", type_code=1, event_id=4323372036854775807):
    # Postmark's documented bounce webhook payload.
    return {
        "RecordType": "Bounce",
        "MessageStream": "broadcast",
        "ID": event_id,
        "Type": bounce_type,
        "TypeCode": type_code,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "news@example.org",
        "BouncedAt": "2026-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": bounce_type == "HardBounce",
        "CanActivate": True,
        "Subject": "Spring news",
    }


def postmark_complaint(email, event_id=1234567):
    return {
        **postmark_bounce(email, event_id=event_id),
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Description": "The subscriber explicitly marked this message as spam.",
        "Details": "Test spam complaint details",
    }


def mailgun_event(event_data, key=SIGNING_KEY, token=None):
    token = token or uuid.uuid4().hex
    timestamp = "1764864000"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_failure(email, severity="permanent", message_id="20260101.1@mg.example.org"):
    # Mailgun's documented "failed" event (webhooks API, JSON).
    return {
        "event": "failed",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1764864000.375624,
        "severity": severity,
        "reason": "bounce" if severity == "permanent" else "generic",
        "recipient": email,
        "recipient-domain": email.split("@")[1],
        "log-level": "error",
        "message": {"headers": {"message-id": message_id, "to": email, "subject": "News"}},
        "delivery-status": {
            "code": 550 if severity == "permanent" else 452,
            "message": "5.1.1 No such user" if severity == "permanent" else "4.2.2 Mailbox full",
            "description": "",
            "attempt-no": 1,
        },
        "user-variables": {},
        "tags": [],
    }


def hold_of(email):
    return list(
        ContactEmail.objects.filter(email_normalized=email).values_list("on_hold", flat=True)
    )


def bounce_activities(contact=None):
    rows = Activity.objects.filter(source=SOURCE)
    return rows.filter(contact=contact) if contact else rows


def mailing_for(*contacts, **fields):
    group = GroupFactory()
    for contact in contacts:
        add_to_group(contact, group)
    mailing = Mailing.objects.create(
        name="Spring news", subject="Hello", body_html="<p>Hello {{ first_name }}</p>", **fields
    )
    mailing.include_groups.set([group])
    return mailing


def bulk_consent(contact):
    latest = (
        ConsentRecord.objects.filter(
            contact=contact, purpose=mailing_service.BULK_PURPOSE, channel="email"
        )
        .order_by("-recorded_at", "-id")
        .first()
    )
    return None if latest is None else latest.granted


# -- hard bounces --------------------------------------------------------------------------


def test_a_hard_bounce_puts_the_address_on_hold_and_the_next_mailing_leaves_it_out(client):
    ann = ContactFactory(emails=["ann@example.org"])
    bob = ContactFactory(emails=["bob@example.org"])
    mailing = mailing_for(ann, bob)

    response = post(client, POSTMARK_URL, postmark_bounce("ann@example.org"))

    assert response.status_code == 200
    assert hold_of("ann@example.org") == [True]
    assert hold_of("bob@example.org") == [False]
    assert mailing_service.build_recipients(mailing) == 1
    assert list(mailing.recipients.values_list("email", flat=True)) == ["bob@example.org"]
    activity = bounce_activities(ann).get()
    assert "bounced" in activity.subject
    assert "Postmark" in activity.details


def test_a_bounce_holds_the_address_on_every_contact_whatever_its_case(client):
    ann = ContactFactory(emails=["Ann.Smith@Example.org"])
    twin = ContactFactory(emails=["ann.smith@example.org", "twin@example.org"])

    post(client, POSTMARK_URL, postmark_bounce("ANN.SMITH@example.ORG"))

    assert hold_of("ann.smith@example.org") == [True, True]
    assert hold_of("twin@example.org") == [False]  # the contact's other address still works
    assert bounce_activities(ann).count() == 1
    assert bounce_activities(twin).count() == 1


def test_a_signed_mailgun_permanent_failure_puts_the_address_on_hold(client):
    ann = ContactFactory(emails=["ann@example.org"])

    response = post(client, MAILGUN_URL, mailgun_event(mailgun_failure("ann@example.org")))

    assert response.status_code == 200
    assert hold_of("ann@example.org") == [True]
    assert bounce_activities(ann).count() == 1


def test_a_mailgun_post_with_a_wrong_signature_is_refused_and_changes_nothing(client):
    ContactFactory(emails=["ann@example.org"])
    forged = mailgun_event(mailgun_failure("ann@example.org"), key="not-the-signing-key")

    response = post(client, MAILGUN_URL, forged)

    assert response.status_code in (400, 403)
    assert hold_of("ann@example.org") == [False]
    assert not bounce_activities().exists()


# -- complaints and unsubscribes ---------------------------------------------------------


def test_a_spam_complaint_puts_the_address_on_hold_and_withdraws_bulk_consent(client):
    ann = ContactFactory(emails=["ann@example.org"])
    record_consent(
        ann, purpose=mailing_service.BULK_PURPOSE, channel="email", granted=True, source="form"
    )

    response = post(client, POSTMARK_URL, postmark_complaint("ann@example.org"))

    assert response.status_code == 200
    assert hold_of("ann@example.org") == [True]
    assert bulk_consent(ann) is False
    withdrawal = ConsentRecord.objects.filter(contact=ann, granted=False).get()
    assert withdrawal.source == "Postmark"
    assert bounce_activities(ann).count() == 1


def test_an_unsubscribe_at_the_esp_withdraws_consent_but_keeps_the_address(client):
    ann = ContactFactory(emails=["ann@example.org"])
    # Postmark's subscription change webhook, for a recipient who used its unsubscribe link.
    payload = {
        "RecordType": "SubscriptionChange",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "MessageStream": "broadcast",
        "ChangedAt": "2026-11-05T16:33:54.9070259Z",
        "Recipient": "ann@example.org",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "",
        "Metadata": {},
    }

    assert post(client, POSTMARK_URL, payload).status_code == 200

    assert bulk_consent(ann) is False
    assert hold_of("ann@example.org") == [False]
    assert mailing_service.build_recipients(mailing_for(ann)) == 0


def test_a_complaint_about_a_mailing_also_withdraws_the_mailings_own_purpose(client, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    ann = ContactFactory(emails=["ann@example.org"])
    record_consent(ann, purpose="newsletter", channel="email", granted=True, source="form")
    mailing = mailing_for(ann, consent_purpose="newsletter")
    mailing_service.send_mailing(mailing)
    mailing_service.send_pending(mailing)
    # The ESP replaces the Message-ID; the metadata set before sending comes back.
    [sent] = mail.outbox
    metadata = sent.anymail_test_params["metadata"]
    recipient = mailing.recipients.get()
    assert metadata == {"crm_recipient": str(recipient.pk)}

    complaint = {**postmark_complaint("ann@example.org"), "Metadata": metadata}
    assert post(client, POSTMARK_URL, complaint).status_code == 200

    latest = ConsentRecord.objects.filter(contact=ann, purpose="newsletter").first()
    assert latest.granted is False
    assert "Spring news" in bounce_activities(ann).get().details
    recipient.refresh_from_db()
    assert recipient.status == RecipientStatus.SENT  # no bounced status to move it to


def test_a_mailgun_bounce_names_the_mailing_from_its_message_id(client):
    ann = ContactFactory(emails=["ann@example.org"])
    mailing = mailing_for(ann)
    mailing_service.build_recipients(mailing)
    recipient = mailing.recipients.get()
    message_id = mailing_service._message_id(recipient).strip("<>")

    failure = mailgun_failure("ann@example.org", message_id=message_id)
    assert post(client, MAILGUN_URL, mailgun_event(failure)).status_code == 200

    assert "Spring news" in bounce_activities(ann).get().details


@pytest.mark.parametrize("crm_recipient", ["9" * 40, "-1", "other", "someone else's"])
def test_a_bounce_naming_no_recipient_of_ours_still_holds_the_address(client, crm_recipient):
    ann = ContactFactory(emails=["ann@example.org"])
    bob = ContactFactory(emails=["bob@example.org"])
    mailing = mailing_for(bob)
    mailing_service.build_recipients(mailing)
    if crm_recipient == "someone else's":
        crm_recipient = str(mailing.recipients.get().pk)  # bob's row, not ann's
    payload = {**postmark_bounce("ann@example.org"), "Metadata": {"crm_recipient": crm_recipient}}

    assert post(client, POSTMARK_URL, payload).status_code == 200

    assert hold_of("ann@example.org") == [True]
    assert "Spring news" not in bounce_activities(ann).get().details


# -- what changes nothing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounce_type", "type_code"),
    [("Transient", 2), ("SoftBounce", 4096), ("DnsError", 2048)],
)
def test_a_soft_bounce_or_delay_changes_nothing(client, bounce_type, type_code):
    ann = ContactFactory(emails=["ann@example.org"])

    payload = postmark_bounce("ann@example.org", bounce_type=bounce_type, type_code=type_code)
    assert post(client, POSTMARK_URL, payload).status_code == 200

    assert hold_of("ann@example.org") == [False]
    assert not bounce_activities().exists()
    assert mailing_service.build_recipients(mailing_for(ann)) == 1


def sparkpost_bounce(email, bounce_class):
    # SparkPost's documented message event webhook batch (one event).
    return [
        {
            "msys": {
                "message_event": {
                    "type": "bounce",
                    "bounce_class": bounce_class,
                    "event_id": f"9235692769381385{bounce_class}",
                    "transmission_id": "65832150921904138",
                    "message_id": "0e0d94b7-9085-4e3c-ab30-e3f2cd9c273e",
                    "timestamp": "1764864000",
                    "rcpt_to": email.lower(),
                    "raw_rcpt_to": email,
                    "raw_reason": "550: 5.1.1 ... User unknown",
                    "reason": "550: 5.1.1 ... User unknown",
                    "error_code": "550",
                    "rcpt_meta": {},
                }
            }
        }
    ]


@pytest.mark.parametrize(("bounce_class", "held"), [("10", True), ("22", False), ("70", False)])
def test_sparkpost_bounces_hold_the_address_only_when_sparkpost_calls_them_hard(
    client, bounce_class, held
):
    ContactFactory(emails=["ann@example.org"])

    payload = sparkpost_bounce("ann@example.org", bounce_class)
    assert post(client, "/anymail/sparkpost/tracking/", payload).status_code == 200

    assert hold_of("ann@example.org") == [held]


def test_a_mailgun_temporary_failure_changes_nothing(client):
    ContactFactory(emails=["ann@example.org"])

    failure = mailgun_failure("ann@example.org", severity="temporary")
    assert post(client, MAILGUN_URL, mailgun_event(failure)).status_code == 200

    assert hold_of("ann@example.org") == [False]
    assert not bounce_activities().exists()


def test_the_same_event_twice_records_it_once(client):
    ann = ContactFactory(emails=["ann@example.org"])

    for _ in range(2):
        assert post(client, POSTMARK_URL, postmark_complaint("ann@example.org")).status_code == 200

    assert hold_of("ann@example.org") == [True]
    assert bounce_activities(ann).count() == 1
    assert ConsentRecord.objects.filter(contact=ann).count() == 1


def test_a_second_bounce_event_is_recorded_but_the_address_stays_on_hold(client):
    ann = ContactFactory(emails=["ann@example.org"])

    post(client, POSTMARK_URL, postmark_bounce("ann@example.org", event_id=1))
    post(client, POSTMARK_URL, postmark_bounce("ann@example.org", event_id=2))

    assert hold_of("ann@example.org") == [True]
    assert bounce_activities(ann).count() == 2


def test_an_unknown_address_is_accepted_and_changes_nothing(client):
    ContactFactory(emails=["ann@example.org"])

    response = post(client, POSTMARK_URL, postmark_bounce("nobody@example.net"))

    assert response.status_code == 200
    assert hold_of("ann@example.org") == [False]
    assert not bounce_activities().exists()
    assert not ConsentRecord.objects.exists()


# -- forged and broken posts ---------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "esp-user:wrong-password", "esp-user:"])
def test_a_post_without_the_right_basic_auth_is_refused_and_changes_nothing(client, secret):
    ContactFactory(emails=["ann@example.org"])

    response = post(client, POSTMARK_URL, postmark_complaint("ann@example.org"), secret=secret)

    assert response.status_code in (400, 403)
    assert hold_of("ann@example.org") == [False]
    assert not bounce_activities().exists()
    assert not ConsentRecord.objects.exists()


def test_without_a_webhook_secret_every_post_is_refused(client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": []}
    ContactFactory(emails=["ann@example.org"])

    for secret in (None, SECRET):
        response = post(client, POSTMARK_URL, postmark_bounce("ann@example.org"), secret=secret)
        assert response.status_code == 403

    assert hold_of("ann@example.org") == [False]
    assert not bounce_activities().exists()


@pytest.mark.parametrize(
    "body",
    ["{not json", b"\xff\xfe", "[1, 2]", '"text"', "{}", '{"RecordType": "Bounce"}'],
)
def test_a_malformed_payload_is_never_a_server_error(client, body):
    ContactFactory(emails=["ann@example.org"])

    response = post(client, POSTMARK_URL, body)

    assert response.status_code in (200, 400)
    assert hold_of("ann@example.org") == [False]


def test_malformed_mailgun_json_is_refused_without_a_server_error(client):
    response = post(client, MAILGUN_URL, "{not json")

    assert response.status_code == 400


def test_a_bounce_for_a_bad_address_value_is_logged_not_a_server_error(client):
    ContactFactory(emails=["ann@example.org"])
    payload = {**postmark_bounce("ann@example.org"), "Email": ["ann@example.org"]}

    assert post(client, POSTMARK_URL, payload).status_code == 200
    assert hold_of("ann@example.org") == [False]


def test_a_database_error_is_a_server_error_so_the_esp_retries(client, monkeypatch):
    ContactFactory(emails=["ann@example.org"])

    def broken(*args, **kwargs):
        raise DatabaseError("database is locked")

    monkeypatch.setattr("crm_core.signals.handle_tracking_event", broken)

    response = post(client, POSTMARK_URL, postmark_bounce("ann@example.org"))

    assert response.status_code == 500
    assert hold_of("ann@example.org") == [False]
