"""Finding possible duplicate contacts for staff to review.

``find_duplicates()`` compares contacts with the configured rules and fills
the ``PossibleDuplicate`` queue. It never decides anything: staff merge a
pair or mark it "not a duplicate" (see ``crm_core.services.merge``).

Cost grows about linearly with the number of contacts because pairs are
only compared inside small blocks:

- contacts sharing an email address, or a phone number;
- contacts sharing a postcode and the first letter of the last name (or of
  the first name, for a typo in the last name's first letter);
- neighbours in the contacts sorted by "last first" name, by "first last"
  name and by organisation name (sorted neighbourhood, ``WINDOW`` wide).

A block larger than ``MAX_BLOCK`` is compared as a sorted neighbourhood too,
so one shared "info@" address cannot make the run quadratic.

Names are compared with rapidfuzz on the accent-, case- and space-folded
names that ``crm_core.names.name_key`` makes (the same folding
``match_contact`` uses). Names that agree but whose birth dates, both known,
differ by more than one typo are never flagged by a name rule.
"""

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.fuzz import ratio

from ..models import (
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    ContactPhone,
    DuplicateRule,
    DuplicateRuleKind,
    DuplicateStatus,
    PossibleDuplicate,
)
from ..names import name_key
from .activities import record_system_event

FOUND_BY = "duplicate finder"
# Neighbours compared on each side in a sorted-neighbourhood pass.
WINDOW = 6
# A block up to this size is compared all against all.
MAX_BLOCK = 12
# Words that do not tell organisations apart.
ORGANIZATION_NOISE = frozenset(
    {"the", "ltd", "limited", "inc", "llc", "plc", "co", "company", "gmbh", "ev", "sa", "and"}
)


# Street addresses (and towns) this alike count as the same.
STREET_SIMILARITY = 85
# Whole names this alike are flagged despite different birth dates.
CLOSE_NAMES = 95
# Added to a pair's reasons when its birth dates differ.
BIRTH_DATES_DIFFER = "birth_dates_differ"
NAME_RULES = frozenset({DuplicateRuleKind.NAME_POSTCODE, DuplicateRuleKind.NAME_ADDRESS})


@dataclass(frozen=True)
class Rule:
    """A rule as the finder uses it (``DuplicateRule`` rows are turned into these)."""

    kind: str
    score: int
    name_similarity: int = 0
    address_similarity: int = 0


# What a site starts with (the migration creates these rows).
DEFAULT_RULES = (
    Rule(DuplicateRuleKind.EMAIL, 100),
    Rule(DuplicateRuleKind.PHONE, 90, name_similarity=60),
    Rule(DuplicateRuleKind.NAME_POSTCODE, 85, name_similarity=85),
    Rule(DuplicateRuleKind.NAME_ADDRESS, 85, name_similarity=85, address_similarity=85),
    Rule(DuplicateRuleKind.ORGANIZATION_NAME, 80, name_similarity=92),
)


def configured_rules():
    """The active rules staff configured; the defaults when none were ever saved."""
    rows = list(DuplicateRule.objects.all())
    if not rows:
        return DEFAULT_RULES
    return tuple(
        Rule(row.kind, row.score, row.name_similarity, row.address_similarity)
        for row in rows
        if row.is_active
    )


@dataclass
class FinderResult:
    contacts: int = 0
    compared: int = 0
    found: int = 0
    created: int = 0
    updated: int = 0
    kept_closed: int = 0
    pairs: dict = field(default_factory=dict, repr=False)

    def as_dict(self):
        return {
            "contacts": self.contacts,
            "compared": self.compared,
            "found": self.found,
            "created": self.created,
            "updated": self.updated,
            "kept_closed": self.kept_closed,
        }


class _Person:
    __slots__ = (
        "pk",
        "is_person",
        "first",
        "last",
        "org",
        "birth",
        "emails",
        "phones",
        "postcodes",
        "streets",
        "cities",
    )

    def __init__(self, pk, kind, first_name, last_name, organization_name, household_name, birth):
        self.pk = pk
        self.is_person = kind == ContactKind.INDIVIDUAL
        self.first = name_key(first_name)
        self.last = name_key(last_name)
        group_name = organization_name if kind == ContactKind.ORGANIZATION else household_name
        self.org = (
            ""
            if self.is_person
            else " ".join(w for w in name_key(group_name).split() if w not in ORGANIZATION_NOISE)
        )
        self.birth = birth.isoformat() if birth else ""
        self.emails = ()
        self.phones = ()
        self.postcodes = ()
        self.streets = ()
        self.cities = ()


