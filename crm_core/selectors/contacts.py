"""Read queries over contacts shared by the admin, the API and commands."""

import datetime
import re
from decimal import Decimal

from django.db import connection
from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When, Window
from django.utils import timezone

from ..conf import crm_setting
from ..models import (
    ConsentRecord,
    Contact,
    ContactEmail,
    ContactKind,
    ContactPhone,
    Contribution,
    DuplicateStatus,
    Membership,
    Participant,
    PossibleDuplicate,
    RecurringContribution,
    Relationship,
)
from ..phones import looks_like_phone, normalize_phone
from .contributions import GIFT_STATUSES, KEPT_AMOUNT

# How fuzzy name search is on PostgreSQL comes from the SEARCH_FUZZY_THRESHOLD
# setting (default 0.25), applied to every connection by
# ``set_search_threshold`` below; see crm_core/conf.py for how it was chosen.
# Shorter words are matched as the start of a name word instead ("smi" finds
# Smith): at the threshold above they would match nearly every name, and a
# two- or three-letter word has no room for a typo anyway.
MIN_FUZZY_WORD = 4
# Words of a name query that are matched; more add cost, not precision.
MAX_NAME_WORDS = 5


def _is_postgres():
    return connection.vendor == "postgresql"


def _clean_query(query):
    # A NUL is no text to search for, and PostgreSQL refuses it in a query (a 500).
    return " ".join((query or "").replace("\x00", " ").split())[:200]


def _is_name_query(query):
    return "@" not in query and not looks_like_phone(query)


def name_word_start_pattern(word):
    """PostgreSQL regular expression: a word of the name starts with ``word``.

    Spelled so that pg_trgm can answer it from the trigram index (``\\W`` or
    ``\\m`` would make PostgreSQL scan the whole table).
    """
    return "(^|[ -])" + re.escape(word)


def search_filter(queryset, query):
    """Restrict ``queryset`` to contacts matching a quick-search ``query``.

    An email (or its start) matches email addresses; something that looks
    like a phone number matches phones; anything else matches names
    (people, organisations, households). On PostgreSQL every word of the
    query must match a word of the name fuzzily (trigram word similarity,
    through the trigram index), so "Jonh Smiht" finds John Smith and "smi"
    finds the Smiths; SQLite matches every word as a substring.

    On PostgreSQL how fuzzy depends on ``pg_trgm.word_similarity_threshold``,
    which ``set_search_threshold`` sets on every new connection.
    """
    query = _clean_query(query)
    if not query:
        return queryset.none()
    if "@" in query:
        emails = ContactEmail.objects.filter(email_normalized__startswith=query.lower())
        return queryset.filter(pk__in=emails.values("contact_id"))
    if looks_like_phone(query):
        try:
            number = normalize_phone(query)
            phones = ContactPhone.objects.filter(number=number)
        except Exception:  # noqa: BLE001 - a partial number is still worth searching
            digits = "".join(ch for ch in query if ch.isdigit())
            phones = ContactPhone.objects.filter(number__endswith=digits)
        return queryset.filter(pk__in=phones.values("contact_id"))
    condition = Q()
    if _is_postgres():
        # One condition per word, each answered by the trigram index: far
        # fewer candidates than similarity to the whole query, and a typo in
        # one word cannot be outvoted by the other words.
        for word in query.split()[:MAX_NAME_WORDS]:
            if len(word) < MIN_FUZZY_WORD:
                condition &= Q(display_name__iregex=name_word_start_pattern(word))
            else:
                condition &= Q(display_name__trigram_word_similar=word)
        return queryset.filter(condition)
    for word in query.split():
        condition &= Q(display_name__icontains=word)
    return queryset.filter(condition)


