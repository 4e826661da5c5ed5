"""B7: staff report aggregations over 3,000,000 contributions on PostgreSQL.

Each contribution report selector of ``crm_core.selectors.reports`` is timed
in-process through the ORM against a hand-written SQL aggregate computing
the same answer, sent on the same connection through a raw cursor,
interleaved after a warm-up (``bench.timing.compare_interleaved``). The
answers are compared (the benchmark fails if they differ) and the ratio of
the medians is reported, target <= 1.5.

The data set (1,000,000 contacts, 3,000,000 contributions over six years,
two currencies, four funds, three campaigns, some refunded, partially
refunded and pending) is generated once with ``INSERT ... SELECT
generate_series`` into the database ``crm_bench_reports`` (or
``BENCH_DATABASE_URL``) and reused by later runs.
"""

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


def _loaded(conn):
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_dataset"
        " (name text PRIMARY KEY, version int NOT NULL, rows int NOT NULL,"
        " seconds float NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())"
    )
    return conn.execute(
        "SELECT version, rows, seconds FROM bench_dataset WHERE name = 'reports'"
    ).fetchone()


def ensure_data():
    """Generate the data set unless this version and size is already there."""
    create_database_if_missing()
    configure_django()
    migrate()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        loaded = _loaded(conn)
        if loaded and tuple(loaded[:2]) == (DATASET_VERSION, CONTRIBUTIONS):
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
            # Numbered contacts, joined on the number: indexing a million-element
            # array once per generated row would detoast it every time.
            conn.execute(
                "CREATE TEMP TABLE bench_contacts AS"
                " SELECT (row_number() OVER (ORDER BY id) - 1)::int AS n, id"
                " FROM crm_core_contact ORDER BY id LIMIT %s",
                [CONTACTS],
            )
            conn.execute("ALTER TABLE bench_contacts ADD PRIMARY KEY (n)")
            conn.execute("ANALYZE bench_contacts")
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
    }
    results = []
    for index, (name, (ours, hand)) in enumerate(cases.items(), start=1):
        mine, theirs = ours(), hand()
        same = _normalise(mine) == _normalise(theirs)
        samples = compare_interleaved(
            [None],
            {"selector": lambda _, ours=ours: ours(), "sql": lambda _, hand=hand: hand()},
            rounds=ROUNDS,
        )
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
                    "data": data,
                    "contributions": CONTRIBUTIONS,
                    "contacts": CONTACTS,
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