def _load(progress):
    people = {}
    rows = Contact.objects.values_list(
        "pk", "kind", "first_name", "last_name", "organization_name", "household_name", "birth_date"
    )
    for row in rows.iterator(chunk_size=5000):
        people[row[0]] = _Person(*row)
    progress("loaded contacts", len(people))
    details = {name: defaultdict(set) for name in ("emails", "phones", "postcodes", "streets")}
    details["cities"] = defaultdict(set)

    def read(model, *columns):
        query = model.objects.filter(contact__is_deleted=False).values_list("contact_id", *columns)
        return query.iterator(chunk_size=5000)

    for contact_id, email in read(ContactEmail, "email_normalized"):
        details["emails"][contact_id].add(email)
    for contact_id, number in read(ContactPhone, "number"):
        details["phones"][contact_id].add(number)
    for contact_id, postcode, street, line_2, city in read(
        ContactAddress, "postal_code_normalized", "street_address", "supplemental_address", "city"
    ):
        # The second line too: people swap the two lines.
        for value, name in (
            (postcode, "postcodes"),
            (name_key(street), "streets"),
            (name_key(line_2), "streets"),
            (name_key(city), "cities"),
        ):
            if value:
                details[name][contact_id].add(value)
    for name, values in details.items():
        for contact_id, found in values.items():
            person = people.get(contact_id)
            if person is not None:
                setattr(person, name, tuple(sorted(found)))
    progress("loaded details", len(people))
    return people


# -- blocking -------------------------------------------------------------------------------


def _pairs_in_block(ids, sort_key):
    if len(ids) <= MAX_BLOCK:
        return itertools.combinations(ids, 2)
    return _neighbours(sorted(ids, key=sort_key))


def _neighbours(ordered):
    for index, first in enumerate(ordered):
        for second in ordered[index + 1 : index + 1 + WINDOW]:
            yield first, second


def candidate_pairs(people, rules):
    """Yield pairs of ids worth comparing (a pair may come more than once)."""
    kinds = {rule.kind for rule in rules}
    by_name = {pk: (p.last, p.first, pk) for pk, p in people.items()}
    blocks = defaultdict(list)
    for pk, person in people.items():
        if DuplicateRuleKind.EMAIL in kinds:
            for email in person.emails:
                blocks["e", email].append(pk)
        if DuplicateRuleKind.PHONE in kinds:
            for phone in person.phones:
                blocks["p", phone].append(pk)
        if person.is_person and kinds & NAME_RULES:
            initials = {part[0] for part in (person.first, person.last) if part}
            for postcode in person.postcodes:
                # Either initial: names typed the wrong way round still meet.
                for initial in initials:
                    blocks["pi", postcode, initial].append(pk)
                if person.birth:
                    blocks["pb", postcode, person.birth].append(pk)
        if not person.is_person and person.org and DuplicateRuleKind.ORGANIZATION_NAME in kinds:
            blocks["o", person.org].append(pk)
    for ids in blocks.values():
        if len(ids) > 1:
            yield from _pairs_in_block(ids, by_name.__getitem__)
    del blocks
    persons = [p for p in people.values() if p.is_person and (p.first or p.last)]
    if kinds & NAME_RULES:
        for key in (
            lambda p: (p.last, p.first),
            lambda p: (p.first, p.last),
            lambda p: (p.streets[:1], p.birth),
        ):
            yield from _neighbours([p.pk for p in sorted(persons, key=key)])
    if DuplicateRuleKind.ORGANIZATION_NAME in kinds:
        groups = [p for p in people.values() if p.org]
        yield from _neighbours([p.pk for p in sorted(groups, key=lambda p: p.org)])


# -- comparing ------------------------------------------------------------------------------


def _part_similarity(one, other):
    if len(one) == 1 or len(other) == 1:
        # An initial agrees with a name that starts with it.
        return 90.0 if one[0] == other[0] else 0.0
    return JaroWinkler.normalized_similarity(one, other) * 100


