"""Repair what missed webhooks left: compare recent Stripe objects with our rows.

Webhooks can be lost (an endpoint down for longer than Stripe retries, a
secret rotated too early, an event type not enabled). ``reconcile`` lists
the checkout sessions, payment intents, invoices and refunds created since a
moment and passes each one to the same ``stripe_sync`` function a webhook
would have reached, so a pending payment that was paid, or a paid one that
was refunded, ends as the webhook would have left it. Idempotent: a second
run changes nothing. Run by ``manage.py crm_stripe_reconcile`` and by the
``reconcile_stripe_task`` task.
"""

import datetime
import logging
import re

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm_core.exceptions import CRMError

from ..conf import payments_setting
from ..exceptions import ProviderError, ProviderNotAvailable
from . import stripe_sync
from .stripe import client

logger = logging.getLogger("crm_payments.reconcile")
PAGE_SIZE = 100
# Stripe keeps events 30 days; further back than a year is a typo.
MAX_LOOKBACK = datetime.timedelta(days=366)
DURATION = re.compile(r"^\s*(\d{1,6})\s*([dhm])\s*$", re.IGNORECASE)
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(text, *, now=None):
    """``"3d"``, ``"12h"``, ``"90m"`` or an ISO date/date-time -> an aware datetime.

    Raises ``ValueError`` with a message for a person: anything else, a
    moment in the future, or more than a year back.
    """
    now = now or timezone.now()
    text = str(text or "").strip()
    match = DURATION.match(text)
    if match:
        amount, unit = int(match[1]), match[2].lower()
        if amount == 0:
            raise ValueError(_("Give a duration of more than zero, such as 3d."))
        try:
            since = now - datetime.timedelta(**{UNITS[unit]: amount})
        except OverflowError:
            since = None
    else:
        try:
            since = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                _(
                    "%(text)r is not a duration or a date: give 3d, 12h, 90m or an ISO "
                    "date such as 2026-01-31."
                )
                % {"text": text[:40]}
            ) from None
        if timezone.is_naive(since):
            since = timezone.make_aware(since)
        if since > now:
            raise ValueError(_("%(text)s is in the future.") % {"text": text[:40]})
    if since is None or now - since > MAX_LOOKBACK:
        raise ValueError(_("Reconcile at most a year back."))
    return since


def _listings(since):
    """(kind, sync function, listing) in the order that settles payments before refunds."""
    created = {"gte": int(since.timestamp())}
    v1 = client().v1

    def expand(fields):
        return [f"data.{field}" for field in fields]

    return [
        (
            _("checkout session"),
            stripe_sync.sync_checkout_session,
            lambda: v1.checkout.sessions.list(
                {
                    "created": created,
                    "limit": PAGE_SIZE,
                    "expand": expand(stripe_sync.CHECKOUT_SESSION_EXPAND),
                }
            ),
        ),
        (
            _("payment intent"),
            stripe_sync.sync_payment_intent,
            lambda: v1.payment_intents.list(
                {
                    "created": created,
                    "limit": PAGE_SIZE,
                    "expand": expand(stripe_sync.PAYMENT_INTENT_EXPAND),
                }
            ),
        ),
        (
            _("invoice"),
            stripe_sync.sync_invoice,
            lambda: v1.invoices.list(
                {
                    "created": created,
                    "limit": PAGE_SIZE,
                    "expand": expand(stripe_sync.INVOICE_EXPAND),
                }
            ),
        ),
        (
            _("refund"),
            stripe_sync.sync_refund,
            lambda: v1.refunds.list(
                {
                    "created": created,
                    "limit": PAGE_SIZE,
                    "expand": expand(stripe_sync.REFUND_EXPAND),
                }
            ),
        ),
    ]


def _fetch(since):
    """Every recent object, read before anything is written (no Stripe call inside a lock)."""
    fetched = []
    try:
        for kind, sync, listing in _listings(since):
            fetched += [(kind, sync, obj) for obj in listing().auto_paging_iter()]
    except stripe.StripeError as error:
        raise ProviderError(
            _("Stripe could not be asked for recent payments: %(error)s")
            % {"error": error.user_message or str(error)}
        ) from None
    return fetched


def _apply(fetched):
    changes = []
    for kind, sync, obj in fetched:
        try:
            changes += sync(obj)
        except stripe_sync.NotOurs:
            continue
        except (CRMError, ValidationError) as error:
            message = getattr(error, "message", None) or "; ".join(error.messages)
            changes.append(
                _("Could not repair %(kind)s %(id)s: %(error)s")
                % {"kind": kind, "id": obj["id"], "error": message}
            )
        except stripe.StripeError as error:
            changes.append(
                _("Could not repair %(kind)s %(id)s: Stripe said %(error)s")
                % {"kind": kind, "id": obj["id"], "error": error.user_message or str(error)}
            )
    return changes


def reconcile(since, *, dry_run=False):
    """Bring our payments in line with Stripe's objects created since ``since`` (aware datetime).

    Returns the changes, as lines a person reads ("Payment cs_... : pending
    -> succeeded ..."). ``dry_run``: the same work in a transaction that is
    rolled back, so the lines are exactly what a real run would do and
    nothing is saved. Raises ``ProviderNotAvailable`` when Stripe is not
    configured and ``ProviderError`` when it cannot be listed.
    """
    if not payments_setting("STRIPE_SECRET_KEY"):
        raise ProviderNotAvailable(_("Stripe is not configured (STRIPE_SECRET_KEY is empty)."))
    if not dry_run:
        # Events that failed or were left half done first: they may concern
        # objects this listing does not cover (disputes, subscriptions).
        from .stripe_webhooks import retry_unfinished_events

        retried = retry_unfinished_events(since)
        if retried:
            logger.info("Retried %d unfinished webhook event(s)", retried)
    fetched = _fetch(since)
    if not dry_run:
        changes = _apply(fetched)
    else:
        with transaction.atomic():
            changes = _apply(fetched)
            transaction.set_rollback(True)
    for change in changes:
        logger.info("%s%s", "[dry run] " if dry_run else "", change)
    return changes
