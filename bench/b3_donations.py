"""B3: donation form submissions (pay later) on PostgreSQL, 16 clients.

The site runs in a server process of its own (the WSGI server of B9: a pool
of 16 worker threads, each keeping its database connection). A published
``DonationPage`` carries a donation block offering "pay later" (the
``offline`` payment method). Each of 16 client threads loads the page once,
as a browser does, for its CSRF cookie and token and the signed placement,
then posts valid pay-later gifts to ``/crm/forms/submit/``, each with a fresh
one-time form token and an email and name of its own, so every submission
creates a contact, a submission row, a pending contribution with its line
and an offline payment, in one transaction.

Baseline, in the same server, through the same middleware (CSRF included)
and the same HTTP stack, posted by the same 16 clients with the same kind of
body: a plain Django view that stores the posted email with one INSERT and
answers 200. Rounds alternate who goes first (baseline, form; form,
baseline), after a warm-up of both.

Figures: form submissions per second / plain view requests per second
(target >= 1/3) and form p99 latency / plain view p99 (target <= 3). Any
answer other than the expected one (302 to the thank-you page; 200 for the
plain view) fails both, and the rows are counted in the database afterwards:
one pending contribution with an offline payment per submission, one row per
plain request.
"""

import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from bench.b9_webhooks import free_port, serve_site
from bench.contact_data import configure_django, create_database_if_missing, migrate
from bench.timing import ms, percentile

CLIENTS = int(os.environ.get("BENCH_B3_CLIENTS", "16"))
SUBMISSIONS = int(os.environ.get("BENCH_B3_SUBMISSIONS", "400"))
ROUNDS = int(os.environ.get("BENCH_B3_ROUNDS", "2"))
WARMUP = int(os.environ.get("BENCH_B3_WARMUP", str(CLIENTS * 4)))
RATE_TARGET = 1 / 3
P99_TARGET = 3
SUBMIT_PATH = "/crm/forms/submit/"
THANKS_PREFIX = "/crm/forms/thanks/"
PLAIN_PATH = "/bench/plain-insert/"
PLAIN_TABLE = "bench_b3_plain_insert"
PAGE_SLUG = "bench-b3-donate"
EMAIL_DOMAIN = "b3.example.org"
SOURCE = "form:donation"  # crm_forms.services.donations.SOURCE
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "den", "bar", "col", "fen"]


# -- the server process -----------------------------------------------------------------


def plain_view(request):
    """The least a form endpoint can do: keep the posted email (one INSERT), answer 200."""
    from django.db import connection
    from django.http import HttpResponse

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PLAIN_TABLE} (email) VALUES (%s)",  # noqa: S608
            [request.POST.get("email", "")],
        )
    return HttpResponse("ok", content_type="text/plain")


