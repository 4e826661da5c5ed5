"""Settings of the CRM apps, with their documented defaults.

A site overrides any of them in ``settings.CRM`` (a dict). Read them through
``crm_setting(name)`` only, so tests and sites can change them at run time.
"""

from django.conf import settings

DEFAULTS = {
    # Region used to read phone numbers typed without a country code.
    "DEFAULT_PHONE_REGION": "GB",
    # match_contact: candidates scoring at least this are returned.
    "MATCH_MIN_SCORE": 50,
    # upsert_contact updates a single candidate scoring at least this;
    # below it, a new contact is created and flagged as a possible duplicate.
    "MATCH_UPDATE_SCORE": 90,
    # Quick search: minimum trigram similarity for fuzzy names (PostgreSQL).
    "SEARCH_FUZZY_THRESHOLD": 0.3,
    "SEARCH_LIMIT": 20,
    # REST API throttling (DRF rate strings).
    "API_USER_RATE": "2000/hour",
    "API_ANON_RATE": "60/minute",
    # Longest free text accepted in notes, descriptions and consent wording.
    "MAX_TEXT_LENGTH": 20000,
}


def crm_setting(name):
    if name not in DEFAULTS:
        raise KeyError(f"Unknown CRM setting {name!r}")
    return getattr(settings, "CRM", {}).get(name, DEFAULTS[name])
