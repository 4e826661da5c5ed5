"""crm_core.bulk: COPY and unnest() on PostgreSQL, Django's bulk methods elsewhere;
the same rows either way."""

from datetime import date, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm_core.bulk import COPY_MIN_ROWS, bulk_insert, bulk_update
from crm_core.models import Activity, Contact, ContactEmail, ParticipantRole, Tag

pytestmark = pytest.mark.django_db


def _contacts(n, prefix="Bulk"):
    return [
        Contact(first_name=f"{prefix}{i}", last_name="Zoë <b>&</b>", source="t") for i in range(n)
    ]


def test_rows_saved_with_keys_defaults_and_every_kind_of_value():
    before = timezone.now()
    contacts = bulk_insert(Contact, _contacts(COPY_MIN_ROWS + 5))
    assert all(c.pk for c in contacts) and len({c.pk for c in contacts}) == len(contacts)
    assert all(not c._state.adding for c in contacts)
    emails = bulk_insert(
        ContactEmail,
        [
            ContactEmail(contact=c, email=f"b{i}@example.org", email_normalized=f"b{i}@example.org")
            for i, c in enumerate(contacts)
        ],
    )
    activities = bulk_insert(
        Activity,
        [
            Activity(
                contact=c,
                subject="Imported",
                changes={"first_name": [None, c.first_name], "n": i, "ok": True, "x": None},
                duration=timedelta(minutes=i),
                source="bulk",
            )
            for i, c in enumerate(contacts)
        ],
    )
    assert Contact.objects.filter(source="t").count() == len(contacts)
    for i, contact in enumerate(contacts):
        saved = Contact.objects.get(pk=contact.pk)
        assert saved.first_name == f"Bulk{i}"
        assert saved.last_name == "Zoë <b>&</b>"
        assert saved.kind == "individual" and saved.is_deleted is False
        assert saved.created_at >= before
        assert ContactEmail.objects.get(pk=emails[i].pk).contact_id == contact.pk
        activity = Activity.objects.get(pk=activities[i].pk)
        assert activity.contact_id == contact.pk
        assert activity.changes == {"first_name": [None, f"Bulk{i}"], "n": i, "ok": True, "x": None}
        assert activity.duration == timedelta(minutes=i)
        assert activity.occurred_at >= before


def test_keys_do_not_collide_with_rows_saved_afterwards():
    contacts = bulk_insert(Contact, _contacts(COPY_MIN_ROWS))
    later = Contact.objects.create(first_name="Later")
    assert later.pk not in {c.pk for c in contacts}
    assert Contact.objects.count() == COPY_MIN_ROWS + 1


def test_many_to_many_through_rows():
    contacts = bulk_insert(Contact, _contacts(COPY_MIN_ROWS))
    tag = Tag.objects.create(name="Bulk", slug="bulk")
    bulk_insert(
        Contact.tags.through,
        [Contact.tags.through(contact_id=c.pk, tag_id=tag.pk) for c in contacts],
    )
    assert tag.contacts.count() == COPY_MIN_ROWS


def test_postgresql_sends_rows_by_copy_and_other_databases_by_insert():
    with CaptureQueriesContext(connection) as queries:
        bulk_insert(Contact, _contacts(COPY_MIN_ROWS * 3))
    sql = [q["sql"] for q in queries.captured_queries]
    if connection.vendor == "postgresql":
        # One query for the keys; the rows go by COPY, outside Django's query log.
        assert len(sql) == 1 and "nextval" in sql[0]
    else:
        assert any(s.startswith("INSERT") for s in sql)
    assert Contact.objects.count() == COPY_MIN_ROWS * 3


def test_few_rows_or_rows_with_keys_go_by_insert():
    with CaptureQueriesContext(connection) as queries:
        bulk_insert(Contact, _contacts(COPY_MIN_ROWS - 1))
    assert any(q["sql"].startswith("INSERT") for q in queries.captured_queries)
    top = Contact.objects.order_by("-pk").first().pk
    with_keys = _contacts(COPY_MIN_ROWS, prefix="Keyed")
    for n, contact in enumerate(with_keys, start=top + 1000):
        contact.pk = n
    bulk_insert(Contact, with_keys)
    assert Contact.objects.filter(pk__gt=top + 999).count() == COPY_MIN_ROWS


