"""Mailings through a real SMTP server (aiosmtpd), including workers that die.

The sink records every message the server accepted. The promise tested
here (see ``crm_core.services.mailings``): a worker that dies before the
server accepted a message loses nothing and sends nothing twice once a
later run picks its claimed rows up; the single message in flight when it
died after the server accepted it goes out a second time, with the same
Message-ID.

Django's SMTP backend takes the service's fast path (it speaks SMTP to the
backend's connection itself), so the deaths are injected at the SMTP
socket and at the "sent" mark.
"""

import asyncio
import email
import email.policy
import os
import signal
import smtplib
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import connection

from crm_core.models import ConsentRecord, Mailing, MailingStatus, RecipientStatus
from crm_core.services import mailings as service
from crm_core.services.groups import add_to_group
from crm_core.tasks import send_mailing_task
from tests.factories import ContactFactory, GroupFactory


class WorkerKilled(BaseException):  # noqa: N818 - stands for SIGKILL, not an error
    """Raised by the test backends to stop a worker dead, like a kill signal.

    A BaseException, so no ``except Exception`` in the code under test runs:
    the worker leaves its rows exactly as a killed process would.
    """


class Sink:
    def __init__(self):
        self.messages = []
        self.sessions = []  # one per SMTP connection
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))
            if not any(known is session for known in self.sessions):
                self.sessions.append(session)
        return "250 OK"

    def to(self, address):
        return [m for rcpts, m in self.messages if address in rcpts]

    def count_by_address(self):
        counts = {}
        for rcpts, _message in self.messages:
            for address in rcpts:
                counts[address] = counts.get(address, 0) + 1
        return counts


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sink(settings):
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.CRM = {**getattr(settings, "CRM", {}), "MAILING_RATE_LIMIT": 0}
    yield handler
    controller.stop()


def die_before_accepting(monkeypatch, die_at):
    """Kill the worker in the DATA of message ``die_at`` (1-based), before its final "." line.

    The body went out, the end of the DATA did not: the server has not accepted it.
    """
    bodies, send = [], smtplib.SMTP.send

    def dying(smtp, data):
        if isinstance(data, bytes) and data.endswith(b"\r\n.\r\n"):
            bodies.append(data)
            if len(bodies) == die_at:
                send(smtp, data[:-3])
                raise WorkerKilled
        send(smtp, data)

    monkeypatch.setattr(smtplib.SMTP, "send", dying)


def die_after_accepting(monkeypatch, die_at):
    """Kill the worker once the server accepted message ``die_at``, before it is marked sent."""
    marks, sent = [], service._SentMarks.sent

    def dying(self, recipient):
        marks.append(recipient.pk)
        if len(marks) == die_at:
            raise WorkerKilled
        sent(self, recipient)

    monkeypatch.setattr(service._SentMarks, "sent", dying)


def make_audience(count):
    group = GroupFactory()
    addresses = []
    for index in range(count):
        contact = ContactFactory(first_name=f"Person{index}", emails=[f"p{index}@example.org"])
        add_to_group(contact, group)
        addresses.append(f"p{index}@example.org")
    mailing = Mailing.objects.create(
        name="Autumn news",
        subject="Autumn news for {{ first_name }}",
        body_html="<p>Hello {{ first_name }} &amp; all</p><a href='{{ unsubscribe_url }}'>x</a>",
        from_email="news@example.org",
    )
    mailing.include_groups.set([group])
    return mailing, addresses


