"""Read queries over contacts shared by the admin, the API and commands."""

import re

from django.db import connection, connections, transaction
from django.db.models import Case, IntegerField, Q, Value, When

from ..conf import crm_setting
from ..models import ConsentRecord, Contact, ContactEmail, ContactPhone
from ..phones import looks_like_phone, normalize_phone

# Least pg_trgm word similarity between each word typed and a contact's name.
# One typo near the start of a short word scores little ("kiraa" for "Kiara":
# 0.33, "jonh" for "John": 0.4); pg_trgm's default threshold (0.6) misses
# those. Measured by bench/b5_search.py on a million contacts: 0.25 finds the
# misspelt name among the candidates 9 times in 10 at a p95 under 60 ms; 0.2
# finds a few more but costs half as much again.
NAME_WORD_THRESHOLD = 0.25
# Shorter words are matched as the start of a name word instead ("smi" finds
# Smith): at the threshold above they would match nearly every name, and a
# two- or three-letter word has no room for a typo anyway.
MIN_FUZZY_WORD = 4
# Words of a name query that are matched; more add cost, not precision.
MAX_NAME_WORDS = 5


def _is_postgres():
    return connection.vendor == "postgresql"


def _clean_query(query):
    return " ".join((query or "").split())[:200]


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

    On PostgreSQL how fuzzy depends on ``pg_trgm.word_similarity_threshold``
    in the session; ``search_contacts`` sets it to ``NAME_WORD_THRESHOLD``.
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
    """Quick search, best matches first: a list of at most ``limit`` contacts.

    On PostgreSQL runs in a transaction (joining the caller's, if any) that
    sets ``pg_trgm.word_similarity_threshold`` to ``NAME_WORD_THRESHOLD``
    until it ends.
    """
    queryset = Contact.objects.all() if queryset is None else queryset
    limit = limit or crm_setting("SEARCH_LIMIT")
    matches = search_filter(queryset, query)
    query = _clean_query(query)
    if not (_is_postgres() and _is_name_query(query)):
        matches = matches.annotate(
            rank=Case(
                When(display_name__istartswith=query, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            )
        ).order_by("-rank", "sort_name", "pk")
        return list(matches[:limit])

    from django.contrib.postgres.search import TrigramSimilarity, TrigramWordSimilarity
    from django.db.models.functions import Greatest

    matches = matches.annotate(
        rank=Greatest(
            TrigramSimilarity("display_name", query),
            TrigramWordSimilarity(query, "display_name"),
        )
    ).order_by("-rank", "sort_name", "pk")
    with transaction.atomic(using=matches.db, savepoint=False):
        with connections[matches.db].cursor() as cursor:
            cursor.execute(
                "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
                [str(NAME_WORD_THRESHOLD)],
            )
        return list(matches[:limit])


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