def test_values_of_another_type_than_the_column_go_through_the_field():
    roles = bulk_insert(
        ParticipantRole,
        [
            ParticipantRole(name=f"Role {i}", slug=f"role-{i}", weight=True, is_active=1)
            for i in range(COPY_MIN_ROWS)
        ],
    )
    saved = ParticipantRole.objects.get(pk=roles[-1].pk)
    assert (saved.weight, saved.is_active) == (1, True)
    assert type(saved.weight) is int and type(saved.is_active) is bool


def test_a_unique_value_taken_raises_djangos_integrity_error_and_saves_nothing():
    Contact.objects.create(first_name="Taken", external_id="X-1")
    clashing = _contacts(COPY_MIN_ROWS)
    clashing[-1].external_id = "X-1"
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk_insert(Contact, clashing)
    assert Contact.objects.count() == 1


def test_empty_list():
    assert bulk_insert(Contact, []) == []


def test_bulk_update_writes_the_named_fields_only():
    contacts = bulk_insert(Contact, _contacts(COPY_MIN_ROWS + 3))
    employer = Contact.objects.create(kind="organization", organization_name="Acme")
    stamp = timezone.now() - timedelta(days=3)
    for i, contact in enumerate(contacts):
        contact.first_name = f"Zoë {i} <i>"
        contact.birth_date = date(1990, 1, 1 + i % 28) if i % 2 else None
        contact.do_not_email = bool(i % 3)
        contact.employer = employer if i % 4 == 0 else None
        contact.updated_at = stamp
        contact.last_name = "not written"
    with CaptureQueriesContext(connection) as queries:
        bulk_update(
            Contact,
            contacts,
            ["first_name", "birth_date", "do_not_email", "employer", "updated_at"],
        )
    if connection.vendor == "postgresql":
        assert len(queries.captured_queries) == 1
        assert "unnest" in queries.captured_queries[0]["sql"]
    for i, contact in enumerate(contacts):
        saved = Contact.objects.get(pk=contact.pk)
        assert saved.first_name == f"Zoë {i} <i>"
        assert saved.birth_date == (date(1990, 1, 1 + i % 28) if i % 2 else None)
        assert saved.do_not_email is bool(i % 3)
        assert saved.employer_id == (employer.pk if i % 4 == 0 else None)
        assert saved.updated_at == stamp
        assert saved.last_name == "Zoë <b>&</b>"
    assert Contact.objects.get(pk=employer.pk).first_name == ""


def test_bulk_update_of_json_and_duration_columns():
    contact = Contact.objects.create(first_name="Ann")
    activities = bulk_insert(
        Activity,
        [Activity(contact=contact, subject=f"A{i}", source="s") for i in range(COPY_MIN_ROWS)],
    )
    for i, activity in enumerate(activities):
        activity.changes = {"n": i, "names": ["Zoë", "<b>"], "none": None} if i % 2 else {}
        activity.duration = timedelta(seconds=i) if i % 3 else None
    bulk_update(Activity, activities, ["changes", "duration"])
    for i, activity in enumerate(activities):
        saved = Activity.objects.get(pk=activity.pk)
        assert saved.changes == ({"n": i, "names": ["Zoë", "<b>"], "none": None} if i % 2 else {})
        assert saved.duration == (timedelta(seconds=i) if i % 3 else None)


def test_bulk_update_refuses_what_django_refuses():
    contacts = bulk_insert(Contact, _contacts(COPY_MIN_ROWS))
    with pytest.raises(ValueError):
        bulk_update(Contact, contacts, ["tags"])
    with pytest.raises(ValueError):
        bulk_update(Contact, contacts, ["id"])
