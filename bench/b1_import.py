"""B1: import 100,000 contacts from CSV on PostgreSQL, against a raw COPY.

Two figures, each the import's wall time divided by the time of a raw
``COPY ... FROM STDIN (FORMAT csv)`` of the same file's rows into a staging
table of text columns, on the same database in the same run:

- create: every row is a new contact (target <= 3);
- match: half the rows carry the email of one of the contacts preloaded with
  bench/contact_data.py (1,000,000 by default), with "update blanks only"
  (target <= 5).

The import is ``crm_core.services.imports.run_import`` (the code the admin and
``crm_import`` run): parsing, the contact services' cleaning and validation,
per-batch matching, bulk writes and checkpoints. Each import runs inside an
outer transaction that is rolled back, so the preloaded data set stays as it
was and reruns measure the same thing (its batches commit as savepoints).

Knobs: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/crm_bench_b1),
BENCH_B1_ROWS (100000), BENCH_B1_EXISTING (1000000; the preload is made once
and reused).
"""

import io
import os
import time

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm_bench_b1")

from bench.contact_data import configure_django, ensure_contacts  # noqa: E402

ROWS = int(os.environ.get("BENCH_B1_ROWS", "100000"))
EXISTING = int(os.environ.get("BENCH_B1_EXISTING", "1000000"))
CREATE_TARGET = 3
MATCH_TARGET = 5
FIRST = ["Ann", "Bob", "Zoë", "José", "Chloé", "Mary-Jane", "Øystein", "Li", "Omar", "Anne"]
LAST = ["Lee", "García", "Müller", "O'Brien", "Dupont", "Silva", "Hansen", "Smith", "Khan"]
HEADER = "id,first,last,email,phone,postcode,city\r\n"
COLUMNS = {
    "id": "external_id",
    "first": "first_name",
    "last": "last_name",
    "email": "email",
    "phone": "phone",
    "postcode": "postal_code",
    "city": "city",
}


def make_csv(rows, *, existing_emails=()):
    """CSV text of ``rows`` contacts; the first len(existing_emails) reuse those emails."""
    out = io.StringIO()
    out.write(HEADER)
    existing_emails = list(existing_emails)
    for n in range(rows):
        email = existing_emails[n] if n < len(existing_emails) else f"b1-{n}@example.net"
        out.write(
            f"B1-{n},{FIRST[n % len(FIRST)]},{LAST[(n // 10) % len(LAST)]} {n},"
            f"{email.upper() if n % 3 == 0 else email},07911 {100000 + n:06d},"
            f"SW1A {n % 9}AA,London\r\n"
        )
    return out.getvalue()


def time_copy(connection, text):
    """Seconds for a raw COPY of the CSV's rows into a staging table (rolled back)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE b1_staging (id text, first text, last text, email text,"
            " phone text, postcode text, city text)"
        )
        started = time.perf_counter()
        with cursor.cursor.copy("COPY b1_staging FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(text)
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE b1_staging")
    return seconds


def time_import(text, mapping):
    from django.db import transaction

    from crm_core.services.imports import create_job, run_import

    with transaction.atomic():
        job = create_job(text.encode(), name="b1.csv", kind="contacts", mapping=mapping)
        started = time.perf_counter()
        job = run_import(job)
        seconds = time.perf_counter() - started
        counts = {
            "created": job.created_count,
            "updated": job.updated_count,
            "errors": job.error_count,
            "duplicates": job.duplicate_count,
        }
        transaction.set_rollback(True)
    return seconds, counts


def run():
    preload = ensure_contacts(EXISTING)
    configure_django()
    from django.db import connection, transaction

    from crm_core.models import ContactEmail, ImportMapping

    with transaction.atomic():
        mapping, _ = ImportMapping.objects.update_or_create(
            name="b1",
            defaults={"kind": "contacts", "columns": COLUMNS, "match_action": "update_blanks"},
        )
    emails = list(
        ContactEmail.objects.filter(id__lte=EXISTING)
        .order_by("id")
        .values_list("email", flat=True)[: ROWS // 2]
    )
    results = []
    for label, existing, target in (("create", (), CREATE_TARGET), ("match", emails, MATCH_TARGET)):
        text = make_csv(ROWS, existing_emails=existing)
        with transaction.atomic():
            copy_seconds = time_copy(connection, text)
        import_seconds, counts = time_import(text, mapping)
        ratio = import_seconds / copy_seconds
        results.append(
            {
                "id": "B1",
                "name": f"import {ROWS:,} contacts ({label}) / raw COPY",
                "figure": round(ratio, 1),
                "target": f"<= {target}",
                "passed": ratio <= target,
                "details": {
                    "rows": ROWS,
                    "existing_contacts": preload["contacts"],
                    "import_seconds": round(import_seconds, 2),
                    "copy_seconds": round(copy_seconds, 3),
                    "rows_per_second": round(ROWS / import_seconds),
                    **counts,
                },
            }
        )
    return results
