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
    # Quick search on PostgreSQL: least pg_trgm word similarity between each
    # word typed and a word of the name. One typo in a short word scores low
    # ("jonh" for John: 0.4, "kiraa" for Kiara: 0.33); bench/b5_search.py on a
    # million contacts found 0.25 keeps the right name among the candidates
    # 9 times in 10 with p95 under 100 ms (pg_trgm's own default is 0.6).
    "SEARCH_FUZZY_THRESHOLD": 0.25,
    "SEARCH_LIMIT": 20,
    # REST API throttling (DRF rate strings).
    "API_USER_RATE": "2000/hour",
    "API_ANON_RATE": "60/minute",
    # Longest free text accepted in notes, descriptions and consent wording.
    "MAX_TEXT_LENGTH": 20000,
    # What a full refund does to what the contribution paid for: "cancel"
    # cancels the membership term / registration, "keep" leaves it. A partial
    # refund never cancels anything.
    "REFUND_MEMBERSHIP_POLICY": "cancel",
    "REFUND_REGISTRATION_POLICY": "cancel",
    # How long a signed personal link (renew, update my details, manage my
    # subscriptions) sent by email stays valid, in seconds.
    "CONTACT_LINK_MAX_AGE": 60 * 60 * 24 * 60,
    # Reports (LYBUNT/SYBUNT): month a reporting year starts in; 1 = calendar
    # years, 4 = April to March.
    "FISCAL_YEAR_START_MONTH": 1,
    # Where links in emails point: the public site's address ("https://example.org").
    # Blank: WAGTAILADMIN_BASE_URL.
    "SITE_BASE_URL": "",
    # Paths (on SITE_BASE_URL) of the pages holding the forms that personal
    # links in mailings open, signed for the contact: {{ renew_url }},
    # {{ update_details_url }}, {{ manage_subscriptions_url }}. Blank: the
    # token renders as nothing.
    "PERSONAL_LINK_PAGES": {"renew": "", "update_details": "", "manage_subscriptions": ""},
    # Mailings (docs/communications.md): recipients claimed per batch, messages
    # per second per worker (0: no limit), seconds after which a batch claimed
    # by a worker that stopped answering is sent again (keep it well above
    # MAILING_BATCH_SIZE / MAILING_RATE_LIMIT), seconds a task sends before it
    # re-enqueues itself.
    "MAILING_BATCH_SIZE": 100,
    "MAILING_RATE_LIMIT": 10,
    "MAILING_CLAIM_TIMEOUT": 15 * 60,
    "MAILING_TASK_TIME_BUDGET": 5 * 60,
    # Optional address for "List-Unsubscribe: <mailto:...>"; blank: only the link.
    "MAILING_UNSUBSCRIBE_MAILTO": "",
    # How long the unsubscribe link of a mailing keeps working, in seconds.
    "MAILING_UNSUBSCRIBE_MAX_AGE": 60 * 60 * 24 * 365 * 2,
    # Lines printed under the organisation's name at the top of PDF receipts
    # and giving statements: address, charity or tax number, and so on.
    "RECEIPT_ISSUER_LINES": [],
    # Membership renewal reminders (crm_send_reminders): days before a term
    # ends to remind the member, and days after it ended (while in grace) to
    # remind them again. Each reminder goes out once per term.
    "MEMBERSHIP_REMINDER_DAYS_BEFORE": [30, 7],
    "MEMBERSHIP_REMINDER_DAYS_AFTER": [7],
}


def crm_setting(name):
    if name not in DEFAULTS:
        raise KeyError(f"Unknown CRM setting {name!r}")
    return getattr(settings, "CRM", {}).get(name, DEFAULTS[name])
