"""A large, believable contact data set in its own PostgreSQL database.

``ensure_contacts(n)`` makes the ``crm_bench`` database hold exactly the data
set this module generates for ``n`` contacts, and does nothing when it already
does, so a second run of a benchmark starts measuring at once.

Rows are generated in Python (seeded, so every run and machine gets the same
names) and streamed with COPY; the secondary indexes are dropped during the
load and rebuilt afterwards, which is several times faster than maintaining
them row by row. Names, sort names and name keys come from
``crm_core.names.contact_names``, exactly as the contact services derive them.
"""

import os
import random
import time
from datetime import UTC, datetime, timedelta

import psycopg

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/crm_bench"
# Bump when the generator changes, so stale data sets are rebuilt.
DATASET_VERSION = 1
SEED = 20240501

CONTACT_TABLES = [
    "crm_core_contact",
    "crm_core_contactemail",
    "crm_core_contactphone",
]
EMAIL_DOMAINS = [
    ("gmail.com", 30),
    ("outlook.com", 12),
    ("hotmail.co.uk", 10),
    ("yahoo.co.uk", 8),
    ("btinternet.com", 6),
    ("icloud.com", 6),
    ("sky.com", 3),
    ("virginmedia.com", 3),
    ("riverside-trust.org.uk", 1),
    ("example.org", 1),
]
ORGANISATION_SUFFIXES = [
    "Ltd",
    "& Sons",
    "Group",
    "Partners",
    "Foundation",
    "Trust",
    "Associates",
    "Community Interest Company",
    "Building Services",
    "Bakery",
    "Solicitors",
    "Dental Practice",
]
# Real UK number ranges that phonenumbers accepts: mobile 07[4-9]xx xxxxxx and
# London / Manchester / Birmingham / Leeds geographic numbers.
PHONE_PREFIXES = ["+4474", "+4475", "+4477", "+4478", "+4479", "+44207", "+44161", "+44121"]


def database_url():
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def configure_django():
    """Point Django at the benchmark database and set it up (once per process)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    os.environ["DATABASE_URL"] = database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")
    django.setup()


def create_database_if_missing():
    url = psycopg.conninfo.conninfo_to_dict(database_url())
    name = url["dbname"]
    url["dbname"] = "postgres"
    with psycopg.connect(**url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def migrate():
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def name_pools():
    """(first names, weights), (last names, weights) from Faker's lists, mostly British."""
    from faker import Faker

    def collect(locales, attribute, extra_weight):
        pool = {}
        for locale, share in locales:
            values = getattr(Faker(locale).provider("faker.providers.person"), attribute)
            if isinstance(values, dict):
                total = sum(values.values())
                items = [(name, weight / total) for name, weight in values.items()]
            else:
                values = sorted(set(values))
                items = [(name, 1 / len(values)) for name in values]
            for name, weight in items:
                pool[name] = pool.get(name, 0) + weight * share
        names = sorted(pool)
        return names, [pool[name] + extra_weight for name in names]

    locales = [("en_GB", 0.5), ("en_US", 0.3), ("en_IE", 0.12), ("fr_FR", 0.04), ("de_DE", 0.04)]
    return (
        collect(locales, "first_names", 0.0002),
        collect(locales, "last_names", 0.0001),
    )


def _copy_text(value):
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _ascii_local_part(text):
    from crm_core.names import name_key

    return name_key(text).replace(" ", "")


def generate_rows(n, *, seed=SEED):
    """Yield (contact, emails, phones) COPY lines for ``n`` contacts."""
    from crm_core.names import contact_names

    rng = random.Random(seed)
    (first_names, first_weights), (last_names, last_weights) = name_pools()
    domains = [domain for domain, _ in EMAIL_DOMAINS]
    domain_weights = [weight for _, weight in EMAIL_DOMAINS]
    epoch = datetime(2015, 1, 1, tzinfo=UTC)
    names_cache = {}
    used_numbers = set()
    email_id = phone_id = 0
    batch = 10_000
    for start in range(1, n + 1, batch):
        stop = min(start + batch, n + 1)
        count = stop - start
        firsts = rng.choices(first_names, first_weights, k=count)
        lasts = rng.choices(last_names, last_weights, k=count)
        contacts, emails, phones = [], [], []
        for offset, pk in enumerate(range(start, stop)):
            roll = rng.random()
            first = last = organisation = household = ""
            if roll < 0.05:
                kind = "organization"
                organisation = f"{lasts[offset]} {rng.choice(ORGANISATION_SUFFIXES)}"
            elif roll < 0.06:
                kind = "household"
                household = f"The {lasts[offset]} Household"
            else:
                kind = "individual"
                first, last = firsts[offset], lasts[offset]
            key = (kind, first, last, organisation, household)
            names = names_cache.get(key)
            if names is None:
                names = contact_names(
                    kind=kind,
                    first_name=first,
                    last_name=last,
                    organization_name=organisation,
                    household_name=household,
                )
                names_cache[key] = names
            display, sort, name_key = names
            created = epoch + timedelta(seconds=rng.randrange(10 * 365 * 86400))
            deleted = rng.random() < 0.01
            contacts.append(
                "\t".join(
                    _copy_text(v)
                    for v in (
                        pk,
                        kind,
                        first,
                        last,
                        organisation,
                        household,
                        display,
                        sort,
                        name_key,
                        "bench",
                        created.isoformat(),
                        created.isoformat(),
                        "t" if deleted else "f",
                        created.isoformat() if deleted else None,
                    )
                )
            )
            if kind == "individual" or rng.random() < 0.5:
                if kind == "individual":
                    local = f"{_ascii_local_part(first)}.{_ascii_local_part(last)}"
                else:
                    local = rng.choice(["info", "hello", "office", "contact"])
                email = f"{local}{pk % 997}@{rng.choices(domains, domain_weights)[0]}"
                if kind != "individual":
                    email = f"{local}@{name_key.replace(' ', '')[:30]}.co.uk"
                email_id += 1
                emails.append(
                    f"{email_id}\t{_copy_text(email)}\t{_copy_text(email.lower())}\thome\tt\tf\t"
                    f"{created.isoformat()}\t{pk}"
                )
            if rng.random() < 0.7:
                while True:
                    prefix = rng.choice(PHONE_PREFIXES)
                    number = prefix + "".join(
                        rng.choice("0123456789") for _ in range(13 - len(prefix))
                    )
                    if number not in used_numbers:
                        break
                used_numbers.add(number)
                phone_id += 1
                phone_type = "mobile" if number.startswith("+447") else "landline"
                phones.append(
                    f"{phone_id}\t{number}\t\t{phone_type}\thome\tt\t{created.isoformat()}\t{pk}"
                )
        yield contacts, emails, phones


