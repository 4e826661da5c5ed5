"""B7: staff reports over 1,000,000 contacts and 3,000,000 contributions on PostgreSQL.

Each staff report selector of ``crm_core.selectors.reports`` (contributions
by month, fund and campaign, LYBUNT and SYBUNT pages, memberships by type
and status, renewal rate, event attendance page) is timed in-process
through the ORM against a hand-written SQL query computing the same
answer, sent on the same connection through a raw cursor, interleaved
after a warm-up (``bench.timing.compare_interleaved``). The answers are
compared (the benchmark fails if they differ) and the ratio of the medians
is reported, target <= 1.5.

The data set (1,000,000 contacts, 3,000,000 contributions over six years,
two currencies, four funds, three campaigns, some refunded, partially
refunded and pending; 300,000 memberships of four types with their
renewals in the contacts' history; 2,000 events with 400,000 participants)
is generated once with ``INSERT ... SELECT generate_series`` into the
database ``crm_bench_reports`` (or ``BENCH_DATABASE_URL``) and reused by
later runs. Each part is recorded in ``bench_dataset`` and generated again
only when it is missing or its size knob changes.
"""

import datetime
import os
import statistics
import time
from decimal import Decimal

import psycopg

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/crm_bench_reports"
os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_URL)

from bench.contact_data import (  # noqa: E402 - reads BENCH_DATABASE_URL at call time
    configure_django,
    create_database_if_missing,
    database_url,
    migrate,
)
from bench.timing import compare_interleaved, ms  # noqa: E402

CONTACTS = int(os.environ.get("BENCH_B7_CONTACTS", "1000000"))
CONTRIBUTIONS = int(os.environ.get("BENCH_B7_CONTRIBUTIONS", "3000000"))
ROUNDS = int(os.environ.get("BENCH_B7_ROUNDS", "3"))
RATIO_TARGET = 1.5
DATASET_VERSION = 1
FUNDS = ["bench-general", "bench-roof", "bench-dues", "bench-events"]
CAMPAIGNS = ["bench-spring", "bench-summer", "bench-winter"]
MEMBERSHIPS = int(os.environ.get("BENCH_B7_MEMBERSHIPS", "300000"))
EVENTS = int(os.environ.get("BENCH_B7_EVENTS", "2000"))
PARTICIPANTS = int(os.environ.get("BENCH_B7_PARTICIPANTS", "400000"))
MEMBERSHIP_TYPES = [
    ("bench-individual", "Bench individual"),
    ("bench-student", "Bench student"),
    ("bench-family", "Bench family"),
    ("bench-corporate", "Bench corporate"),
]
ROLES = ["attendee", "speaker", "volunteer", "host"]

# What a column gets when the bench does not name it: the generated rows
# must satisfy every NOT NULL column, including ones added after this file.
FILLERS = {
    "boolean": "false",
    "integer": "0",
    "smallint": "0",
    "bigint": "0",
    "numeric": "0",
    "double precision": "0",
    "text": "''",
    "character varying": "''",
    "timestamp with time zone": "now()",
    "date": "current_date",
    "uuid": "gen_random_uuid()",
    "jsonb": "'{}'::jsonb",
}


