"""B8: a mailing to 10,000 recipients through a local SMTP sink (PostgreSQL).

The sink is an aiosmtpd server in a process of its own, on 127.0.0.1, that
keeps one line per message received (recipient and Message-ID) and throws
the bodies away.

- **B8 send rate**: a mailing (subject and bodies with tokens, an
  unsubscribe link per recipient) to a group of 10,000 contacts with granted
  email consent, sent by ``crm_core.services.mailings.send_pending`` through
  Django's SMTP backend (``MAILING_RATE_LIMIT`` 0), against a plain
  ``smtplib.SMTP`` loop sending the same messages, rendered beforehand to
  bytes with the same ``build_email``, over one connection. Rounds alternate
  who goes first; messages per second, ratio of the medians, target >= 0.7.
  Building the recipients is timed apart and not in the rate.
- **B8b kill**: a worker process sending the mailing is killed with SIGKILL
  when the sink has received 30 % of it; another worker (claim timeout 0, so
  the dead worker's claimed rows are taken again) is killed at 60 %, a third
  at 85 %, and a last one sends the rest. Each recipient's messages are then
  counted at the sink: target 0 missing and 0 duplicates. The service
  promises at most one duplicate per killed worker (the message the server
  had accepted when the worker died), so this target can fail by design;
  the figure says how often it does.

    .venv/bin/python -m bench.run b8

Knobs: ``BENCH_B8_RECIPIENTS`` (10,000), ``BENCH_B8_ROUNDS`` (3),
``BENCH_B8_BATCH_SIZE`` (500), ``BENCH_B8_KILLS`` ("0.3,0.6,0.85"),
``BENCH_B8_PROFILE=1`` (prints a cProfile of one sending run).
"""

import os
import re
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/crm_bench_mail"
os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_URL)

from bench.contact_data import (  # noqa: E402 - reads BENCH_DATABASE_URL at call time
    configure_django,
    create_database_if_missing,
    migrate,
)

RECIPIENTS = int(os.environ.get("BENCH_B8_RECIPIENTS", "10000"))
ROUNDS = int(os.environ.get("BENCH_B8_ROUNDS", "3"))
BATCH_SIZE = int(os.environ.get("BENCH_B8_BATCH_SIZE", "500"))
KILL_POINTS = [float(x) for x in os.environ.get("BENCH_B8_KILLS", "0.3,0.6,0.85").split(",")]
PROFILE = os.environ.get("BENCH_B8_PROFILE", "") not in {"", "0"}
RATIO_TARGET = 0.7
KILL_OFFSET = 7
GROUP_SLUG = "bench-b8"
PURPOSE = "bench-news"
EMAIL_DOMAIN = "b8.example.org"
ROOT = Path(__file__).resolve().parent.parent
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


# -- the sink (a process of its own) -------------------------------------------------------


class RecordingSink:
    """aiosmtpd handler: one "recipient<TAB>Message-ID" line per message; bodies dropped."""

    def __init__(self, log):
        self.log = log

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        content = envelope.content
        head = content[: content.find(b"\r\n\r\n")]
        found = MESSAGE_ID.search(head)
        message_id = found.group(1).decode("ascii", "replace") if found else "-"
        for recipient in envelope.rcpt_tos:
            self.log.write(f"{recipient}\t{message_id}\n")
        # Written before "250 OK" goes back: what the log holds, the server accepted.
        self.log.flush()
        return "250 OK"


def serve_sink(port, log_path):
    from aiosmtpd.controller import Controller

    with open(log_path, "a", encoding="utf-8") as log:
        controller = Controller(RecordingSink(log), hostname="127.0.0.1", port=port)
        controller.start()
        print("ready", flush=True)
        stop = []
        signal.signal(signal.SIGTERM, lambda *_args: stop.append(1))
        while not stop:
            time.sleep(0.2)
        controller.stop()


class Sink:
    """The sink process, seen from the benchmark: start, count, read, stop."""

    def __init__(self):
        self.port = free_port()
        handle, self.log_path = tempfile.mkstemp(prefix="b8-sink-", suffix=".log")
        os.close(handle)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.b8_mailings", "--sink", str(self.port), self.log_path],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        self.reader = open(self.log_path, "rb")  # noqa: SIM115 - closed in stop()
        self.counted = 0

    def count(self):
        """Messages received so far (reads only what was added since the last call)."""
        while chunk := self.reader.read(1 << 16):
            self.counted += chunk.count(b"\n")
        return self.counted

    def lines(self):
        with open(self.log_path, encoding="utf-8") as log:
            return [line.rstrip("\n").split("\t") for line in log]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        self.reader.close()
        os.unlink(self.log_path)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Django side ---------------------------------------------------------------------------