def search_contacts(query, *, queryset=None, limit=None):
    """Quick search, best matches first: a list of at most ``limit`` contacts."""
    queryset = Contact.objects.all() if queryset is None else queryset
    limit = limit or crm_setting("SEARCH_LIMIT")
    matches = search_filter(queryset, query)
    query = _clean_query(query)
    if not _is_name_query(query):
        # Emails and phones match exactly or by prefix: nothing to rank.
        return list(matches.order_by("sort_name", "pk")[:limit])
    if _is_postgres():
        from django.contrib.postgres.search import TrigramSimilarity, TrigramWordSimilarity
        from django.db.models.functions import Greatest

        rank = Greatest(
            TrigramSimilarity("display_name", query),
            TrigramWordSimilarity(query, "display_name"),
        )
    else:
        rank = Case(
            When(display_name__istartswith=query, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        )
    return list(matches.annotate(rank=rank).order_by("-rank", "sort_name", "pk")[:limit])


def set_search_threshold(sender, connection, **kwargs):
    """``connection_created`` receiver: make fuzzy name search as fuzzy as configured.

    A session setting, so every caller of ``search_filter`` (API, admin,
    commands) gets the same results as ``search_contacts``.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pg_trgm.word_similarity_threshold', %s, false)",
            [str(float(crm_setting("SEARCH_FUZZY_THRESHOLD")))],
        )


def current_consent(contact):
    """``{(purpose, channel): ConsentRecord}``: the latest record of each, in one query."""
    state = {}
    for record in ConsentRecord.objects.filter(contact=contact).order_by(
        "purpose", "channel", "-recorded_at", "-id"
    ):
        state.setdefault((record.purpose, record.channel), record)
    return state


def contact_timeline(contact, *, limit=200):
    """The contact's activities and history, newest first."""
    return list(
        contact.activities.select_related("created_by", "assignee").order_by("-occurred_at", "-id")[
            :limit
        ]
    )


def contact_relationships(contact):
    """The contact's relationships seen from its side, newest first, in one query.

    ``[{"label": "Employee of", "other": Contact, "relationship": Relationship}, ...]``;
    relationships with a contact in the trash are left out.
    """
    rows = (
        Relationship.objects.filter(Q(contact_a=contact) | Q(contact_b=contact))
        .filter(contact_a__is_deleted=False, contact_b__is_deleted=False)
        .select_related("relationship_type", "contact_a", "contact_b")
    )
    return [
        {
            "label": row.relationship_type.label_a_to_b
            if row.contact_a_id == contact.pk
            else row.relationship_type.label_b_to_a,
            "other": row.contact_b if row.contact_a_id == contact.pk else row.contact_a,
            "relationship": row,
        }
        for row in rows
    ]


def contact_households(contact, relationships):
    """Households the contact belongs to (or, for a household, its members).

    Read from ``contact_relationships(contact)``: no query of its own.
    """
    if contact.kind == ContactKind.HOUSEHOLD:
        return [row for row in relationships if row["other"].kind != ContactKind.HOUSEHOLD]
    return [row for row in relationships if row["other"].kind == ContactKind.HOUSEHOLD]


def contact_memberships(contact):
    """All the contact's memberships with their type, latest first. One query."""
    return list(
        Membership.objects.filter(contact=contact)
        .select_related("membership_type")
        .order_by("-start_date", "-id")
    )


def contact_participations(contact):
    """The contact's event history (every status) with event and role. One query."""
    return list(
        Participant.objects.filter(contact=contact)
        .select_related("event", "role")
        .order_by("-event__starts_at", "-id")
    )


def contact_giving(contact, *, limit=20, today=None):
    """What the contact gave, in four queries whatever the number of contributions.

    ``{"totals": [{"currency", "lifetime", "this_year", "count"}], "last_gift":
    Contribution or None, "contributions": the ``limit`` latest (any status),
    "contribution_count": n, "recurring": [RecurringContribution, ...]}``.
    Totals are per currency (never summed across currencies) and count what
    was received and kept: completed and partially refunded contributions,
    less refunds. "This year" is the calendar year of ``today``.
    """
    today = today or timezone.localdate()
    year_start = timezone.make_aware(datetime.datetime(today.year, 1, 1))
    paid = Contribution.objects.filter(contact=contact, status__in=GIFT_STATUSES)
    totals = [
        {
            "currency": row["currency"],
            "lifetime": row["lifetime"] or Decimal("0"),
            "this_year": row["this_year"] or Decimal("0"),
            "count": row["count"],
        }
        for row in paid.values("currency")
        .annotate(
            lifetime=Sum(KEPT_AMOUNT),
            this_year=Sum(KEPT_AMOUNT, filter=Q(received_at__gte=year_start)),
            count=Count("pk"),
        )
        .order_by("currency")
    ]
    last_gift = paid.filter(received_at__isnull=False).order_by("-received_at", "-id").first()
    contributions = list(
        Contribution.objects.filter(contact=contact)
        .select_related("financial_type")
        .annotate(contribution_count=Window(Count("pk")))
        .order_by("-created_at", "-id")[:limit]
    )
    recurring = list(
        RecurringContribution.objects.filter(contact=contact).order_by("-created_at", "-id")
    )
    return {
        "totals": totals,
        "last_gift": last_gift,
        "contributions": contributions,
        "contribution_count": contributions[0].contribution_count if contributions else 0,
        "recurring": recurring,
    }


def contact_possible_duplicates(contact):
    """Open possible duplicates involving the contact, with both contacts. One query."""
    return list(
        PossibleDuplicate.objects.filter(
            Q(contact_a=contact) | Q(contact_b=contact), status=DuplicateStatus.OPEN
        )
        .filter(contact_a__is_deleted=False, contact_b__is_deleted=False)
        .select_related("contact_a", "contact_b")
        .order_by("-score", "-id")
    )
