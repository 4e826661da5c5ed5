"""B9: Stripe webhook handling on PostgreSQL, 16 clients.

The site runs in a server process of its own (a WSGI server with a pool of
16 worker threads, each keeping its database connection, as app-server
workers do); the Stripe fake (``crm_payments.providers.stripe_fake``) runs in
the benchmark process, so every webhook really re-fetches its object over
HTTP. Payments are started through ``start_payment`` and paid at the fake;
the events the fake emitted are then posted, signed, by 16 client threads,
each event twice (Stripe delivers at least once) in shuffled order.

Baseline, measured in the same run and interleaved round by round: the same
16 clients post the same bodies to a plain Django view in the same server
process, which reads the JSON body and answers 200 (what a webhook endpoint
that checks and stores nothing costs).

Figures: p99 latency of our endpoint divided by the plain view's p99 (target
<= 2), and duplicated effects (target 0): contributions completed more than
once, completions missing, event ids stored more than once.
"""

import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bench.contact_data import configure_django, create_database_if_missing, migrate
from bench.timing import ms, percentile

CLIENTS = int(os.environ.get("BENCH_B9_CLIENTS", "16"))
PAYMENTS = int(os.environ.get("BENCH_B9_PAYMENTS", "300"))
ROUNDS = int(os.environ.get("BENCH_B9_ROUNDS", "2"))
WORKERS = int(os.environ.get("BENCH_B9_WORKERS", "2"))
NICE = ["nice", "-n", os.environ.get("BENCH_B9_WORKER_NICE", "0")]
RATIO_TARGET = 2
MARK = "bench-b9"
SECRET = "whsec_bench_b9"
API_KEY = "sk_test_bench_b9"
WEBHOOK_PATH = "/crm/payments/stripe/webhook/"
PLAIN_PATH = "/bench/plain-webhook/"
PLAIN_TABLE = "bench_b9_plain_webhook"


# -- the server process -----------------------------------------------------------------


def plain_view(request):
    """The simplest webhook receiver: keep the posted event (one INSERT), answer 200."""
    from django.db import connection
    from django.http import JsonResponse

    event = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PLAIN_TABLE} (event_id, body) VALUES (%s, %s)",  # noqa: S608
            [event["id"], request.body.decode()],
        )
    return JsonResponse({"received": True})