def use_sink(port, *, claim_timeout=None):
    """Point Django's SMTP backend at the sink; no rate limit."""
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    crm = {**getattr(settings, "CRM", {}), "MAILING_RATE_LIMIT": 0}
    crm["MAILING_BATCH_SIZE"] = BATCH_SIZE
    if claim_timeout is not None:
        crm["MAILING_CLAIM_TIMEOUT"] = claim_timeout
    settings.CRM = crm


def ensure_audience():
    """A group of RECIPIENTS contacts, one address each, email consent granted (made once)."""
    from django.db import transaction

    from crm_core.models import (
        Channel,
        ConsentRecord,
        Contact,
        ContactEmail,
        Group,
        GroupMembership,
    )
    from crm_core.names import contact_names

    group, _created = Group.objects.get_or_create(slug=GROUP_SLUG, defaults={"name": "Bench B8"})
    if GroupMembership.objects.filter(group=group).count() == RECIPIENTS:
        return group
    # Contacts are kept from run to run (consent records cannot be deleted);
    # the missing ones are added and the group holds exactly the first RECIPIENTS.
    wanted = {f"reader{n}@{EMAIL_DOMAIN}": n for n in range(RECIPIENTS)}
    with transaction.atomic():
        existing = dict(
            ContactEmail.objects.filter(email_normalized__endswith=f"@{EMAIL_DOMAIN}").values_list(
                "email_normalized", "contact_id"
            )
        )
        contacts, addresses = [], []
        for address, n in wanted.items():
            if address in existing:
                continue
            first, last = f"Reader{n}", "Bench"
            display, sort, key = contact_names(kind="individual", first_name=first, last_name=last)
            contacts.append(
                Contact(
                    kind="individual",
                    first_name=first,
                    last_name=last,
                    display_name=display,
                    sort_name=sort,
                    name_key=key,
                )
            )
            addresses.append(address)
        Contact.objects.bulk_create(contacts, batch_size=2000)
        ContactEmail.objects.bulk_create(
            [
                ContactEmail(contact=c, email=a, email_normalized=a, is_primary=True)
                for c, a in zip(contacts, addresses, strict=True)
            ],
            batch_size=2000,
        )
        ConsentRecord.objects.bulk_create(
            [
                ConsentRecord(
                    contact=c,
                    purpose=PURPOSE,
                    channel=Channel.EMAIL,
                    granted=True,
                    source="bench",
                    wording="Send me the bench newsletter.",
                )
                for c in contacts
            ],
            batch_size=2000,
        )
        existing.update({a: c.pk for c, a in zip(contacts, addresses, strict=True)})
        GroupMembership.objects.filter(group=group).delete()
        GroupMembership.objects.bulk_create(
            [GroupMembership(contact_id=existing[a], group=group) for a in wanted],
            batch_size=2000,
        )
    return group


def new_mailing(group, name):
    """A mailing to the group, built and marked sending (``send_mailing``); returns it."""
    from crm_core.models import Mailing
    from crm_core.services.mailings import send_mailing

    mailing = Mailing.objects.create(
        name=name,
        subject="{{ first_name }}, the autumn news from the trust",
        body_html=(
            "<h1>Hello {{ first_name }} {{ last_name }}</h1>"
            "<p>Thank you for reading, {{ display_name }}. The river path reopens on"
            " Saturday &amp; the café is back.</p>"
            "<ul><li>Volunteers' day: 12 October</li><li>Quiz night: 19 October</li></ul>"
            "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"
        ),
        from_email="Riverside Trust <news@example.org>",
        consent_purpose=PURPOSE,
    )
    mailing.include_groups.set([group])
    started = time.perf_counter()
    pending = send_mailing(mailing)
    return mailing, pending, time.perf_counter() - started


def delete_mailings():
    from django.db import connection

    from crm_core.models import Mailing, MailingRecipient

    Mailing.objects.filter(name__startswith="bench-b8").delete()
    # Earlier runs leave tens of thousands of dead recipient rows behind.
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {MailingRecipient._meta.db_table}")


