"""Contribution rows are imported a batch at a time (``record_donations``) with the
same result, row for row, as ``create_pending`` + ``complete`` one row at a time."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from crm_core.models import Activity, Contribution, LineItem
from crm_core.services import contributions as contribution_services
from crm_core.services.contacts import create_contact, trash_contact
from tests.factories import FinancialTypeFactory
from tests.test_imports import csv_bytes, do_import, mapping

pytestmark = pytest.mark.django_db

COLUMNS = {
    "who": "contact_external_id",
    "mail": "contact_email",
    "amount": "amount",
    "currency": "currency",
    "fund": "financial_type",
    "date": "received_date",
    "method": "payment_method",
    "txn": "transaction_id",
    "status": "status",
    "note": "note",
    "source": "source",
}
HEADER = "who,mail,amount,currency,fund,date,method,txn,status,note,source"


@pytest.fixture
def people(db):
    FinancialTypeFactory(slug="donation")
    FinancialTypeFactory(slug="building-fund", name="Building fund")
    FinancialTypeFactory(slug="old-appeal", is_active=False)
    ann = create_contact(first_name="Ann", last_name="Lee", external_id="A1")
    bob = create_contact(first_name="Bob", last_name="Roe", emails=["bob@example.org"])
    create_contact(first_name="Twin", last_name="One", emails=["twin@example.org"])
    create_contact(first_name="Twin", last_name="Two", emails=["twin@example.org"])
    gone = create_contact(first_name="Gone", last_name="Away", external_id="G1")
    trash_contact(gone)
    existing = contribution_services.create_pending(
        bob, currency="GBP", lines=[{"kind": "donation", "amount": "5"}]
    )
    contribution_services.complete(existing, transaction_id="TXN-OLD")
    return ann, bob


def _lines():
    good = [
        f"A1,,{10 + n}.50,GBP,,2024-0{1 + n % 9}-1{n % 9},cheque,T-{n},completed,Note {n},"
        for n in range(12)
    ] + [
        f",BOB@example.org,{n + 1},EUR,building-fund,,cash,,pending,<b>n</b> & co,spring"
        for n in range(12)
    ]
    bad = [
        "A1,,20,GBP,,2024-02-02,cheque,T-3,completed,,",  # transaction id earlier in the file
        ",bob@example.org,20,GBP,,2024-02-02,cash,TXN-OLD,completed,,",  # already recorded
        "A1,,20,GBP,old-appeal,,,,,,",  # inactive fund
        "A1,,-5,GBP,,,,,,,",
        "A1,,20,XXX,,,,,,,",
        "A1,,20,GBP,no-such-fund,,,,,,",
        "A1,,20,GBP,,,bitcoin,,,,",
        "A1,,20,GBP,,2999-01-01,cheque,,completed,,",
        "A1,,20,GBP,,,,,maybe,,",
        "ZZ,,20,GBP,,,,,,,",
        "G1,,20,GBP,,,,,,,",
        ",twin@example.org,20,GBP,,,,,,,",
        ",,20,GBP,,,,,,,",
        "A1,,=1+1,GBP,,,,,,,",
        "A1,,-5,GBP,,,,,,," + "s" * 300,  # two faults: the amount is reported, as one by one
    ]
    # Bad rows among good ones, so the batch's order is kept in the error list.
    return good[:6] + bad + good[6:]


def _snapshot(job, since):
    contributions = [
        (
            c.contact_id,
            c.total_amount,
            c.currency,
            c.financial_type.slug,
            c.source.replace(f"import:{job.pk}", "import:JOB"),
            c.status,
            c.received_at.date() if c.received_at else None,
            c.payment_method,
            c.transaction_id,
            c.note,
            c.receipt_status,
            [
                (
                    li.kind,
                    li.label,
                    li.quantity,
                    li.unit_amount,
                    li.line_total,
                    li.financial_type_id,
                )
                for li in LineItem.objects.filter(contribution=c).order_by("id")
            ],
        )
        for c in Contribution.objects.exclude(transaction_id="TXN-OLD").order_by("id")
    ]
    history = [
        (contact_id, subject, changes, source.replace(f"import:{job.pk}", "import:JOB"), details)
        for contact_id, subject, changes, source, details in Activity.objects.filter(
            subject__startswith="Contribution of", pk__gt=since
        )
        .order_by("id")
        .values_list("contact_id", "subject", "changes", "source", "details")
    ]
    errors = list(job.row_errors.order_by("row_number").values_list("row_number", "messages"))
    return job.created_count, job.error_count, contributions, history, errors


def _import_and_undo(data, the_mapping):
    since = Activity.objects.order_by("-pk").values_list("pk", flat=True).first()
    with transaction.atomic():
        job = do_import(data, the_mapping)
        snapshot = _snapshot(job, since)
        transaction.set_rollback(True)
    return snapshot


def test_a_batch_imports_exactly_what_row_by_row_imports(people, monkeypatch, mailoutbox):
    the_mapping = mapping(COLUMNS, kind="contributions")
    data = csv_bytes(*_lines(), header=HEADER)
    batch = _import_and_undo(data, the_mapping)
    monkeypatch.setattr("crm_core.services.imports._import_contribution_rows", lambda *args: False)
    one_by_one = _import_and_undo(data, the_mapping)
    assert batch == one_by_one
    assert mailoutbox == []  # past giving: no receipts
    created, error_count, contributions, history, errors = batch
    assert (created, error_count) == (24, 15)
    assert len(contributions) == 24 and len(history) == 12 * 2 + 12
    ann, _bob = people
    first = contributions[0]
    assert first[0] == ann.pk
    assert first[1:4] == (Decimal("10.50"), "GBP", "donation")
    assert first[4] == "import:JOB"
    assert first[5:11] == ("completed", date(2024, 1, 10), "cheque", "T-0", "Note 0", "pending")
    pending = [c for c in contributions if c[5] == "pending"]
    assert len(pending) == 12
    assert {(c[2], c[3], c[4], c[9]) for c in pending} == {
        ("EUR", "building-fund", "spring", "n & co")
    }
    assert [e[1] for e in errors][:2] == [
        ["The transaction T-3 is already recorded on another contribution."],
        ["The transaction TXN-OLD is already recorded on another contribution."],
    ]


def test_a_transaction_id_taken_meanwhile_falls_back_to_row_by_row(people, monkeypatch):
    # The batch's look-up misses TXN-OLD, as if another contribution took it
    # after the look-up: the database's unique constraint refuses the batch
    # (COPY on PostgreSQL, INSERT elsewhere) and the rows go one at a time.
    plan = contribution_services._plan_donation
    refused = []

    def taken_meanwhile(entry, taken, *args, **kwargs):
        taken.discard("TXN-OLD")
        return plan(entry, taken, *args, **kwargs)

    def record_donations(*args, **kwargs):
        try:
            return real_record(*args, **kwargs)
        except IntegrityError as error:
            refused.append(error)
            raise

    real_record = contribution_services.record_donations
    monkeypatch.setattr(contribution_services, "_plan_donation", taken_meanwhile)
    monkeypatch.setattr(contribution_services, "record_donations", record_donations)
    data = csv_bytes(*_lines(), header=HEADER)
    job = do_import(data, mapping(COLUMNS, kind="contributions"))
    assert len(refused) == 1
    assert (job.created_count, job.error_count) == (24, 15)
    assert Contribution.objects.exclude(transaction_id="TXN-OLD").count() == 24
    assert Contribution.objects.filter(transaction_id="TXN-OLD").count() == 1
    assert ["The transaction TXN-OLD is already recorded on another contribution."] in [
        error.messages for error in job.row_errors.all()
    ]


def test_a_batch_with_a_user_records_them_as_the_row_by_row_way_does(people, monkeypatch):
    user = User.objects.create_user("importer", password="x" * 12)
    the_mapping = mapping(COLUMNS, kind="contributions")
    data = csv_bytes(*_lines()[:8], header=HEADER)

    def created_by(actor):
        since = Activity.objects.order_by("-pk").values_list("pk", flat=True).first()
        with transaction.atomic():
            job = do_import(data, the_mapping, actor=actor)
            rows = sorted(
                Contribution.objects.exclude(transaction_id="TXN-OLD").values_list(
                    "transaction_id", "created_by"
                )
            )
            history = list(
                Activity.objects.filter(pk__gt=since, subject__startswith="Contribution of")
                .order_by("pk")
                .values_list("subject", "created_by")
            )
            transaction.set_rollback(True)
        return job.created_count, rows, history

    batch = created_by(user)
    monkeypatch.setattr("crm_core.services.imports._import_contribution_rows", lambda *args: False)
    assert batch == created_by(user)
    assert batch[0] == 6
    assert {who for _t, who in batch[1]} == {user.pk}
    assert batch[2] and {who for _s, who in batch[2]} == {user.pk}


def test_a_batch_of_contribution_rows_runs_a_constant_number_of_queries(
    people, django_assert_max_num_queries
):
    def rows(count):
        return csv_bytes(
            *[f"A1,,{n + 1},GBP,,2024-01-01,cheque,Q{count}-{n},completed,," for n in range(count)],
            header=HEADER,
        )

    # On PostgreSQL 25 rows go by COPY, which Django's query log does not list:
    # one COPY per table whatever the row count (tests/test_bulk_insert.py),
    # so the count here is the SQL statements only. SQLite lists every INSERT.
    with django_assert_max_num_queries(60) as few:
        assert (
            do_import(rows(3), mapping(COLUMNS, kind="contributions", name="a")).created_count == 3
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert (
            do_import(rows(25), mapping(COLUMNS, kind="contributions", name="b")).created_count
            == 25
        )