def name_similarity(a, b):
    """(similarity 0-100, whether whole names agree) of two individuals.

    First and last names are compared separately, and crosswise for names
    entered the wrong way round. The similarity is the mean of the two
    parts when both sides have both, else of the parts both have; "whole"
    is False when only part of the name could be compared. ``best_part``
    is the best single part (for one name replaced or missing).
    """
    pairs = [(a.first, b.first), (a.last, b.last)]
    straight = [_part_similarity(x, y) for x, y in pairs if x and y]
    crossed = [_part_similarity(x, y) for x, y in ((a.first, b.last), (a.last, b.first)) if x and y]
    whole = len(straight) == 2
    best = max(
        sum(straight) / len(straight) if straight else 0.0,
        sum(crossed) / 2 if len(crossed) == 2 else 0.0,
    )
    return best, whole and len(straight) == 2, max(straight + crossed, default=0.0)


def birth_dates_conflict(a, b):
    """Both known and more than one typo apart (a swapped day and month, or two
    neighbouring digits swapped, count as one)."""
    if not a.birth or not b.birth or a.birth == b.birth:
        return False
    if OSA.distance(a.birth, b.birth) <= 1:
        return False
    year_a, month_a, day_a = a.birth.split("-")
    year_b, month_b, day_b = b.birth.split("-")
    return not (year_a == year_b and month_a == day_b and day_a == month_b)


def _best_ratio(some, others):
    return max((ratio(one, other) for one in some for other in others), default=0.0)


def _street_similarity(a, b):
    return _best_ratio(a.streets, b.streets)


def compare(a, b, rules):
    """The best score the rules give the pair and the rules that matched (or (0, []))."""
    reasons = []
    score = 0
    evidence = None
    conflict = False
    for rule in rules:
        kind = rule.kind
        matched = False
        if kind == DuplicateRuleKind.EMAIL:
            if set(a.emails).intersection(b.emails):
                matched = rule.name_similarity == 0 or _names_alike(a, b, rule)
        elif kind == DuplicateRuleKind.PHONE:
            if set(a.phones).intersection(b.phones):
                matched = rule.name_similarity == 0 or _names_alike(a, b, rule)
        elif kind in NAME_RULES:
            if not (a.is_person and b.is_person):
                continue
            if evidence is None:
                evidence = _name_evidence(a, b)
            similarity, whole, best_part, same_postcode, street, same_birth, city = evidence
            street_alike = street >= (rule.address_similarity or STREET_SIMILARITY)
            if birth_dates_conflict(a, b):
                # Different birth dates: a parent and child of the same name
                # at the same address, or a mistyped date. Only whole names
                # at the same postcode and street are flagged, and say so.
                matched = whole and similarity >= max(rule.name_similarity, CLOSE_NAMES)
                matched = matched and same_postcode and street_alike
                if matched:
                    conflict = True
            elif whole and similarity >= rule.name_similarity:
                if kind == DuplicateRuleKind.NAME_POSTCODE:
                    matched = same_postcode
                else:
                    matched = street >= rule.address_similarity
            elif best_part >= rule.name_similarity and same_birth:
                # Half a name (one missing, mistyped beyond recognition or
                # replaced) needs the same birth date and two of: postcode,
                # street address, town.
                matched = same_postcode + street_alike + (city >= STREET_SIMILARITY) >= 2
        elif kind == DuplicateRuleKind.ORGANIZATION_NAME and a.org and b.org:
            matched = ratio(a.org, b.org) >= rule.name_similarity
        if matched:
            reasons.append(str(kind))
            score = max(score, rule.score)
    if conflict and score:
        reasons.append(BIRTH_DATES_DIFFER)
        score = max(score - 10, 1)
    return score, reasons


def _name_evidence(a, b):
    similarity, whole, best_part = name_similarity(a, b)
    return (
        similarity,
        whole,
        best_part,
        bool(set(a.postcodes).intersection(b.postcodes)),
        _street_similarity(a, b),
        bool(a.birth) and a.birth == b.birth,
        _best_ratio(a.cities, b.cities),
    )