def _insert_select(conn, table, given, source):
    """INSERT INTO table (...) SELECT ... FROM source, filling the unnamed NOT NULL columns."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL"
        " AND is_identity = 'NO'",
        [table],
    ).fetchall()
    columns = dict(given)
    for name, data_type in rows:
        if name not in columns and name != "id":
            columns[name] = FILLERS[data_type]
    names = ", ".join(columns)
    values = ", ".join(columns.values())
    conn.execute(f"INSERT INTO {table} ({names}) SELECT {values} FROM {source}")


def _loaded(conn, name="reports"):
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_dataset"
        " (name text PRIMARY KEY, version int NOT NULL, rows int NOT NULL,"
        " seconds float NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())"
    )
    return conn.execute(
        "SELECT version, rows, seconds FROM bench_dataset WHERE name = %s", [name]
    ).fetchone()


def _record(conn, name, version, rows, seconds):
    conn.execute("DELETE FROM bench_dataset WHERE name = %s", [name])
    conn.execute(
        "INSERT INTO bench_dataset (name, version, rows, seconds) VALUES (%s, %s, %s, %s)",
        [name, version, rows, seconds],
    )


def _number_contacts(conn):
    """Temp table bench_contacts (n, id): the bench contacts, numbered from 0."""
    # Numbered contacts, joined on the number: indexing a million-element
    # array once per generated row would detoast it every time.
    if conn.execute("SELECT to_regclass('pg_temp.bench_contacts')").fetchone()[0]:
        return
    conn.execute(
        "CREATE TEMP TABLE bench_contacts AS"
        " SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id"
        " FROM crm_core_contact ORDER BY id LIMIT %s",
        [CONTACTS],
    )
    conn.execute("ALTER TABLE bench_contacts ADD PRIMARY KEY (n)")
    conn.execute("ANALYZE bench_contacts")


def ensure_data():
    """Generate each part of the data set unless its version and size are already there."""
    create_database_if_missing()
    configure_django()
    migrate()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return {
            "contributions": _ensure_contributions(conn),
            "memberships": _ensure_memberships(conn),
            "events": _ensure_events(conn),
        }


def _present(conn, loaded, rows, table):
    """Whether the recorded data (version and size) is still in ``table``."""
    if not loaded or tuple(loaded[:2]) != (DATASET_VERSION, rows):
        return False
    return conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]


def _ensure_contributions(conn):
    loaded = _loaded(conn)
    if _present(conn, loaded, CONTRIBUTIONS, "crm_core_contribution"):
        return {"generated": False, "seconds": round(loaded[2], 1)}
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("DELETE FROM bench_dataset WHERE name = 'reports'")
        conn.execute("TRUNCATE crm_core_contribution CASCADE")
        for slug in FUNDS:
            conn.execute(
                "INSERT INTO crm_core_financialtype (name, slug, description, is_deductible,"
                " is_active) VALUES (%s, %s, '', false, true) ON CONFLICT (slug) DO NOTHING",
                [slug.replace("-", " ").title(), slug],
            )
        for slug in CAMPAIGNS:
            conn.execute(
                "INSERT INTO crm_core_campaign (name, slug, description, currency, is_active)"
                " VALUES (%s, %s, '', '', true) ON CONFLICT (slug) DO NOTHING",
                [slug.replace("-", " ").title(), slug],
            )
        contacts = conn.execute("SELECT count(*) FROM crm_core_contact").fetchone()[0]
        if contacts < CONTACTS:
            _insert_select(
                conn,
                "crm_core_contact",
                {
                    "kind": "'individual'",
                    "first_name": "'Donor'",
                    "last_name": "g::text",
                    "display_name": "'Donor ' || g",
                    "sort_name": "g::text || ', Donor'",
                    "created_at": "now()",
                    "updated_at": "now()",
                },
                f"generate_series({contacts + 1}, {CONTACTS}) AS g",
            )
        _number_contacts(conn)
        conn.execute(
            "CREATE TEMP TABLE bench_ids AS SELECT"
            " (SELECT array_agg(id ORDER BY slug) FROM crm_core_financialtype"
            "  WHERE slug = ANY(%s)) AS funds,"
            " (SELECT array_agg(id ORDER BY slug) FROM crm_core_campaign"
            "  WHERE slug = ANY(%s)) AS campaigns",
            [FUNDS, CAMPAIGNS],
        )
        # Statuses: 1 in 20 refunded, 1 in 25 partly refunded, 1 in 30 pending
        # (not received); the rest completed. Six years of received dates.
        status = (
            "CASE WHEN g % 30 = 0 THEN 'pending' WHEN g % 20 = 0 THEN 'refunded'"
            " WHEN g % 25 = 0 THEN 'partially_refunded' ELSE 'completed' END"
        )
        _insert_select(
            conn,
            "crm_core_contribution",
            {
                "reference": "gen_random_uuid()",
                "contact_id": "bc.id",
                "total_amount": "5 + (g % 200)",
                "currency": "CASE WHEN g % 10 = 3 THEN 'EUR' ELSE 'GBP' END",
                "financial_type_id": "i.funds[1 + g % 4]",
                "campaign_id": "CASE WHEN g % 4 = 0 THEN NULL ELSE i.campaigns[1 + g % 3] END",
                "status": status,
                "received_at": (
                    "CASE WHEN g % 30 = 0 THEN NULL"
                    " ELSE now() - ((g * 37) % 2190) * interval '1 day' END"
                ),
                "refunded_amount": (
                    "CASE WHEN g % 30 = 0 THEN 0 WHEN g % 20 = 0 THEN 5 + (g % 200)"
                    " WHEN g % 25 = 0 THEN 1 ELSE 0 END"
                ),
                "receipt_status": "'sent'",
                "created_at": "now()",
                "updated_at": "now()",
            },
            f"generate_series(1, {CONTRIBUTIONS}) AS g CROSS JOIN bench_ids AS i"
            f" JOIN bench_contacts bc ON bc.n = (g::bigint * 7919) % {CONTACTS}",
        )
        seconds = time.perf_counter() - started
        conn.execute(
            "INSERT INTO bench_dataset (name, version, rows, seconds) VALUES"
            " ('reports', %s, %s, %s)",
            [DATASET_VERSION, CONTRIBUTIONS, seconds],
        )
    conn.execute("VACUUM ANALYZE crm_core_contribution")
    conn.execute("VACUUM ANALYZE crm_core_contact")
    return {"generated": True, "seconds": round(seconds, 1)}


def _ensure_memberships(conn):
    """Memberships of the bench contacts, one each, and their renewals in the history.

    MEMBERSHIPS memberships over four yearly types, started over six years
    (so ending from five years ago to a year ahead), status as the date
    rules would set it (new for 90 days, current, grace for 30 days after
    the end, then expired) but 1 in 15 cancelled, 1 in 97 pending and 1 in
    101 deceased. Four in five were renewed once: a system activity, as
    ``renew`` records it, whose old end date is the day before the start.
    """
    loaded = _loaded(conn, "memberships")
    if _present(conn, loaded, MEMBERSHIPS, "crm_core_membership"):
        return {"generated": False, "seconds": round(loaded[2], 1)}
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("DELETE FROM bench_dataset WHERE name = 'memberships'")
        conn.execute("DELETE FROM crm_core_activity WHERE source = 'bench-b7'")
        # DELETE, not TRUNCATE ... CASCADE: that would follow the foreign keys
        # (recurring contributions) to the contributions and empty them too.
        conn.execute("DELETE FROM crm_core_membership WHERE source = 'bench-b7'")
        for weight, (slug, name) in enumerate(MEMBERSHIP_TYPES, start=1):
            conn.execute(
                "INSERT INTO crm_core_membershiptype (name, slug, description, fee, currency,"
                " financial_type_id, duration_unit, duration_interval, period_type,"
                " grace_period_days, is_renewable_online, auto_renew, is_active, weight)"
                " SELECT %s, %s, '', 30, 'GBP', id, 'year', 1, 'rolling', 30, true, 'no',"
                " true, %s FROM crm_core_financialtype WHERE slug = 'bench-dues'"
                " ON CONFLICT (slug) DO NOTHING",
                [name, slug, weight * 10],
            )
        _number_contacts(conn)
        types = conn.execute(
            "SELECT array_agg(id ORDER BY slug) FROM crm_core_membershiptype WHERE slug = ANY(%s)",
            [[slug for slug, _name in MEMBERSHIP_TYPES]],
        ).fetchone()[0]
        start = "(current_date - ((g * 37) % 2190))"
        end = f"((({start}) + interval '1 year')::date - 1)"
        status = (
            "CASE WHEN g % 97 = 0 THEN 'pending' WHEN g % 101 = 0 THEN 'deceased'"
            " WHEN g % 15 = 0 THEN 'cancelled'"
            f" WHEN {end} >= current_date THEN"
            f"  CASE WHEN {start} > current_date - 90 THEN 'new' ELSE 'current' END"
            f" WHEN {end} >= current_date - 30 THEN 'grace' ELSE 'expired' END"
        )
        _insert_select(
            conn,
            "crm_core_membership",
            {
                "contact_id": "bc.id",
                "membership_type_id": f"(ARRAY{types}::bigint[])[1 + g % {len(types)}]",
                "join_date": f"{start} - 365 * (g % 4)",
                "start_date": start,
                "end_date": end,
                "status": status,
                "source": "'bench-b7'",
                "cancelled_at": "CASE WHEN g % 15 = 0 THEN now() END",
                "created_at": "now()",
                "updated_at": "now()",
            },
            f"generate_series(1, {MEMBERSHIPS}) AS g"
            f" JOIN bench_contacts bc ON bc.n = (g::bigint * 7919) % {CONTACTS}",
        )

        def day(expression):
            return f"to_char({expression}, 'YYYY-MM-DD')"

        year_before = day("(m.start_date - interval '1 year')::date")

        _insert_select(
            conn,
            "crm_core_activity",
            {
                "contact_id": "m.contact_id",
                "activity_type": "'system'",
                "subject": "'Membership renewed: bench'",
                "occurred_at": "m.start_date - interval '1 day'",
                "status": "'completed'",
                "changes": (
                    "jsonb_build_object("
                    f"'start_date', jsonb_build_array({year_before}, {day('m.start_date')}),"
                    f"'end_date', jsonb_build_array({day('m.start_date - 1')},"
                    f" {day('m.end_date')}),"
                    "'terms', jsonb_build_array(NULL, 1))"
                ),
                "source": "'bench-b7'",
                "created_at": "now()",
            },
            "crm_core_membership m WHERE m.id % 5 <> 0 AND m.status <> 'pending'",
        )
        seconds = time.perf_counter() - started
        _record(conn, "memberships", DATASET_VERSION, MEMBERSHIPS, seconds)
    conn.execute("VACUUM ANALYZE crm_core_membership")
    conn.execute("VACUUM ANALYZE crm_core_activity")
    return {"generated": True, "seconds": round(seconds, 1)}


def _ensure_events(conn):
    """EVENTS events over six years (half a year of them still ahead) and
    PARTICIPANTS places spread over them.

    A fifth of the events have no capacity limit. Past events: 1 in 10
    cancelled, no-show, waitlisted (never got a seat) and still registered
    (never checked in) each, the rest attended. Coming events: 1 in 10
    cancelled, waitlisted (a third of them with an open offer) and pending
    payment each, the rest registered. Most are attendees; 1 in 50 speakers
    (take a seat), 1 in 40 volunteers and 1 in 97 hosts (do not).
    """
    events, participants = _loaded(conn, "events"), _loaded(conn, "participants")
    if _present(conn, events, EVENTS, "crm_core_event") and _present(
        conn, participants, PARTICIPANTS, "crm_core_participant"
    ):
        return {"generated": False, "seconds": round(events[2], 1)}
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("DELETE FROM bench_dataset WHERE name IN ('events', 'participants')")
        conn.execute(
            "DELETE FROM crm_core_participant WHERE event_id IN"
            " (SELECT id FROM crm_core_event WHERE slug LIKE 'bench-event-%')"
        )
        conn.execute("DELETE FROM crm_core_event WHERE slug LIKE 'bench-event-%'")
        for weight, slug in enumerate(ROLES, start=1):
            conn.execute(
                "INSERT INTO crm_core_participantrole (name, slug, counts_towards_capacity,"
                " is_active, weight) VALUES (%s, %s, %s, true, %s) ON CONFLICT DO NOTHING",
                [slug.title(), slug, slug in ("attendee", "speaker"), weight * 10],
            )
        _insert_select(
            conn,
            "crm_core_event",
            {
                "title": "'Bench event ' || g",
                "slug": "'bench-event-' || g",
                "starts_at": (
                    "date_trunc('day', now()) + interval '18 hours'"
                    " - ((g * 389) % 2190 - 180) * interval '1 day'"
                ),
                "ends_at": (
                    "date_trunc('day', now()) + interval '20 hours'"
                    " - ((g * 389) % 2190 - 180) * interval '1 day'"
                ),
                "time_zone": "'Europe/London'",
                "capacity": "CASE WHEN g % 5 = 0 THEN NULL ELSE 150 + (g % 7) * 25 END",
                "max_seats_per_registration": "4",
                "waitlist_enabled": "true",
                "waitlist_offer_hours": "48",
                "currency": "'GBP'",
                "is_public": "true",
                "is_active": "true",
                "created_at": "now()",
                "updated_at": "now()",
            },
            f"generate_series(1, {EVENTS}) AS g",
        )
        conn.execute(
            "CREATE TEMP TABLE bench_events ON COMMIT DROP AS"
            " SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id, starts_at"
            " FROM crm_core_event WHERE slug LIKE 'bench-event-%'"
        )
        conn.execute("ALTER TABLE bench_events ADD PRIMARY KEY (n)")
        _number_contacts(conn)
        roles = conn.execute(
            "SELECT array_agg(id ORDER BY slug) FROM crm_core_participantrole WHERE slug = ANY(%s)",
            [sorted(ROLES)],
        ).fetchone()[0]
        attendee, host, speaker, volunteer = roles
        past = "e.starts_at < now()"
        status = (
            f"CASE WHEN g % 10 = 0 THEN 'cancelled' WHEN {past} THEN"
            "  CASE g % 10 WHEN 1 THEN 'no_show' WHEN 2 THEN 'waitlisted'"
            "  WHEN 3 THEN 'registered' ELSE 'attended' END"
            " ELSE CASE g % 10 WHEN 1 THEN 'waitlisted' WHEN 2 THEN 'pending_payment'"
            "  ELSE 'registered' END END"
        )
        registered_at = "e.starts_at - (1 + g % 60) * interval '1 day'"
        _insert_select(
            conn,
            "crm_core_participant",
            {
                "event_id": "e.id",
                "contact_id": "bc.id",
                "role_id": (
                    f"CASE WHEN g % 50 = 0 THEN {speaker} WHEN g % 40 = 0 THEN {volunteer}"
                    f" WHEN g % 97 = 0 THEN {host} ELSE {attendee} END"
                ),
                "fee_amount": "0",
                "status": status,
                "registration": "gen_random_uuid()",
                "registered_at": registered_at,
                "answers": "'{}'::jsonb",
                "waitlisted_at": f"CASE WHEN {status} = 'waitlisted' THEN {registered_at} END",
                "offer_expires_at": (
                    f"CASE WHEN {status} = 'waitlisted' AND NOT {past} AND g % 3 = 0"
                    " THEN e.starts_at - interval '1 day' END"
                ),
                "checked_in_at": f"CASE WHEN {status} = 'attended' THEN e.starts_at END",
                "cancelled_at": (
                    f"CASE WHEN g % 10 = 0 THEN {registered_at} + interval '1 day' END"
                ),
                "source": "'bench-b7'",
            },
            f"generate_series(1, {PARTICIPANTS}) AS g"
            f" JOIN bench_events e ON e.n = g % {EVENTS}"
            f" JOIN bench_contacts bc ON bc.n = (g::bigint * 7919 + 1) % {CONTACTS}",
        )
        seconds = time.perf_counter() - started
        _record(conn, "events", DATASET_VERSION, EVENTS, seconds)
        _record(conn, "participants", DATASET_VERSION, PARTICIPANTS, seconds)
    conn.execute("VACUUM ANALYZE crm_core_event")
    conn.execute("VACUUM ANALYZE crm_core_participant")
    return {"generated": True, "seconds": round(seconds, 1)}


# -- the same answers in hand-written SQL -------------------------------------------------

GIFT = "c.status IN ('completed', 'partially_refunded') AND c.received_at IS NOT NULL"

MONTH_SQL = (
    "SELECT date_trunc('month', c.received_at AT TIME ZONE %s) AS m, c.currency, count(*),"
    " sum(c.total_amount - c.refunded_amount) FROM crm_core_contribution c"
    f" WHERE {GIFT} GROUP BY 1, 2 ORDER BY 1, 2"
)
FUND_SQL = (
    "SELECT c.financial_type_id, f.name, c.currency, count(*),"
    " sum(c.total_amount - c.refunded_amount) FROM crm_core_contribution c"
    " JOIN crm_core_financialtype f ON f.id = c.financial_type_id"
    f" WHERE {GIFT} GROUP BY 1, 2, 3 ORDER BY 2, 1, 3"
)
CAMPAIGN_SQL = (
    "SELECT c.campaign_id, p.name, c.currency, count(*),"
    " sum(c.total_amount - c.refunded_amount) FROM crm_core_contribution c"
    " LEFT JOIN crm_core_campaign p ON p.id = c.campaign_id"
    f" WHERE {GIFT} GROUP BY 1, 2, 3 ORDER BY 2 NULLS LAST, 1, 3"
)
# One page of 50 rows and the count of all rows, as the report page asks.
LAPSED_SQL = (
    "WITH lapsed AS (SELECT c.contact_id, c.currency, p.display_name,"
    " max(c.received_at) AS last_gift,"
    " count(*) AS gifts,"
    " count(*) FILTER (WHERE c.received_at >= %(last)s) AS last_year_gifts,"
    " sum(c.total_amount - c.refunded_amount) FILTER (WHERE c.received_at >= %(last)s)"
    " AS last_year_total, sum(c.total_amount - c.refunded_amount) AS lifetime"
    f" FROM crm_core_contribution c JOIN crm_core_contact p ON p.id = c.contact_id"
    f" WHERE {GIFT} AND c.received_at < %(this)s AND NOT p.is_deleted"
    " AND NOT EXISTS (SELECT 1 FROM crm_core_contribution x WHERE x.contact_id = c.contact_id"
    "  AND x.status IN ('completed', 'partially_refunded') AND x.received_at >= %(cut)s)"
    " GROUP BY c.contact_id, c.currency, p.display_name {having})"
    " SELECT (SELECT count(*) FROM lapsed), l.contact_id, l.currency, l.display_name,"
    " l.last_gift,"
    " l.gifts, coalesce(l.last_year_total, 0), l.lifetime FROM lapsed l"
    " ORDER BY l.last_gift DESC, l.contact_id, l.currency LIMIT 50"
)


MEMBERSHIP_SQL = (
    "SELECT m.membership_type_id, t.name, m.status, count(*) FROM crm_core_membership m"
    " JOIN crm_core_contact p ON p.id = m.contact_id"
    " JOIN crm_core_membershiptype t ON t.id = m.membership_type_id"
    " WHERE NOT p.is_deleted GROUP BY t.weight, t.name, m.membership_type_id, m.status"
    " ORDER BY t.weight, t.name, m.membership_type_id, m.status"
)
# Renewed terms from the history (old end date in the period, not a first
# payment), terms not renewed from the memberships, per month of the end date.
RENEWALS_SQL = (
    "WITH renewed AS (SELECT left(a.changes -> 'end_date' ->> 0, 7) AS month, count(*) AS n"
    " FROM crm_core_activity a JOIN crm_core_contact p ON p.id = a.contact_id"
    " WHERE a.activity_type = 'system' AND a.changes ? 'terms' AND NOT p.is_deleted"
    " AND a.changes -> 'end_date' ->> 0 BETWEEN %(first)s AND %(last)s"
    " AND coalesce(a.changes -> 'status' ->> 0, '') <> 'pending' GROUP BY 1),"
    " lapsed AS (SELECT to_char(m.end_date, 'YYYY-MM') AS month, count(*) AS n"
    " FROM crm_core_membership m JOIN crm_core_contact p ON p.id = m.contact_id"
    " WHERE m.end_date BETWEEN %(first)s::date AND %(last)s::date"
    " AND m.inherited_from_id IS NULL AND NOT p.is_deleted"
    " AND m.status NOT IN ('pending', 'deceased') GROUP BY 1)"
    " SELECT to_date(month, 'YYYY-MM'), coalesce(r.n, 0) + coalesce(l.n, 0), coalesce(r.n, 0)"
    " FROM renewed r FULL JOIN lapsed l USING (month) ORDER BY month"
)
# The first page of 50 events, soonest first, and the count of all events:
# the page is picked first and only its events' participants are counted.
ATTENDANCE_SQL = (
    "SELECT (SELECT count(*) FROM crm_core_event), e.id, e.title, e.starts_at, e.capacity,"
    " p.* FROM (SELECT id, title, starts_at, capacity FROM crm_core_event"
    "  ORDER BY starts_at, id LIMIT 50) e"
    " CROSS JOIN LATERAL (SELECT"
    " count(*) FILTER (WHERE x.status IN ('pending_payment', 'registered', 'attended',"
    "  'no_show')),"
    " count(*) FILTER (WHERE x.status = 'registered'),"
    " count(*) FILTER (WHERE x.status = 'pending_payment'),"
    " count(*) FILTER (WHERE x.status = 'attended'),"
    " count(*) FILTER (WHERE x.status = 'no_show'),"
    " count(*) FILTER (WHERE x.status = 'cancelled'),"
    " count(*) FILTER (WHERE x.status = 'waitlisted'),"
    " count(*) FILTER (WHERE r.counts_towards_capacity AND (x.status IN ('pending_payment',"
    "  'registered', 'attended', 'no_show')"
    "  OR (x.status = 'waitlisted' AND x.offer_expires_at > %(now)s)))"
    " FROM crm_core_participant x JOIN crm_core_participantrole r ON r.id = x.role_id"
    " WHERE x.event_id = e.id) p ORDER BY e.starts_at, e.id"
)
# The same answer the way the selector used to ask it: every event's
# participants grouped, then the page. Timed alongside, for the record.
ATTENDANCE_GROUPED_SQL = (
    "SELECT count(*) OVER (), e.id, e.title, e.starts_at, e.capacity,"
    " coalesce(p.booked, 0), coalesce(p.registered, 0), coalesce(p.pending_payment, 0),"
    " coalesce(p.attended, 0), coalesce(p.no_show, 0), coalesce(p.cancelled, 0),"
    " coalesce(p.waitlisted, 0), coalesce(p.seats_taken, 0)"
    " FROM crm_core_event e LEFT JOIN (SELECT x.event_id,"
    " count(*) FILTER (WHERE x.status IN ('pending_payment', 'registered', 'attended',"
    "  'no_show')) AS booked,"
    " count(*) FILTER (WHERE x.status = 'registered') AS registered,"
    " count(*) FILTER (WHERE x.status = 'pending_payment') AS pending_payment,"
    " count(*) FILTER (WHERE x.status = 'attended') AS attended,"
    " count(*) FILTER (WHERE x.status = 'no_show') AS no_show,"
    " count(*) FILTER (WHERE x.status = 'cancelled') AS cancelled,"
    " count(*) FILTER (WHERE x.status = 'waitlisted') AS waitlisted,"
    " count(*) FILTER (WHERE r.counts_towards_capacity AND (x.status IN ('pending_payment',"
    "  'registered', 'attended', 'no_show')"
    "  OR (x.status = 'waitlisted' AND x.offer_expires_at > %(now)s))) AS seats_taken"
    " FROM crm_core_participant x JOIN crm_core_participantrole r ON r.id = x.role_id"
    " GROUP BY x.event_id) p ON p.event_id = e.id"
    " ORDER BY e.starts_at, e.id LIMIT 50"
)


def _totals_key(rows):
    return [(*row[:4], Decimal(row[4])) for row in rows]


def run():
    data = ensure_data()
    from django.db import connection
    from django.utils import timezone

    from crm_core.selectors import reports

    years = reports.ReportYears.containing()
    this_start = reports._start_of_day(years.this_year_start)
    last_start = reports._start_of_day(years.last_year_start)
    tz = timezone.get_current_timezone_name()
    connection.ensure_connection()
    cursor = connection.connection.cursor()

    def raw(sql, params):
        cursor.execute(sql, params)
        return cursor.fetchall()

    def ours_totals(group_by):
        rows = reports.contribution_totals(group_by)
        return [(r["key"], r["label"], r["currency"], r["count"], r["total"]) for r in rows]

    def ours_lapsed(kind):
        # As the report page does: its paginator reads the count of all rows
        # from the page's own query (COUNT(*) OVER ()), one query in all.
        paginator = reports.WindowCountPaginator(reports.lapsed_donors(kind), 50)
        page = list(paginator.get_page(1))
        count = paginator.count
        return [
            (
                count,
                r["contact_id"],
                r["currency"],
                r["display_name"],
                r["last_gift_at"],
                r["gift_count"],
                r["last_year_total"],
                r["lifetime_total"],
            )
            for r in page
        ]

    def hand_lapsed(kind):
        cut = this_start if kind == "lybunt" else last_start
        having = "HAVING count(*) FILTER (WHERE c.received_at >= %(last)s) > 0"
        sql = LAPSED_SQL.replace("{having}", having if kind == "lybunt" else "")
        rows = raw(sql, {"this": this_start, "last": last_start, "cut": cut})
        return [(*r[:6], Decimal(r[6]), Decimal(r[7])) for r in rows]

    def hand_month():
        rows = raw(MONTH_SQL, [tz])
        return [
            (m.date(), m.strftime("%Y-%m"), cur, n, Decimal(total)) for m, cur, n, total in rows
        ]

    def ours_memberships():
        types, _statuses = reports.memberships_by_type_and_status()
        return [
            (t["type_id"], t["name"], status, n) for t in types for status, n in t["counts"].items()
        ]

    # The renewals report's default period: the last reporting year.
    renewal_period = (years.last_year_start, years.this_year_start - datetime.timedelta(days=1))

    def ours_renewals():
        months, total = reports.renewal_rates(*renewal_period)
        return [(m.month, m.due, m.renewed) for m in [*months, total]]

    def hand_renewals():
        first, last = (day.isoformat() for day in renewal_period)
        months = raw(RENEWALS_SQL, {"first": first, "last": last})
        total = (None, sum(m[1] for m in months), sum(m[2] for m in months))
        return [*months, total]

    # The attendance page has no default dates: every event, soonest first.
    # "Now" (open waitlist offers hold a seat) is the same for both sides.
    now = timezone.now()
    attendance_columns = (
        "id",
        "title",
        "starts_at",
        "capacity",
        "booked",
        "registered",
        "pending_payment",
        "attended",
        "no_show",
        "cancelled",
        "waitlisted",
        "seats_taken",
    )

    def ours_attendance():
        paginator = reports.WindowCountPaginator(reports.event_attendance(now=now), 50)
        page = list(paginator.get_page(1))
        count = paginator.count
        return [(count, *(getattr(e, name) for name in attendance_columns)) for e in page]

    cases = {
        "contributions by month": (lambda: ours_totals("month"), hand_month),
        "contributions by fund": (
            lambda: ours_totals("fund"),
            lambda: _totals_key(raw(FUND_SQL, [])),
        ),
        "contributions by campaign": (
            lambda: ours_totals("campaign"),
            lambda: _totals_key(raw(CAMPAIGN_SQL, [])),
        ),
        "LYBUNT page": (lambda: ours_lapsed("lybunt"), lambda: hand_lapsed("lybunt")),
        "SYBUNT page": (lambda: ours_lapsed("sybunt"), lambda: hand_lapsed("sybunt")),
        "memberships by type and status": (ours_memberships, lambda: raw(MEMBERSHIP_SQL, [])),
        "renewal rate, last year": (ours_renewals, hand_renewals),
        "event attendance page": (ours_attendance, lambda: raw(ATTENDANCE_SQL, {"now": now})),
    }
    # Other hand-written SQL for the same answer, timed alongside but not the target.
    others = {
        "event attendance page": {
            "sql_grouped": lambda: raw(ATTENDANCE_GROUPED_SQL, {"now": now}),
        },
    }
    results = []
    for index, (name, (ours, hand)) in enumerate(cases.items(), start=1):
        mine, theirs = ours(), hand()
        same = _normalise(mine) == _normalise(theirs)
        contenders = {"selector": lambda _, ours=ours: ours(), "sql": lambda _, hand=hand: hand()}
        for other, query in others.get(name, {}).items():
            same = same and _normalise(query()) == _normalise(theirs)
            contenders[other] = lambda _, query=query: query()
        samples = compare_interleaved([None], contenders, rounds=ROUNDS)
        selector, sql = statistics.median(samples["selector"]), statistics.median(samples["sql"])
        ratio = selector / sql
        results.append(
            {
                "id": f"B7.{index}",
                "name": f"report {name}",
                "figure": f"ratio {ratio:.2f} ({ms(selector)} ms vs {ms(sql)} ms SQL)",
                "target": f"<= {RATIO_TARGET}, same answer",
                "passed": same and ratio <= RATIO_TARGET,
                "details": {
                    "same_answer": same,
                    "rows": len(mine),
                    "selector_ms": [ms(s) for s in samples["selector"]],
                    "sql_ms": [ms(s) for s in samples["sql"]],
                    **{
                        f"{other}_ms": [ms(s) for s in samples[other]]
                        for other in others.get(name, {})
                    },
                    "data": data,
                    "contributions": CONTRIBUTIONS,
                    "contacts": CONTACTS,
                    "memberships": MEMBERSHIPS,
                    "events": EVENTS,
                    "participants": PARTICIPANTS,
                },
            }
        )
    return results


def _normalise(rows):
    """Rows as comparable tuples: dates for months, Decimals rounded to the cent."""
    out = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, Decimal):
                cell = cell.quantize(Decimal("0.001"))
            elif hasattr(cell, "date") and hasattr(cell, "tzinfo") and cell.tzinfo is not None:
                cell = cell.timestamp()
            cells.append(cell)
        out.append(tuple(cells))
    return out
