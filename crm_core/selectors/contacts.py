"""Read queries over contacts shared by the admin, the API and commands."""

import re

from django.db import connection
from django.db.models import Case, IntegerField, Q, Value, When

from ..conf import crm_setting
from ..models import ConsentRecord, Contact, ContactEmail, ContactPhone
from ..phones import looks_like_phone, normalize_phone

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