def _names_alike(a, b, rule):
    if a.is_person and b.is_person:
        return name_similarity(a, b)[0] >= rule.name_similarity
    if a.org and b.org:
        return ratio(a.org, b.org) >= rule.name_similarity
    return False


# -- the queue ------------------------------------------------------------------------------


def _ignore_progress(stage, count):
    return None


def find_duplicates(contacts=None, rules=None, *, progress=None):
    """Compare contacts with the rules and queue the pairs that match.

    ``contacts`` (ids or contacts) limits the queue to pairs involving at
    least one of them, still compared against every contact; None looks at
    everyone. ``rules`` is a sequence of ``Rule``; None means the configured
    ones (``configured_rules()``). Trashed contacts are left out.

    New pairs are queued as "to review"; pairs still to review get the new
    score and reasons. Pairs staff marked "not a duplicate" or merged are
    never touched, so they stay closed however often this runs. Safe to
    run while others work: rows are inserted ignoring conflicts.
    ``progress(stage, count)`` is called as the run advances.
    """
    progress = progress or _ignore_progress
    rules = tuple(configured_rules() if rules is None else rules)
    result = FinderResult()
    if not rules:
        return result
    only = None
    if contacts is not None:
        only = {getattr(c, "pk", c) for c in contacts}
    people = _load(progress)
    result.contacts = len(people)
    found = {}
    seen = set()
    for first, second in candidate_pairs(people, rules):
        if first > second:
            first, second = second, first
        if only is not None and not (first in only or second in only):
            continue
        # One int per pair: a set of tuples would take several times the memory.
        key = (first << 32) | second
        if key in seen:
            continue
        seen.add(key)
        result.compared += 1
        score, reasons = compare(people[first], people[second], rules)
        pair = (first, second)
        if score:
            found[pair] = (score, reasons)
        if result.compared % 100000 == 0:
            progress("compared", result.compared)
    del seen
    progress("compared", result.compared)
    result.found = len(found)
    result.pairs = found
    _save_pairs(found, result)
    progress("saved", result.created + result.updated)
    return result


def _save_pairs(found, result):
    existing = {}
    for pair_id, a_id, b_id, status, score, reasons in PossibleDuplicate.objects.values_list(
        "pk", "contact_a_id", "contact_b_id", "status", "score", "reasons"
    ).iterator(chunk_size=5000):
        existing[a_id, b_id] = (pair_id, status, score, reasons)
    new, changed = [], []
    for (a_id, b_id), (score, reasons) in found.items():
        known = existing.get((a_id, b_id))
        if known is None:
            new.append(
                PossibleDuplicate(
                    contact_a_id=a_id,
                    contact_b_id=b_id,
                    score=score,
                    reasons=reasons,
                    found_by=FOUND_BY,
                )
            )
        elif known[1] != DuplicateStatus.OPEN:
            result.kept_closed += 1
        elif (known[2], known[3]) != (score, reasons):
            changed.append(PossibleDuplicate(pk=known[0], score=score, reasons=reasons))
    with transaction.atomic():
        PossibleDuplicate.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
        # Only pairs still open: a pair closed meanwhile keeps its decision.
        for pair in changed:
            PossibleDuplicate.objects.filter(pk=pair.pk, status=DuplicateStatus.OPEN).update(
                score=pair.score, reasons=pair.reasons
            )
    result.created = len(new)
    result.updated = len(changed)


@transaction.atomic
def mark_not_duplicate(pair, *, actor=None):
    """Close a queued pair as "not a duplicate": later runs of the finder leave it so.

    Idempotent. A pair already merged stays merged (and ``ValidationError``
    says so).
    """
    pair = PossibleDuplicate.objects.select_for_update().get(pk=pair.pk)
    if pair.status == DuplicateStatus.MERGED:
        raise ValidationError(_("These contacts were merged already."))
    if pair.status != DuplicateStatus.NOT_DUPLICATE:
        pair.status = DuplicateStatus.NOT_DUPLICATE
        pair.save(update_fields=["status"])
        for contact, other in ((pair.contact_a, pair.contact_b), (pair.contact_b, pair.contact_a)):
            record_system_event(
                contact,
                _("Not a duplicate of %(name)s (contact %(id)s)") % {"name": other, "id": other.pk},
                actor=actor,
                source=FOUND_BY,
            )
    return pair