def rendered_messages(mailing):
    """(from, [to], bytes) of each recipient's message, as our path would send it."""
    from crm_core.services.mailings import build_email, render_for_contact

    domain = "127.0.0.1"
    messages = []
    for recipient in mailing.recipients.select_related("contact").order_by("id"):
        rendered = render_for_contact(mailing, recipient.contact)
        message = build_email(
            mailing,
            rendered,
            recipient.email,
            message_id=f"<crm-mailing-{mailing.pk}-{recipient.pk}@{domain}>",
        )
        # What Django's SMTP backend hands to smtplib.
        messages.append(
            (message.from_email, message.recipients(), message.message().as_bytes(linesep="\r\n"))
        )
    return messages


def send_ours(mailing):
    from crm_core.services.mailings import send_pending

    started = time.perf_counter()
    progress = send_pending(mailing, time_budget=3600, batch_size=BATCH_SIZE)
    return progress, time.perf_counter() - started


def send_raw(messages, port):
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port)
    try:
        for from_email, recipients, body in messages:
            smtp.sendmail(from_email, recipients, body)
    finally:
        smtp.quit()
    return time.perf_counter() - started


def measure_rate(group):
    from crm_core.services.mailings import cancel_mailing, send_batch

    rounds, build_seconds, problems = [], [], []
    raw_mailing, _pending, _seconds = new_mailing(group, "bench-b8 raw")
    messages = rendered_messages(raw_mailing)
    sink = Sink()
    use_sink(sink.port)
    try:
        # Warm-up: a few hundred of each, so connections and caches are ready.
        send_raw(messages[:300], sink.port)
        warm_up, _pending, _seconds = new_mailing(group, "bench-b8 warm-up")
        send_batch(warm_up, 300)
        cancel_mailing(warm_up)
        for number in range(ROUNDS):
            order = ["ours", "raw"] if number % 2 == 0 else ["raw", "ours"]
            result = {}
            for who in order:
                if who == "raw":
                    before = sink.count()
                    seconds = send_raw(messages, sink.port)
                    received = sink.count() - before
                else:
                    mailing, pending, built = new_mailing(group, f"bench-b8 round {number}")
                    build_seconds.append(built)
                    before = sink.count()
                    progress, seconds = send_ours(mailing)
                    received = sink.count() - before
                    mailing.refresh_from_db()
                    if not progress.finished or mailing.sent_count != pending:
                        problems.append(f"round {number}: sent {mailing.sent_count} of {pending}")
                if received != len(messages):
                    problems.append(f"round {number} {who}: sink got {received}")
                result[who] = received / seconds
            rounds.append(result)
    finally:
        sink.stop()
    return rounds, build_seconds, problems


def profile_ours(group):
    import cProfile
    import io
    import pstats

    sink = Sink()
    use_sink(sink.port)
    try:
        mailing, _pending, _built = new_mailing(group, "bench-b8 profile")
        profiler = cProfile.Profile()
        profiler.enable()
        send_ours(mailing)
        profiler.disable()
    finally:
        sink.stop()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
    print(out.getvalue())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
    print(out.getvalue())


# -- the kill test -------------------------------------------------------------------------


def run_worker(mailing_id, port, claim_timeout):
    """Child process: send the mailing's pending recipients until none is left."""
    configure_django()
    use_sink(port, claim_timeout=claim_timeout)
    from crm_core.models import Mailing
    from crm_core.services.mailings import send_pending

    send_pending(Mailing.objects.get(pk=mailing_id), time_budget=3600, batch_size=BATCH_SIZE)


def start_worker(mailing_id, port, claim_timeout):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.b8_mailings",
            "--worker",
            str(mailing_id),
            str(port),
            str(claim_timeout),
        ],
        cwd=ROOT,
    )


