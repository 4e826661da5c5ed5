"""Fixtures shared by the payment tests (loaded by tests/conftest.py).

No test touches the network: Stripe's API is either mocked with ``responses``
or served by the local fake (``crm_payments.providers.stripe_fake``) on
127.0.0.1, and webhooks are signed with stripe's own signature code.
"""

import json
import time
from decimal import Decimal

import pytest
import stripe

from crm_core.services import contributions as contribution_services

WEBHOOK_SECRET = "whsec_test_secret"
SECRET_KEY = "sk_test_crm"


@pytest.fixture
def stripe_settings(settings):
    """Stripe configured with test keys, pointing at an address nothing listens on.

    Tests mock that address with ``responses`` (or use ``fake_stripe``).
    """
    settings.CRM = {
        **getattr(settings, "CRM", {}),
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_crm",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    }
    return settings


def sign_webhook(payload, *, secret=WEBHOOK_SECRET, timestamp=None):
    """(body bytes, Stripe-Signature header) for an event payload (dict or text)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body}", secret)
    return body.encode(), f"t={timestamp},v1={signature}"


@pytest.fixture
def pending_donation(db):
    """A pending GBP 25.00 donation contribution of a new contact."""
    from tests.factories import ContactFactory

    return contribution_services.create_pending(
        ContactFactory(),
        currency="GBP",
        lines=[{"kind": "donation", "amount": Decimal("25.00"), "label": "Donation"}],
        source="tests",
    )


@pytest.fixture
def fake_stripe(settings):
    """The local Stripe fake (``crm_payments.providers.stripe_fake``) on a free 127.0.0.1 port.

    Settings as ``stripe_settings``, with ``STRIPE_API_BASE`` pointing at the
    fake. Yields the ``FakeStripe``: tests drive customers' and banks' actions
    through it (``pay``, ``decline``, ``renew``...) and read its ``events``.
    """
    from crm_payments.providers.stripe_fake import FakeStripe

    fake = FakeStripe(api_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET)
    fake.start()
    settings.CRM = {
        **getattr(settings, "CRM", {}),
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_crm",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": fake.url,
    }
    try:
        yield fake
    finally:
        fake.stop()
