"""Read queries over contacts shared by the admin, the API and commands."""

from django.db import connection
from django.db.models import Case, IntegerField, Q, Value, When

from ..conf import crm_setting
from ..models import ConsentRecord, Contact, ContactEmail, ContactPhone
from ..phones import looks_like_phone, normalize_phone


def _is_postgres():
    return connection.vendor == "postgresql"


def search_filter(queryset, query):
    """Restrict ``queryset`` to contacts matching a quick-search ``query``.

    An email (or its start) matches email addresses; something that looks
    like a phone number matches phones; anything else matches names
    (people, organisations, households). On PostgreSQL names match fuzzily
    through trigram indexes, so "Jonh Smiht" finds John Smith; SQLite
    matches every word as a substring.
    """
    query = " ".join((query or "").split())[:200]
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
    if _is_postgres():
        return queryset.filter(
            Q(display_name__trigram_similar=query) | Q(display_name__trigram_word_similar=query)
        )
    condition = Q()
    for word in query.split():
        condition &= Q(display_name__icontains=word)
    return queryset.filter(condition)


def search_contacts(query, *, queryset=None, limit=None):
    """Quick search, best matches first: a list of at most ``limit`` contacts."""
    queryset = Contact.objects.all() if queryset is None else queryset
    limit = limit or crm_setting("SEARCH_LIMIT")
    matches = search_filter(queryset, query)
    query = " ".join((query or "").split())[:200]
    if _is_postgres() and "@" not in query and not looks_like_phone(query):
        from django.contrib.postgres.search import TrigramSimilarity, TrigramWordSimilarity
        from django.db.models.functions import Greatest

        matches = matches.annotate(
            rank=Greatest(
                TrigramSimilarity("display_name", query),
                TrigramWordSimilarity(query, "display_name"),
            )
        ).order_by("-rank", "sort_name", "pk")
    else:
        matches = matches.annotate(
            rank=Case(
                When(display_name__istartswith=query, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            )
        ).order_by("-rank", "sort_name", "pk")
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