def kill_test(group, signum):
    """Stop workers with ``signum`` mid-mailing, then count what the sink got per recipient."""
    from crm_core.models import MailingStatus

    mailing, pending, _built = new_mailing(group, "bench-b8 kill")
    expected = set(mailing.recipients.values_list("email", flat=True))
    sink = Sink()
    kills = []
    try:
        for number, point in enumerate(KILL_POINTS):
            # The first worker uses the default claim timeout; the ones after
            # it take the dead workers' claimed rows again at once.
            worker = start_worker(mailing.pk, sink.port, 900 if number == 0 else 0)
            # A few messages into a batch: between batches nothing is in flight,
            # and a kill there could not show the duplicate the service allows.
            target = int(point * pending) + KILL_OFFSET
            while sink.count() < target and worker.poll() is None:
                time.sleep(0.005)
            if worker.poll() is not None:
                kills.append({"at": point, "killed": False, "received": sink.count()})
                continue
            worker.send_signal(signum)
            exit_code = worker.wait()
            kills.append(
                {"at": point, "killed": True, "received": sink.count(), "exit_code": exit_code}
            )
        last = start_worker(mailing.pk, sink.port, 0)
        last.wait(timeout=1800)
        lines = sink.lines()
    finally:
        sink.stop()
    counts, first_line = {}, {}
    message_ids = {}
    for index, (recipient, message_id) in enumerate(lines):
        counts[recipient] = counts.get(recipient, 0) + 1
        first_line.setdefault(recipient, index)
        message_ids.setdefault(recipient, set()).add(message_id)
    missing = sorted(expected - set(counts))
    duplicated = {r: n for r, n in counts.items() if n > 1}
    # Which kill each duplicate belongs to: the kill that came after its first copy.
    for kill in kills:
        kill["duplicates"] = 0
    for recipient in duplicated:
        for kill in kills:
            if kill["killed"] and first_line[recipient] < kill["received"]:
                kill["duplicates"] += 1
                break
    mailing.refresh_from_db()
    return {
        "recipients": pending,
        "messages_received": len(lines),
        "missing": len(missing),
        "duplicates": sum(n - 1 for n in duplicated.values()),
        "duplicated_recipients": sorted(duplicated)[:10],
        "duplicates_share_message_id": all(len(message_ids[r]) == 1 for r in duplicated),
        "unexpected": len(set(counts) - expected),
        "kills": kills,
        "mailing_status": mailing.status,
        "mailing_finished": mailing.status == MailingStatus.SENT,
        "sent_count": mailing.sent_count,
    }


# -- the benchmark -------------------------------------------------------------------------


def run():
    create_database_if_missing()
    configure_django()
    migrate()
    started = time.perf_counter()
    delete_mailings()
    group = ensure_audience()
    setup_seconds = time.perf_counter() - started
    if PROFILE:
        profile_ours(group)
    rounds, build_seconds, problems = measure_rate(group)
    ours = statistics.median(r["ours"] for r in rounds)
    raw = statistics.median(r["raw"] for r in rounds)
    ratio = ours / raw
    stopped = kill_test(group, signal.SIGTERM)
    kill = kill_test(group, signal.SIGKILL)
    delete_mailings()
    rate_details = {
        "recipients": RECIPIENTS,
        "batch_size": BATCH_SIZE,
        "rounds": [{k: round(v, 1) for k, v in r.items()} for r in rounds],
        "ours_per_second": round(ours, 1),
        "raw_smtplib_per_second": round(raw, 1),
        "build_recipients_seconds": [round(s, 2) for s in build_seconds],
        "setup_seconds": round(setup_seconds, 1),
        "problems": problems,
    }
    stop_passed = (
        stopped["duplicates"] == 0 and stopped["missing"] == 0 and stopped["mailing_finished"]
    )
    # SIGKILL: nothing can run between the server's "250" and the "sent" mark,
    # so the floor is one duplicate per kill (docs/communications.md).
    kill_passed = (
        kill["missing"] == 0
        and kill["mailing_finished"]
        and all(k["duplicates"] <= 1 for k in kill["kills"])
    )
    return [
        {
            "id": "B8",
            "name": "mailing send rate / raw smtplib loop",
            "figure": f"{ratio:.2f} ({ours:.0f}/s vs {raw:.0f}/s)",
            "target": f">= {RATIO_TARGET}",
            "passed": ratio >= RATIO_TARGET and not problems,
            "details": rate_details,
        },
        {
            "id": "B8b",
            "name": f"mailing after {_killed(stopped)} SIGTERMs: duplicates, missing",
            "figure": f"{stopped['duplicates']} duplicates, {stopped['missing']} missing",
            "target": "0 duplicates, 0 missing",
            "passed": stop_passed,
            "details": stopped,
        },
        {
            "id": "B8c",
            "name": f"mailing after {_killed(kill)} SIGKILLs: duplicates, missing",
            "figure": f"{kill['duplicates']} duplicates, {kill['missing']} missing",
            "target": "0 missing, at most 1 duplicate per kill",
            "passed": kill_passed,
            "details": kill,
        },
    ]


def _killed(result):
    return sum(1 for k in result["kills"] if k["killed"])


if __name__ == "__main__":
    if sys.argv[1] == "--sink":
        serve_sink(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "--worker":
        run_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:  # pragma: no cover
        raise SystemExit("usage: --sink PORT LOG | --worker MAILING PORT CLAIM_TIMEOUT")
