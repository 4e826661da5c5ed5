"""Stripe: Checkout Sessions for one-off payments and subscriptions.

With ``stripe_webhooks.py``, the only module that imports the stripe SDK.
Every call goes through ``client()``: the API version pinned in settings, the
base address from ``STRIPE_API_BASE`` (tests point it at a local fake).
"""

import stripe
from django.utils.translation import gettext_lazy

from crm_core.models import PaymentMethod

from ..conf import payments_setting
from .base import PaymentProvider


def client():
    """A StripeClient configured from settings (new each call: settings may change)."""
    return stripe.StripeClient(
        payments_setting("STRIPE_SECRET_KEY"),
        stripe_version=payments_setting("STRIPE_API_VERSION"),
        base_addresses={"api": payments_setting("STRIPE_API_BASE")},
        max_network_retries=2,
    )


class StripeProvider(PaymentProvider):
    identifier = "stripe"
    verbose_name = gettext_lazy("Card (Stripe)")
    payment_method = PaymentMethod.CARD
    supports_recurring = True

    def is_configured(self):
        return bool(payments_setting("STRIPE_SECRET_KEY"))
