"""Settings of crm_payments, with their documented defaults.

A site sets any of them in ``settings.CRM`` (the same dict as crm_core's
settings); read them through ``payments_setting(name)`` only, so tests can
change them at run time. The example site fills the Stripe ones from the
environment (``STRIPE_SECRET_KEY``, ``STRIPE_PUBLISHABLE_KEY``,
``STRIPE_WEBHOOK_SECRET``, ``STRIPE_API_BASE``).
"""

from django.conf import settings

DEFAULTS = {
    # Dotted paths of the provider classes a site offers, in display order.
    "PAYMENT_PROVIDERS": [
        "crm_payments.providers.offline.OfflineProvider",
        "crm_payments.providers.stripe.StripeProvider",
    ],
    # Shown to a visitor who chose to pay later (bank details, cheque address).
    "OFFLINE_PAYMENT_INSTRUCTIONS": "",
    "STRIPE_SECRET_KEY": "",
    "STRIPE_PUBLISHABLE_KEY": "",
    "STRIPE_WEBHOOK_SECRET": "",
    # Where Stripe's API is; tests and staging point it at a local fake.
    "STRIPE_API_BASE": "https://api.stripe.com",
    # Pinned: our code reads the object shapes of this version only
    # (stripe-python 16.1's own default; see docs/payments.md).
    "STRIPE_API_VERSION": "2026-10-28.endive",
    # Webhooks signed longer ago than this (seconds) are refused.
    "STRIPE_WEBHOOK_TOLERANCE": 300,
    # Card-testing defence, in the spirit of CiviCRM's Firewall extension:
    # within VELOCITY_WINDOW seconds, an IP address is blocked after
    # MAX_DECLINES_PER_IP declined payments or MAX_FRAUD_PER_IP fraud signals,
    # an email address after MAX_DECLINES_PER_EMAIL declines; starting more
    # than MAX_STARTS_PER_IP / MAX_STARTS_PER_EMAIL payments is refused.
    # A block lasts BLOCK_SECONDS (staff may lift it earlier).
    "VELOCITY_WINDOW": 2 * 60 * 60,
    "MAX_DECLINES_PER_IP": 10,
    "MAX_FRAUD_PER_IP": 3,
    "MAX_DECLINES_PER_EMAIL": 5,
    "MAX_STARTS_PER_IP": 30,
    "MAX_STARTS_PER_EMAIL": 10,
    "BLOCK_SECONDS": 2 * 60 * 60,
    # Number of reverse proxies in front of the site that append to
    # X-Forwarded-For. 0 (the default): the header is ignored and the client
    # IP is REMOTE_ADDR, since a visitor can send any X-Forwarded-For.
    "TRUSTED_PROXY_COUNT": 0,
}


def payments_setting(name):
    if name not in DEFAULTS:
        raise KeyError(f"Unknown CRM payments setting {name!r}")
    return getattr(settings, "CRM", {}).get(name, DEFAULTS[name])
