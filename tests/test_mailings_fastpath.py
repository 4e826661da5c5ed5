"""Mailings through Django's SMTP backend take a fast path; what arrives is the same message.

The fast path (``crm_core.services.mailings``) writes each message's bytes
itself and speaks SMTP to the server directly. These tests send through a
real SMTP server (the aiosmtpd sink of ``tests/test_mailings_delivery.py``)
and compare what arrived with the message ``build_email`` makes with
Django's ``EmailMultiAlternatives``.
"""

import email
import email.policy

import pytest
from freezegun import freeze_time

from crm_core.models import Mailing, RecipientStatus
from crm_core.services import mailings as service
from crm_core.services.groups import add_to_group
from tests import test_mailings_delivery
from tests.factories import ContactFactory, GroupFactory

sink = test_mailings_delivery.sink  # the aiosmtpd sink fixture

LONG_LINE = "Zoë " * 300  # 1,200 characters on one line: over SMTP's 998
BODY_TEXT = (
    "Grüße, {{ first_name }}!\n"
    ".A line starting with a dot\n"
    "..and one with two\n"
    "\n"
    f"{LONG_LINE}\n"
    "Stop: {{ unsubscribe_url }}\n"
)
BODY_HTML = (
    "<p>Grüße, {{ first_name }} &amp; co</p>\n"
    ".<p>a dot first</p>\n"
    "<a href='{{ unsubscribe_url }}'>Stop</a>\n"
)
ASCII_TEXT = "Hello {{ first_name }},\n.\nA line with only a dot, above.\n"
ASCII_HTML = "<p>Hello {{ first_name }}</p>\n"


def make_mailing(subject, body_html, body_text, **fields):
    group = GroupFactory()
    contact = ContactFactory(first_name="Zoë", last_name="Ng", emails=["zoe@example.org"])
    add_to_group(contact, group)
    mailing = Mailing.objects.create(
        name="Fast",
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        from_email="Club News <news@example.org>",
        **fields,
    )
    mailing.include_groups.set([group])
    return mailing, contact


def django_message(mailing, contact):
    """The message Django's backend would have sent, parsed as a mail client would."""
    recipient = mailing.recipients.get()
    message = service.build_email(
        mailing,
        service.render_for_contact(mailing, contact),
        recipient.email,
        message_id=service._message_id(recipient),
    ).message()
    return email.message_from_bytes(message.as_bytes(linesep="\r\n"), policy=email.policy.default)


def send_through_sink(sink, mailing, contact):
    service.send_mailing(mailing)
    with freeze_time("2026-12-04 10:00:00"):
        service.send_pending(mailing, batch_size=10)
        expected = django_message(mailing, contact)
    (received,) = sink.to("zoe@example.org")
    return received, expected


def parts(message):
    return [
        (part.get_content_type(), part.get_content_charset(), lines(part.get_content()))
        for part in message.iter_parts()
    ]


def folded(value):
    # Folding whitespace is not part of a header's value.
    return None if value is None else " ".join(str(value).split())


def lines(text):
    # On the wire every line ends in CRLF, whatever the template had.
    return text.replace("\r\n", "\n")


HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Precedence",
    "Auto-Submitted",
]


@pytest.mark.django_db
def test_a_non_ascii_message_with_a_long_line_arrives_as_django_would_send_it(sink):
    mailing, contact = make_mailing(
        "Neuigkeiten für {{ first_name }} – Herbst",
        BODY_HTML,
        BODY_TEXT,
        reply_to="desk@example.org",
    )

    received, expected = send_through_sink(sink, mailing, contact)

    assert received.get_content_type() == "multipart/alternative"
    for name in HEADERS:
        assert folded(received[name]) == folded(expected[name]), name
    assert received["Subject"] == "Neuigkeiten für Zoë – Herbst"
    assert received["Reply-To"] == "desk@example.org"
    assert parts(received) == parts(expected)
    text = lines(received.get_body(("plain",)).get_content())
    assert ".A line starting with a dot\n..and one with two\n" in text
    assert LONG_LINE in text
    assert "&amp; co" in received.get_body(("html",)).get_content()
    # No raw line over SMTP's limit: the long one was encoded.
    assert all(len(line) <= 998 for line in received.as_bytes().split(b"\n"))