CONTACT_COPY = (
    "COPY crm_core_contact (id, kind, first_name, last_name, organization_name, household_name,"
    " display_name, sort_name, name_key, source, created_at, updated_at, is_deleted, deleted_at,"
    " prefix, middle_name, suffix, nickname, job_title, preferred_language, preferred_channel,"
    " do_not_email, do_not_phone, do_not_mail, do_not_sms, is_opt_out, is_deceased)"
    " FROM STDIN"
)
# The columns every generated contact shares, appended to each line.
CONTACT_CONSTANTS = "\t" + "\t".join([""] * 7 + ["f"] * 6)
EMAIL_COPY = (
    "COPY crm_core_contactemail (id, email, email_normalized, location, is_primary, on_hold,"
    " created_at, contact_id) FROM STDIN"
)
PHONE_COPY = (
    "COPY crm_core_contactphone (id, number, extension, phone_type, location, is_primary,"
    " created_at, contact_id) FROM STDIN"
)


def _loaded_version(conn):
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_dataset"
        " (name text PRIMARY KEY, version int NOT NULL, rows int NOT NULL,"
        " seconds float NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())"
    )
    return conn.execute(
        "SELECT version, rows, seconds FROM bench_dataset WHERE name = 'contacts'"
    ).fetchone()


def ensure_contacts(n):
    """Make sure the benchmark database holds the generated data set of ``n`` contacts.

    Returns {"generated": bool, "seconds": load time, "contacts", "emails", "phones"}.
    Creates the database and runs the migrations first when needed.
    """
    create_database_if_missing()
    configure_django()
    migrate()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        loaded = _loaded_version(conn)
        generated = False
        if loaded is None or tuple(loaded[:2]) != (DATASET_VERSION, n):
            seconds = _load(conn, n)
            generated = True
        else:
            seconds = loaded[2]
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in CONTACT_TABLES
        }
    return {
        "generated": generated,
        "seconds": round(seconds, 1),
        "contacts": counts["crm_core_contact"],
        "emails": counts["crm_core_contactemail"],
        "phones": counts["crm_core_contactphone"],
    }


def _secondary_indexes(conn):
    """CREATE INDEX statements of the contact tables' indexes that back no constraint."""
    return conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        [CONTACT_TABLES],
    ).fetchall()


def _load(conn, n):
    started = time.perf_counter()
    with conn.transaction():
        # Foreign keys are trusted here: ids are generated together, in order.
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        conn.execute("DELETE FROM bench_dataset WHERE name = 'contacts'")
        conn.execute(
            "TRUNCATE crm_core_contact, crm_core_contactemail, crm_core_contactphone,"
            " crm_core_contactaddress, crm_core_contact_tags, crm_core_customfieldvalue,"
            " crm_core_activity, crm_core_consentrecord, crm_core_groupmembership,"
            " crm_core_relationship, crm_core_possibleduplicate CASCADE"
        )
        indexes = _secondary_indexes(conn)
        for name, _definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        with conn.cursor() as cursor:
            with cursor.copy(CONTACT_COPY) as contacts_copy:
                buffered_emails, buffered_phones = [], []
                for contacts, emails, phones in generate_rows(n):
                    contacts_copy.write(
                        "".join(line + CONTACT_CONSTANTS + "\n" for line in contacts)
                    )
                    buffered_emails.extend(emails)
                    buffered_phones.extend(phones)
            with cursor.copy(EMAIL_COPY) as copy:
                for start in range(0, len(buffered_emails), 50_000):
                    copy.write(
                        "".join(f"{line}\n" for line in buffered_emails[start : start + 50_000])
                    )
            with cursor.copy(PHONE_COPY) as copy:
                for start in range(0, len(buffered_phones), 50_000):
                    copy.write(
                        "".join(f"{line}\n" for line in buffered_phones[start : start + 50_000])
                    )
        for _name, definition in indexes:
            conn.execute(definition)
        for table in CONTACT_TABLES:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
    # VACUUM sets the visibility map (index-only scans); ANALYZE gives the planner statistics.
    for table in CONTACT_TABLES:
        conn.execute(f"VACUUM ANALYZE {table}")
    seconds = time.perf_counter() - started
    conn.execute(
        "INSERT INTO bench_dataset (name, version, rows, seconds) VALUES ('contacts', %s, %s, %s)",
        [DATASET_VERSION, n, seconds],
    )
    return seconds