@pytest.mark.django_db
def test_a_mailing_arrives_as_text_and_html_with_one_click_unsubscribe(sink, client):
    mailing, _addresses = make_audience(2)
    service.send_mailing(mailing)

    send_mailing_task.enqueue(mailing.pk)

    assert sink.count_by_address() == {"p0@example.org": 1, "p1@example.org": 1}
    assert len(sink.sessions) == 1  # one SMTP connection for the batch
    (message,) = sink.to("p0@example.org")
    assert message["Subject"] == "Autumn news for Person0"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hello Person0 & all" in text
    assert "<p>Hello Person0 &amp; all</p>" in html
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip().strip("<>")
    assert f"href='{link}'" in html
    # What a mail client does with the header: a bare POST.
    response = client.post(
        link.removeprefix("http://testserver"), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert ConsentRecord.objects.get().granted is False
    mailing.refresh_from_db()
    assert (mailing.status, mailing.sent_count) == (MailingStatus.SENT, 2)


@pytest.mark.django_db
def test_a_worker_killed_mid_batch_then_restarted_sends_everyone_exactly_once(
    sink, settings, monkeypatch
):
    mailing, addresses = make_audience(7)
    service.send_mailing(mailing)
    with monkeypatch.context() as patch:
        die_before_accepting(patch, die_at=4)
        with pytest.raises(WorkerKilled):
            service.send_pending(mailing, batch_size=5)

    assert sink.count_by_address() == dict.fromkeys(addresses[:3], 1)
    statuses = list(mailing.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["sent"] * 3 + ["sending"] * 2 + ["pending"] * 2

    # A restart within the claim timeout leaves the dead worker's rows alone
    # (it might only be slow) and sends the rest.
    progress = service.send_pending(mailing, batch_size=5)
    assert (progress.handled, progress.finished) == (2, False)

    # Once the claim is stale, the next run sends the dead worker's rows.
    settings.CRM = {**settings.CRM, "MAILING_CLAIM_TIMEOUT": 0}
    progress = service.send_pending(mailing, batch_size=5)

    assert progress.finished
    assert sink.count_by_address() == dict.fromkeys(addresses, 1)
    mailing.refresh_from_db()
    assert (mailing.status, mailing.sent_count) == (MailingStatus.SENT, 7)


@pytest.mark.django_db
def test_a_worker_killed_after_the_server_accepted_resends_only_that_message(
    sink, settings, monkeypatch
):
    mailing, addresses = make_audience(5)
    service.send_mailing(mailing)
    with monkeypatch.context() as patch:
        die_after_accepting(patch, die_at=2)
        with pytest.raises(WorkerKilled):
            service.send_pending(mailing, batch_size=5)
    settings.CRM = {**settings.CRM, "MAILING_CLAIM_TIMEOUT": 0}
    service.send_pending(mailing, batch_size=5)

    counts = sink.count_by_address()
    assert counts == {address: 2 if address == "p1@example.org" else 1 for address in addresses}
    first, second = sink.to("p1@example.org")
    assert first["Message-ID"] == second["Message-ID"]
    assert mailing.recipients.filter(status=RecipientStatus.SENT).count() == 5


class SlowBackend(SMTPBackend):
    def open(self):
        time.sleep(0.01)
        return super().open()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_senders_never_send_the_same_recipient(sink, settings):
    mailing, addresses = make_audience(60)
    service.send_mailing(mailing)
    settings.EMAIL_BACKEND = f"{__name__}.SlowBackend"
    barrier = threading.Barrier(2)
    handled, errors = [], []

    def worker():
        try:
            barrier.wait()
            handled.append(service.send_pending(mailing, batch_size=5).handled)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sink.count_by_address() == dict.fromkeys(addresses, 1)
    assert sorted(handled) and sum(handled) == 60
    if connection.vendor == "postgresql":
        # SKIP LOCKED: neither waited for the other, both did part of the work.
        assert min(handled) > 0
    mailing.refresh_from_db()
    assert (mailing.status, mailing.sent_count) == (MailingStatus.SENT, 60)


@pytest.mark.django_db
def test_the_task_looks_again_after_the_claim_timeout_when_a_dead_worker_holds_rows(
    sink, settings, monkeypatch
):
    mailing, _addresses = make_audience(3)
    service.send_mailing(mailing)
    with monkeypatch.context() as patch:
        die_before_accepting(patch, die_at=2)
        with pytest.raises(WorkerKilled):
            service.send_pending(mailing, batch_size=5)
    later = []
    monkeypatch.setattr(
        "crm_core.tasks._enqueue_mailing_again",
        lambda mailing_id, delay=0: later.append((mailing_id, delay)),
    )

    send_mailing_task.enqueue(mailing.pk)

    assert later == [(mailing.pk, settings.CRM.get("MAILING_CLAIM_TIMEOUT", 900) + 1)]
    assert len(sink.messages) == 1


def signal_after(sink, monkeypatch, count, signum):
    """The sink sends ``signum`` to this process while message ``count`` awaits its "250"."""
    handle = sink.handle_DATA

    async def handle_and_signal(server, session, envelope):
        reply = await handle(server, session, envelope)
        if len(sink.messages) == count:
            os.kill(os.getpid(), signum)
        return reply

    monkeypatch.setattr(sink, "handle_DATA", handle_and_signal)


def sent_count(mailing):
    return mailing.recipients.filter(status=RecipientStatus.SENT).count()


class PreviousHandler:
    """Stands for the handler a worker had (django-tasks' db_worker sets one)."""

    def __init__(self, mailing, signum=signal.SIGTERM):
        self.mailing, self.signum, self.heard = mailing, signum, []

    def __call__(self, signum, _frame):
        self.heard.append((signum, sent_count(self.mailing)))

    def __enter__(self):
        self.was = signal.signal(self.signum, self)
        return self

    def __exit__(self, *_exc):
        signal.signal(self.signum, self.was)


# Outside a transaction, as a worker runs: on PostgreSQL the marks go out
# without waiting (``_SentMarks``), and a stop must still find them recorded.
@pytest.mark.django_db(transaction=True)
def test_a_worker_told_to_stop_finishes_the_message_in_hand_and_then_passes_the_signal_on(
    sink, monkeypatch
):
    mailing, addresses = make_audience(6)
    service.send_mailing(mailing)
    signal_after(sink, monkeypatch, 3, signal.SIGTERM)

    with PreviousHandler(mailing) as previous:
        progress = service.send_pending(mailing, batch_size=10)
        assert signal.getsignal(signal.SIGTERM) is previous

    # It heard of the signal only once the message in hand was recorded.
    assert previous.heard == [(signal.SIGTERM, 3)]
    assert (progress.stopped_by_signal, progress.out_of_time, progress.finished) == (
        signal.SIGTERM,
        True,
        False,
    )
    statuses = list(mailing.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["sent"] * 3 + ["pending"] * 3  # given back, not left claimed

    assert service.send_pending(mailing, batch_size=10).finished
    assert sink.count_by_address() == dict.fromkeys(addresses, 1)


@pytest.mark.django_db(transaction=True)
def test_a_second_signal_reaches_the_worker_at_once(sink, monkeypatch):
    mailing, _addresses = make_audience(6)
    service.send_mailing(mailing)
    handle = sink.handle_DATA

    async def signal_twice(server, session, envelope):
        reply = await handle(server, session, envelope)
        if len(sink.messages) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            # Apart, or the two would merge into one pending signal.
            await asyncio.sleep(0.3)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.1)
        return reply

    monkeypatch.setattr(sink, "handle_DATA", signal_twice)
    with PreviousHandler(mailing) as previous:
        progress = service.send_pending(mailing, batch_size=10)

    # Both went on before the message in hand was recorded (db_worker's second
    # signal means "stop at once"), and the batch still stopped after it.
    assert previous.heard == [(signal.SIGTERM, 1), (signal.SIGTERM, 1)]
    assert progress.stopped_by_signal == signal.SIGTERM
    assert sent_count(mailing) == 2


@pytest.mark.django_db(transaction=True)
def test_a_stop_signal_is_passed_on_when_the_run_ends_with_an_error(sink, monkeypatch):
    mailing, _addresses = make_audience(4)
    service.send_mailing(mailing)
    handle = sink.handle_DATA

    async def signal_then_defer(server, session, envelope):
        if len(sink.messages) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            return "451 Try again later"
        return await handle(server, session, envelope)

    monkeypatch.setattr(sink, "handle_DATA", signal_then_defer)
    with PreviousHandler(mailing) as previous, pytest.raises(service.MailingDeliveryInterrupted):
        service.send_pending(mailing, batch_size=10)

    assert previous.heard == [(signal.SIGTERM, 1)]
    assert mailing.recipients.filter(status=RecipientStatus.PENDING).count() == 3


@pytest.mark.django_db
def test_the_mailing_task_told_to_stop_enqueues_itself_before_passing_the_signal_on(
    sink, monkeypatch, settings
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    mailing, addresses = make_audience(4)
    service.send_mailing(mailing)
    signal_after(sink, monkeypatch, 2, signal.SIGTERM)
    backend = send_mailing_task.get_backend()
    backend.clear()

    with PreviousHandler(mailing) as previous:
        progress = send_mailing_task.call(mailing.pk)

    assert progress["more"] is True
    assert [result.args for result in backend.results] == [[mailing.pk]]
    assert previous.heard == [(signal.SIGTERM, 2)]
    assert sink.count_by_address() == dict.fromkeys(addresses[:2], 1)
    assert mailing.recipients.filter(status=RecipientStatus.PENDING).count() == 2


@pytest.mark.django_db
def test_ctrl_c_stops_an_inline_mailing_task_without_sending_the_rest_inline(sink, monkeypatch):
    # The immediate backend runs a task where it is enqueued: queueing the
    # rest would send it in the process being stopped.
    mailing, addresses = make_audience(4)
    service.send_mailing(mailing)
    signal_after(sink, monkeypatch, 2, signal.SIGINT)

    # Python's own SIGINT handler raises KeyboardInterrupt, here only once
    # the message in hand is recorded.
    with pytest.raises(KeyboardInterrupt):
        send_mailing_task.enqueue(mailing.pk)

    assert sink.count_by_address() == dict.fromkeys(addresses[:2], 1)
    assert mailing.recipients.filter(status=RecipientStatus.PENDING).count() == 2
    assert mailing.recipients.filter(status=RecipientStatus.SENDING).count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the marks PostgreSQL gets unawaited")
@pytest.mark.django_db(transaction=True)
def test_a_failed_sent_mark_leaves_its_recipient_for_later_and_fails_nobody(sink, monkeypatch):
    mailing, addresses = make_audience(4)
    service.send_mailing(mailing)
    # Every mark fails in PostgreSQL (division by zero), with the six values a mark sends.
    monkeypatch.setattr(
        service,
        "_finish_sql_numbered",
        lambda: b"SELECT 1/0, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text",
    )

    with pytest.raises(service.DatabaseError, match="division by zero"):
        service.send_pending(mailing, batch_size=10)

    # The first message was accepted and could not be recorded: it stays
    # claimed (sent again after the claim timeout); the second, abandoned
    # mid-DATA when that surfaced, goes back with the rest, failed for nobody.
    statuses = list(mailing.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["sending", "pending", "pending", "pending"]
    assert sink.count_by_address() == {addresses[0]: 1}


@pytest.mark.django_db
def test_a_mail_server_that_stops_answering_interrupts_the_batch_instead_of_holding_the_worker(
    sink, settings, monkeypatch
):
    from django.conf import settings as django_settings

    # The example site's own value, which the test settings inherit.
    assert django_settings.EMAIL_TIMEOUT == 60
    settings.EMAIL_TIMEOUT = 0.5
    mailing, addresses = make_audience(3)
    service.send_mailing(mailing)
    handle = sink.handle_DATA

    async def stop_answering(server, session, envelope):
        if len(sink.messages) == 1:
            await asyncio.sleep(3)
        return await handle(server, session, envelope)

    monkeypatch.setattr(sink, "handle_DATA", stop_answering)
    # Without the timeout the server's late "250" would come and all three be sent.
    with pytest.raises(service.MailingDeliveryInterrupted):
        service.send_pending(mailing, batch_size=10)

    statuses = list(mailing.recipients.order_by("id").values_list("status", flat=True))
    assert statuses == ["sent", "pending", "pending"]