@pytest.mark.django_db
def test_an_ascii_message_arrives_as_django_would_send_it(sink):
    mailing, contact = make_mailing("Hello {{ first_name }}", ASCII_HTML, ASCII_TEXT)

    received, expected = send_through_sink(sink, mailing, contact)

    for name in HEADERS:
        assert folded(received[name]) == folded(expected[name]), name
    assert received["Reply-To"] is None
    assert parts(received) == parts(expected)
    assert lines(received.get_body(("plain",)).get_content()) == (
        "Hello Zoë,\n.\nA line with only a dot, above.\n"
    )


@pytest.mark.django_db
def test_a_header_with_a_line_break_fails_that_recipient_without_sending(sink):
    mailing, contact = make_mailing("Hello", ASCII_HTML, ASCII_TEXT)
    service.send_mailing(mailing)
    # An address with a line break would add a header of its own.
    mailing.recipients.update(email="zoe@example.org\nBcc: all@example.org")

    service.send_pending(mailing, batch_size=10)

    recipient = mailing.recipients.get()
    assert recipient.status == RecipientStatus.FAILED
    assert "newline" in recipient.error
    assert sink.messages == []


class RefusingSink:
    """Answers the end of DATA for ``refused`` with ``reply``, accepts everyone else."""

    def __init__(self, sink, refused, reply):
        self.accept, self.refused, self.reply = sink.handle_DATA, refused, reply

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.refused in envelope.rcpt_tos:
            return self.reply
        return await self.accept(server, session, envelope)


def audience_of_three(sink, monkeypatch, refused, reply):
    group = GroupFactory()
    for index in range(3):
        add_to_group(ContactFactory(emails=[f"r{index}@example.org"]), group)
    mailing = Mailing.objects.create(
        name="Refused", subject="Hi", body_html="<p>Hi</p>", from_email="news@example.org"
    )
    mailing.include_groups.set([group])
    service.send_mailing(mailing)
    refusing = RefusingSink(sink, refused, reply)
    monkeypatch.setattr(sink, "handle_DATA", refusing.handle_DATA)
    return mailing


@pytest.mark.django_db
def test_a_message_refused_for_good_at_the_end_of_data_is_failed_not_sent(sink, monkeypatch):
    mailing = audience_of_three(sink, monkeypatch, "r1@example.org", "554 Content rejected")

    service.send_pending(mailing, batch_size=10)

    statuses = dict(mailing.recipients.values_list("email", "status"))
    assert statuses == {
        "r0@example.org": RecipientStatus.SENT,
        "r1@example.org": RecipientStatus.FAILED,
        "r2@example.org": RecipientStatus.SENT,
    }
    assert "Content rejected" in mailing.recipients.get(email="r1@example.org").error
    # The connection stayed usable: the next message went out on it.
    assert sink.count_by_address() == {"r0@example.org": 1, "r2@example.org": 1}
    assert len(sink.sessions) == 1


@pytest.mark.django_db
def test_a_message_deferred_at_the_end_of_data_goes_back_to_pending(sink, monkeypatch):
    mailing = audience_of_three(sink, monkeypatch, "r1@example.org", "451 Try again later")

    with pytest.raises(service.MailingDeliveryInterrupted):
        service.send_pending(mailing, batch_size=10)

    statuses = dict(mailing.recipients.values_list("email", "status"))
    assert statuses == {
        "r0@example.org": RecipientStatus.SENT,
        "r1@example.org": RecipientStatus.PENDING,
        "r2@example.org": RecipientStatus.PENDING,
    }
    assert mailing.recipients.get(email="r1@example.org").attempts == 1
    assert sink.count_by_address() == {"r0@example.org": 1}


@pytest.mark.django_db
def test_the_sent_mark_records_when_and_touches_only_a_row_still_ours():
    import uuid

    mailing, _contact = make_mailing("Hi", ASCII_HTML, "")
    group = mailing.include_groups.get()
    add_to_group(ContactFactory(emails=["second@example.org"]), group)
    service.send_mailing(mailing)
    first, second = service._claim(mailing, 10)

    with freeze_time("2026-12-04 10:00:00"):
        service._finish(first, RecipientStatus.SENT)
    # Another worker took the second row again (its claim timed out): not ours to settle.
    mailing.recipients.filter(pk=second.pk).update(claim_token=uuid.uuid4())
    service._finish(second, RecipientStatus.FAILED, "too late")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.error) == (RecipientStatus.SENT, "")
    assert first.sent_at.isoformat() == "2026-12-04T10:00:00+00:00"
    assert (second.status, second.error, second.sent_at) == (RecipientStatus.SENDING, "", None)