def create_plain_table():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {PLAIN_TABLE} (id bigserial PRIMARY KEY,"
            " event_id text NOT NULL, body text NOT NULL,"
            " received_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute(f"TRUNCATE {PLAIN_TABLE}")


def _urlpatterns():
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    return [
        path("crm/payments/", include("crm_payments.urls")),
        path(PLAIN_PATH.strip("/") + "/", csrf_exempt(plain_view)),
    ]


class PooledWSGIServer(WSGIServer):
    """Requests handled by a fixed pool of threads, so database connections persist."""

    # A real server's backlog: with wsgiref's 5, bursts wait a second for SYN retries.
    request_queue_size = 1024

    def __init__(self, *args, workers, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def process_request(self, request, client_address):
        self.pool.submit(self._handle, request, client_address)

    def _handle(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - like socketserver's own handle_error
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve_site(port, adjust_settings, *, workers=CLIENTS):
    """Child process: the site, with ``adjust_settings(settings)`` applied first,
    served by ``workers`` threads until killed; prints READY once listening."""
    configure_django()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    adjust_settings(settings)
    application = get_wsgi_application()
    server = make_server(
        "127.0.0.1",
        port,
        application,
        server_class=lambda *a, **k: PooledWSGIServer(*a, workers=workers, **k),
        handler_class=QuietHandler,
    )
    print("READY", flush=True)
    server.serve_forever()


def _plain_view_settings(settings):
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False


def serve(port):
    """Child process: the site with the plain view added, until killed."""
    serve_site(port, _plain_view_settings)


def __getattr__(name):
    # ROOT_URLCONF points at this module in the server process.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


# -- the benchmark process ----------------------------------------------------------------


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(fake_url):
    port = free_port()
    env = {
        **os.environ,
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": fake_url,
        "DATABASE_URL": os.environ["DATABASE_URL"],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.b9_webhooks", "--serve", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise RuntimeError(f"the site did not start: {line!r}")
    return process, f"http://127.0.0.1:{port}"


def start_workers(fake_url, count):
    """Task workers (django-tasks-db) that process the stored events."""
    env = {
        **os.environ,
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": fake_url,
        "TASKS_BACKEND": "db",
    }
    return [
        subprocess.Popen(
            [
                *NICE,
                sys.executable,
                "manage.py",
                "db_worker",
                "--queue-name",
                "*",
                "--interval",
                "0.1",
                "--no-startup-delay",
                "--no-reload",
                "-v",
                "0",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def wait_until_processed(event_ids, timeout=600):
    """Seconds until no stored event of ``event_ids`` waits for the worker."""
    from crm_payments.models import WebhookEvent

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not WebhookEvent.objects.filter(event_id__in=event_ids, status="received").exists():
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError("the task workers did not process every event")


def make_paid_payments(fake, count, rng):
    """``count`` pending donations started through Stripe and paid at the fake."""
    from crm_core.models import Contact
    from crm_core.names import contact_names
    from crm_core.services import contributions
    from crm_payments.services import payments

    references = []
    for number in range(count):
        first, last = "Webhook", f"Donor {rng.randrange(10**9)}"
        display, sort, key = contact_names(kind="individual", first_name=first, last_name=last)
        contact = Contact.objects.create(
            kind="individual",
            first_name=first,
            last_name=last,
            display_name=display,
            sort_name=sort,
            name_key=key,
            source=MARK,
        )
        contribution = contributions.create_pending(
            contact,
            currency="GBP",
            lines=[{"kind": "donation", "amount": Decimal(10 + number % 50), "label": "Gift"}],
            source=MARK,
        )
        payment, _start = payments.start_payment(
            contribution,
            provider="stripe",
            return_url="http://127.0.0.1/thanks/",
            cancel_url="http://127.0.0.1/cancel/",
            email=f"b9-{number}@example.org",
        )
        fake.pay(payment.provider_id)
        references.append(contribution.pk)
    return references


def post_all(url, bodies, clients):
    """POST every (body, headers) from ``clients`` threads; returns (latencies, statuses)."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    latencies, statuses = [], []

    def client():
        while True:
            with lock:
                if not queue:
                    return
                body, headers = queue.pop()
            request = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 server
                url, data=body, method="POST", headers=headers
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0  # counted as a failed request
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def count_effects(contribution_ids, event_ids):
    from django.db.models import Count

    from crm_core.models import Activity, Contribution
    from crm_payments.models import WebhookEvent

    contacts = dict(
        Contribution.objects.filter(pk__in=contribution_ids).values_list("pk", "contact_id")
    )
    completions = dict(
        Activity.objects.filter(
            contact_id__in=contacts.values(),
            changes__contribution_status=["pending", "completed"],
        )
        .values_list("contact_id")
        .annotate(n=Count("id"))
    )
    per_contribution = [completions.get(contact, 0) for contact in contacts.values()]
    stored = dict(
        WebhookEvent.objects.filter(event_id__in=event_ids)
        .values_list("event_id")
        .annotate(n=Count("id"))
    )
    completed = Contribution.objects.filter(pk__in=contribution_ids, status="completed").count()
    return {
        "completed twice or more": sum(max(0, n - 1) for n in per_contribution),
        "completions missing": len(contribution_ids) - completed,
        "events stored twice or more": sum(max(0, n - 1) for n in stored.values()),
        "events not stored": len(set(event_ids) - set(stored)),
    }


def clean_up():
    from crm_core.models import Activity, Contact, Contribution, LineItem
    from crm_payments.models import Payment, ProviderCustomer, VelocityEvent, WebhookEvent

    contributions = Contribution.objects.filter(source=MARK)
    Payment.objects.filter(contribution__in=contributions).delete()
    LineItem.objects.filter(contribution__in=contributions).delete()
    contributions.delete()
    contacts = Contact.all_objects.filter(source=MARK)
    Activity.objects.filter(contact__in=contacts).delete()
    ProviderCustomer.objects.filter(contact__in=contacts).delete()
    contacts.delete()
    WebhookEvent.objects.filter(event_id__startswith="evt_").delete()
    VelocityEvent.objects.filter(email__startswith="b9-").delete()


def run():
    create_database_if_missing()
    configure_django()
    migrate()
    from django.conf import settings
    from django.db import connection

    from crm_payments.providers.stripe_fake import FakeStripe

    rng = random.Random(9)
    fake = FakeStripe(api_key=API_KEY, webhook_secret=SECRET)
    fake_url = fake.start()
    settings.CRM = {
        **getattr(settings, "CRM", {}),
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": fake_url,
        # The benchmark starts hundreds of payments from one address.
        "MAX_STARTS_PER_IP": 10**9,
        "MAX_STARTS_PER_EMAIL": 10**9,
    }
    clean_up()
    create_plain_table()
    server, site = start_server(fake_url)
    workers = start_workers(fake_url, WORKERS)
    try:
        ours, plain, statuses = [], [], []
        contribution_ids, event_ids = [], []
        # Warm-up: both endpoints, a few events, not counted.
        warm_ids = make_paid_payments(fake, 20, rng)
        warm_events = list(fake.events)
        warm = [fake.signed(event) for event in warm_events]
        fake.events.clear()
        post_all(site + WEBHOOK_PATH, [(b, _headers(s)) for b, s in warm], CLIENTS)
        post_all(site + PLAIN_PATH, [(b, _headers(s)) for b, s in warm], CLIENTS)
        wait_until_processed([event["id"] for event in warm_events])
        contribution_ids += warm_ids
        event_ids += [event["id"] for event in warm_events]
        drain_seconds, events_per_round = [], []
        for round_number in range(ROUNDS):
            ids = make_paid_payments(fake, PAYMENTS, rng)
            events = list(fake.events)
            fake.events.clear()
            event_ids += [event["id"] for event in events]
            events_per_round.append(len(events))
            deliveries = [fake.signed(event) for event in events] * 2
            rng.shuffle(deliveries)
            bodies = [(body, _headers(signature)) for body, signature in deliveries]
            connection.close()
            # Who goes first alternates; the workers finish our events before
            # the plain view runs, so it never shares the machine with them.
            if round_number % 2 == 0:
                base_latencies, _ = post_all(site + PLAIN_PATH, bodies, CLIENTS)
            started = time.perf_counter()
            our_latencies, our_statuses = post_all(site + WEBHOOK_PATH, bodies, CLIENTS)
            posting = time.perf_counter() - started
            drain_seconds.append(posting + wait_until_processed(event_ids[-len(events) :]))
            if round_number % 2 == 1:
                base_latencies, _ = post_all(site + PLAIN_PATH, bodies, CLIENTS)
            plain += base_latencies
            ours += our_latencies
            statuses += our_statuses
            contribution_ids += ids
        effects = count_effects(contribution_ids, event_ids)
    finally:
        for process in [server, *workers]:
            process.kill()
            process.wait()
        fake.stop()
    failed_requests = sum(1 for status in statuses if status != 200)
    duplicated = (
        effects["completed twice or more"]
        + effects["events stored twice or more"]
        + effects["completions missing"]
        + effects["events not stored"]
    )
    ratio = percentile(ours, 0.99) / percentile(plain, 0.99)
    details = {
        "clients": CLIENTS,
        "webhook deliveries": len(ours),
        "distinct events": len(event_ids),
        "our p50 ms": ms(percentile(ours, 0.5)),
        "our p99 ms": ms(percentile(ours, 0.99)),
        "plain view p50 ms": ms(percentile(plain, 0.5)),
        "plain view p99 ms": ms(percentile(plain, 0.99)),
        "non-200 answers": failed_requests,
        "task workers": WORKERS,
        "events processed per second (first post to last effect)": round(
            sum(events_per_round) / sum(drain_seconds), 1
        ),
        **effects,
    }
    clean_up()
    return [
        {
            "id": "B9",
            "name": "webhook p99 / plain view p99",
            "figure": round(ratio, 2),
            "target": f"<= {RATIO_TARGET}",
            "passed": ratio <= RATIO_TARGET and failed_requests == 0,
            "details": details,
        },
        {
            "id": "B9",
            "name": "duplicated or missing effects",
            "figure": duplicated,
            "target": "0",
            "passed": duplicated == 0,
            "details": effects,
        },
    ]


def _headers(signature):
    return {"Content-Type": "application/json", "Stripe-Signature": signature}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(run(), indent=2, default=str))