def create_plain_table():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {PLAIN_TABLE} (id bigserial PRIMARY KEY,"
            " email text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute(f"TRUNCATE {PLAIN_TABLE}")


def _urlpatterns():
    from django.urls import path
    from django.views.decorators.http import require_POST

    from example_site import urls

    # Before the site's own patterns: Wagtail's catch-all page route is last there.
    return [path(PLAIN_PATH.strip("/") + "/", require_POST(plain_view)), *urls.urlpatterns]


def __getattr__(name):
    # ROOT_URLCONF points at this module in the server process.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def bench_settings(settings):
    """The example site as deployed (DEBUG off), velocity limits raised.

    Pay-later gifts do not go through the card-testing defence
    (``start_payment`` checks online providers only), so this changes nothing
    measured; it keeps thousands of gifts from one address possible should
    the method ever count.
    """
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    settings.CRM = {
        **getattr(settings, "CRM", {}),
        "MAX_STARTS_PER_IP": 10**9,
        "MAX_STARTS_PER_EMAIL": 10**9,
    }


def serve(port):
    """Child process: the site with the plain view added, until killed."""
    serve_site(port, bench_settings, workers=CLIENTS)


# -- the benchmark process ----------------------------------------------------------------


def start_server():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.b3_donations", "--serve", str(port)],
        env={**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"]},
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise RuntimeError(f"the site did not start: {line!r}")
    return process, port


def donation_page():
    """The published page with a pay-later donation block (created once, reused)."""
    from wagtail.models import Site

    from crm_core.models import FinancialType
    from crm_wagtail.models import DonationPage

    page = DonationPage.objects.filter(slug=PAGE_SLUG).first()
    if page is not None and page.live:
        return page
    fund, _created = FinancialType.objects.get_or_create(
        slug="donation", defaults={"name": "Donation"}
    )
    block = {
        "title": "Give today",
        "currency": "GBP",
        "amounts": [
            {"amount": "10", "label": "a week of tea"},
            {"amount": "25", "label": "a food parcel"},
        ],
        "allow_custom_amount": True,
        "min_amount": "5",
        "max_amount": "500",
        "financial_type": fund,
        "frequencies": ["one_off"],
        "cover_fees_percent": "2.5",
        "payment_methods": ["offline"],
        "consent": [],
        "thank_you": "<p>Thank you.</p>",
    }
    if page is None:
        parent = Site.objects.get(is_default_site=True).root_page
        page = DonationPage(title="Donate (B3)", slug=PAGE_SLUG, body=[("donation_form", block)])
        parent.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def _connection(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def load_form(port, path):
    """What a browser gets from the page: the CSRF cookie and the form's hidden fields."""
    conn = _connection(port)
    conn.request("GET", path)
    response = conn.getresponse()
    html = response.read().decode()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"the donation page answered {response.status}")
    cookie = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        cookie.load(header)
    fields = {}
    for name in ("csrfmiddlewaretoken", "placement", "back"):
        found = re.search(rf'name="{name}" value="([^"]*)"', html)
        if found is None:
            raise RuntimeError(f"the donation page has no {name} field")
        fields[name] = found.group(1)
    return {"cookie": f"csrftoken={cookie['csrftoken'].value}", "fields": fields}


def donor(number, rng):
    """A name and an email of its own (distinct names: no duplicate-review pairs)."""
    last = "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()
    letters = ""
    value = number
    while True:
        letters = chr(ord("a") + value % 26) + letters
        value //= 26
        if not value:
            break
    return {
        "first_name": rng.choice(["Ada", "Grace", "Alan", "Mary", "Tim", "Rosa", "Noor"]),
        "last_name": f"{last} {letters.capitalize()}",
        "email": f"donor-{number}@{EMAIL_DOMAIN}",
    }


def bodies(numbers, rng):
    """One pay-later gift per number: (email, posted fields without the page's ones)."""
    gifts = []
    for number in numbers:
        person = donor(number, rng)
        gifts.append(
            {
                **person,
                "frequency": "one_off",
                "amount": str(number % 2),
                "payment_method": "offline",
            }
        )
    return gifts


def post_all(port, path, gifts, sessions, expect):
    """POST every gift from one thread per session; returns (seconds, latencies, failures).

    ``expect(status, location)`` tells a success. Each post is a new
    connection (the server speaks HTTP/1.0), timed from connect to the last
    byte of the answer.
    """
    queue = list(reversed(gifts))
    lock = threading.Lock()
    latencies, failures = [], []
    start = threading.Barrier(len(sessions) + 1)

    def client(session):
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": session["cookie"],
        }
        start.wait()
        while True:
            with lock:
                if not queue:
                    return
                gift = queue.pop()
            body = urlencode({**session["fields"], "token": str(uuid.uuid4()), **gift})
            began = time.perf_counter()
            try:
                conn = _connection(port)
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status, location = response.status, response.getheader("Location", "")
                conn.close()
            except OSError as error:
                status, location = 0, repr(error)
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                if not expect(status, location):
                    failures.append((gift["email"], status, location[:200]))

    threads = [threading.Thread(target=client, args=(session,)) for session in sessions]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies, failures


def form_ok(status, location):
    return status == 302 and location.startswith(THANKS_PREFIX)


def plain_ok(status, _location):
    return status == 200


def count_form_rows(emails):
    """Pending contributions with an offline payment and a submission, for ``emails``."""
    from crm_core.models import Contribution
    from crm_forms.models import Submission
    from crm_payments.models import Payment

    contributions = Contribution.objects.filter(
        contact__emails__email_normalized__in=emails, source=SOURCE, status="pending"
    )
    return {
        "contributions": contributions.count(),
        "offline payments": Payment.objects.filter(
            contribution__in=contributions, provider="offline"
        ).count(),
        "submissions": Submission.objects.filter(contribution__in=contributions).count(),
    }


def count_plain_rows(emails):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {PLAIN_TABLE} WHERE email = ANY(%s)",  # noqa: S608
            [list(emails)],
        )
        return cursor.fetchone()[0]


def clean_up():
    """Remove every contact the bench's donors made, with their gifts and history.

    The page asks for no consent, so there are no consent records (which are
    never deleted) to leave behind."""
    from crm_core.models import Activity, Contact, Contribution, LineItem
    from crm_forms.models import Submission
    from crm_payments.models import Payment

    contacts = Contact.all_objects.filter(emails__email_normalized__endswith="@" + EMAIL_DOMAIN)
    contributions = Contribution.objects.filter(contact__in=contacts)
    Submission.objects.filter(contact__in=contacts).delete()
    Payment.objects.filter(contribution__in=contributions).delete()
    LineItem.objects.filter(contribution__in=contributions).delete()
    contributions.delete()
    Activity.objects.filter(contact__in=contacts).delete()
    Contact.all_objects.filter(pk__in=list(contacts.values_list("pk", flat=True))).delete()