def five_readers():
    mailing, _contact = make_mailing("Hi {{ first_name }}", ASCII_HTML, "")
    group = mailing.include_groups.get()
    for number in range(4):
        add_to_group(ContactFactory(emails=[f"reader{number}@example.org"]), group)
    service.send_mailing(mailing)
    return mailing


@pytest.mark.django_db(transaction=True)
def test_each_accepted_message_is_recorded_before_the_next_can_be_accepted(sink, monkeypatch):
    # Outside a transaction (a worker) PostgreSQL gets the marks without our
    # waiting for each reply; the promise must hold all the same.
    if service.db_connection.vendor == "postgresql":
        assert service._SentMarks().pgconn is not None
    mailing = five_readers()
    recorded_at_final_line, send = [], test_mailings_delivery.smtplib.SMTP.send

    def send_and_look(smtp, data):
        if isinstance(data, bytes) and data.endswith(b"\r\n.\r\n"):
            # The server accepts a message only at its final line.
            recorded_at_final_line.append(
                mailing.recipients.filter(status=RecipientStatus.SENT).count()
            )
        send(smtp, data)

    monkeypatch.setattr(test_mailings_delivery.smtplib.SMTP, "send", send_and_look)
    progress = service.send_pending(mailing, batch_size=10)

    assert progress.finished
    assert recorded_at_final_line == [0, 1, 2, 3, 4]
    assert len(sink.messages) == 5
    sent = mailing.recipients.filter(status=RecipientStatus.SENT, sent_at__isnull=False)
    assert sent.count() == 5
    # Each message was made (most of them while the server read the one
    # before) for the recipient it went to.
    for recipient in sent.select_related("contact"):
        (message,) = sink.to(recipient.email)
        assert message["Subject"] == f"Hi {recipient.contact.first_name}"
        assert message["Message-ID"] == service._message_id(recipient)


@pytest.mark.django_db(transaction=True)
def test_a_worker_dying_between_the_servers_250_and_its_mark_resends_only_that_message(
    sink, settings, monkeypatch
):
    mailing = five_readers()
    with monkeypatch.context() as patch:
        test_mailings_delivery.die_after_accepting(patch, die_at=3)
        with pytest.raises(test_mailings_delivery.WorkerKilled):
            service.send_pending(mailing, batch_size=10)
    statuses = list(mailing.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["sent", "sent", "sending", "sending", "sending"]
    settings.CRM = {**settings.CRM, "MAILING_CLAIM_TIMEOUT": 0}

    assert service.send_pending(mailing, batch_size=10).finished

    counts = sorted(sink.count_by_address().values())
    assert counts == [1, 1, 1, 1, 2]
    assert mailing.recipients.filter(status=RecipientStatus.SENT).count() == 5


@pytest.mark.django_db
def test_a_personal_link_is_signed_only_for_a_mailing_that_uses_it(sink, settings, monkeypatch):
    from urllib.parse import parse_qs, urlsplit

    from crm_core.links import read_contact_token

    settings.CRM = {**settings.CRM, "PERSONAL_LINK_PAGES": {"renew": "/join/"}}
    purposes, make_token = [], service.make_contact_token

    def counting(contact, purpose):
        purposes.append(purpose.split("-")[0])
        return make_token(contact, purpose)

    monkeypatch.setattr(service, "make_contact_token", counting)
    with_link, contact = make_mailing("Hi", "<a href='{{ renew_url }}'>Renew</a>", "")
    service.send_mailing(with_link)
    service.send_pending(with_link, batch_size=10)
    without_link = Mailing.objects.create(
        name="Plain", subject="Hi", body_html=ASCII_HTML, from_email="news@example.org"
    )
    without_link.include_groups.set(with_link.include_groups.all())
    service.send_mailing(without_link)
    purposes.clear()
    service.send_pending(without_link, batch_size=10)

    assert purposes == ["unsubscribe"]
    first, _second = sink.to("zoe@example.org")
    html = first.get_body(("html",)).get_content()
    link = html.split("href='")[1].split("'")[0].replace("&amp;", "&")
    assert link.startswith(service.site_url("/join/?"))
    token = parse_qs(urlsplit(link).query)[service.FORM_LINK_PARAMETER][0]
    assert read_contact_token(token, service.FORM_LINK_PURPOSE) == contact