def run():
    started = time.perf_counter()
    create_database_if_missing()
    configure_django()
    migrate()
    from django.conf import settings
    from django.db import connection

    bench_settings(settings)
    clean_up()
    create_plain_table()
    page_path = urlsplit(donation_page().url).path
    connection.close()
    rng = random.Random(3)
    server, port = start_server()
    numbers = iter(range(10**9))
    try:
        sessions = [load_form(port, page_path) for _ in range(CLIENTS)]
        # Warm-up: both endpoints, not counted (but checked like the rest).
        warm = bodies([next(numbers) for _ in range(WARMUP)], rng)
        _s, _l, warm_failures = post_all(port, SUBMIT_PATH, warm, sessions, form_ok)
        _s, _l, plain_warm_failures = post_all(port, PLAIN_PATH, warm, sessions, plain_ok)
        rates = {"form": [], "plain": []}
        latencies = {"form": [], "plain": []}
        failures = {"form": warm_failures, "plain": plain_warm_failures}
        posted = {"form": [g["email"] for g in warm], "plain": [g["email"] for g in warm]}
        for round_number in range(ROUNDS):
            order = ["plain", "form"] if round_number % 2 == 0 else ["form", "plain"]
            for kind in order:
                gifts = bodies([next(numbers) for _ in range(SUBMISSIONS)], rng)
                path, expect = (SUBMIT_PATH, form_ok) if kind == "form" else (PLAIN_PATH, plain_ok)
                seconds, round_latencies, round_failures = post_all(
                    port, path, gifts, sessions, expect
                )
                rates[kind].append(len(gifts) / seconds)
                latencies[kind] += round_latencies
                failures[kind] += round_failures
                posted[kind] += [g["email"] for g in gifts]
    finally:
        server.kill()
        server.wait()
    form_rows = count_form_rows(posted["form"])
    plain_rows = count_plain_rows(posted["plain"])
    missing = {
        **{name: len(posted["form"]) - count for name, count in form_rows.items()},
        "plain view rows": len(posted["plain"]) - plain_rows,
    }
    failed = len(failures["form"]) + len(failures["plain"])
    sound = failed == 0 and not any(missing.values())
    form_rate, plain_rate = statistics.median(rates["form"]), statistics.median(rates["plain"])
    rate_ratio = form_rate / plain_rate
    form_p99, plain_p99 = percentile(latencies["form"], 0.99), percentile(latencies["plain"], 0.99)
    p99_ratio = form_p99 / plain_p99
    details = {
        "clients": CLIENTS,
        "submissions per round": SUBMISSIONS,
        "rounds": ROUNDS,
        "form submissions per second": [round(rate, 1) for rate in rates["form"]],
        "plain view requests per second": [round(rate, 1) for rate in rates["plain"]],
        "form p50 ms": ms(percentile(latencies["form"], 0.5)),
        "form p99 ms": ms(form_p99),
        "plain view p50 ms": ms(percentile(latencies["plain"], 0.5)),
        "plain view p99 ms": ms(plain_p99),
        "failed form posts": len(failures["form"]),
        "failed plain posts": len(failures["plain"]),
        "first failures": (failures["form"] + failures["plain"])[:5],
        "posted including warm-up": {kind: len(emails) for kind, emails in posted.items()},
        "rows in the database": {**form_rows, "plain view rows": plain_rows},
        "rows missing": missing,
        "benchmark_seconds": round(time.perf_counter() - started, 1),
    }
    clean_up()
    suffix = "" if sound else f"; {failed} failed posts, rows missing {missing}"
    return [
        {
            "id": "B3",
            "name": f"donation submissions (pay later, {CLIENTS} clients) / plain INSERT view",
            "figure": (
                f"{rate_ratio:.2f} ({form_rate:.0f} submissions/s, plain view "
                f"{plain_rate:.0f}/s){suffix}"
            ),
            "target": ">= 1/3, every post answered and stored",
            "passed": rate_ratio >= RATE_TARGET and sound,
            "details": details,
        },
        {
            "id": "B3",
            "name": f"donation submission p99 / plain INSERT view p99 ({CLIENTS} clients)",
            "figure": f"{p99_ratio:.2f} ({ms(form_p99)} ms vs {ms(plain_p99)} ms){suffix}",
            "target": f"<= {P99_TARGET}, every post answered and stored",
            "passed": p99_ratio <= P99_TARGET and sound,
            "details": details,
        },
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(run(), indent=2, default=str))
