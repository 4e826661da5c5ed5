"""Bring our rows in line with Stripe's objects, one function per kind of object.

The webhook handlers (``stripe_webhooks``) and the reconcile command
(``stripe_reconcile``) both end here, so a missed webhook is repaired by the
same code that would have handled it. Every ``sync_*`` function:

- takes an object AS RE-FETCHED FROM STRIPE (``fetch_*`` below, or a listing),
  never a webhook's payload, so the order in which events arrive does not
  matter: each one applies Stripe's current state;
- acts through ``crm_payments.services.payments`` (and crm_core's services),
  which are idempotent and act only from the expected prior state, inside
  one transaction: running it twice changes nothing the second time;
- returns a list of human-readable changes (empty when nothing changed);
- raises ``NotOurs`` when the object belongs to nothing we made (another
  integration on the same Stripe account), so callers can ignore it.

Objects are read with the shapes of the pinned API version
(``STRIPE_API_VERSION``): an invoice's subscription is at
``invoice.parent.subscription_details.subscription`` and its payments come
from ``expand=["payments"]``.
"""

import datetime
import uuid

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm_core.exceptions import InvalidTransition
from crm_core.models import LineItemKind, RecurringContribution, RecurringStatus
from crm_core.money import format_money, from_minor_units
from crm_core.services import contributions as core
from crm_core.services import memberships

from ..models import Payment, PaymentStatus, RefundStatus
from ..services import payments
from .stripe import client, object_id, value

PROVIDER = "stripe"
SOURCE = "payments:stripe"
# Declines that point at a stolen card or card testing, not a tired one.
FRAUD_DECLINE_CODES = frozenset({"fraudulent", "stolen_card", "lost_card", "pickup_card"})
REFUND_STATUS = {
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}
# Subscription states after which Stripe collects nothing more.
SUBSCRIPTION_FAILED = ("unpaid", "incomplete_expired")


class NotOurs(Exception):
    """The Stripe object refers to no payment or standing order of ours."""


# -- reading Stripe objects -----------------------------------------------------------------


def metadata(obj):
    found = value(obj, "metadata")
    if found is None:
        return {}
    return found.to_dict() if hasattr(found, "to_dict") else dict(found)


def _reference(text):
    """A UUID from metadata, or None for anything else (metadata is text anyone could set)."""
    try:
        return uuid.UUID(str(text))
    except (TypeError, ValueError, AttributeError):
        return None


def _money(obj, field):
    currency = str(value(obj, "currency") or "").upper()
    try:
        return from_minor_units(value(obj, field), currency), currency
    except (ValidationError, KeyError, ValueError):
        return None, currency


def _timestamp(seconds):
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    # Stripe's clock may be a little ahead of ours; the core refuses the future.
    return min(moment, timezone.now())


# -- fetching (each handler re-reads its object; reconcile lists with the same expansions) --

# A subscription session's first invoice, with the PaymentIntent that paid it.
CHECKOUT_SESSION_EXPAND = ["payment_intent", "invoice.payments"]
PAYMENT_INTENT_EXPAND = ["latest_charge"]
CHARGE_EXPAND = ["refunds", "payment_intent"]
REFUND_EXPAND = ["payment_intent"]
INVOICE_EXPAND = ["payments"]


def fetch_checkout_session(session_id):
    return client().v1.checkout.sessions.retrieve(session_id, {"expand": CHECKOUT_SESSION_EXPAND})


def fetch_payment_intent(intent_id):
    return client().v1.payment_intents.retrieve(intent_id, {"expand": PAYMENT_INTENT_EXPAND})


def fetch_charge(charge_id):
    return client().v1.charges.retrieve(charge_id, {"expand": CHARGE_EXPAND})


def fetch_refund(refund_id):
    return client().v1.refunds.retrieve(refund_id, {"expand": REFUND_EXPAND})


def fetch_dispute(dispute_id):
    return client().v1.disputes.retrieve(dispute_id)


def fetch_invoice(invoice_id):
    return client().v1.invoices.retrieve(invoice_id, {"expand": INVOICE_EXPAND})


def fetch_subscription(subscription_id):
    return client().v1.subscriptions.retrieve(subscription_id)


# -- finding our rows -----------------------------------------------------------------------


def _payment(*, provider_id="", reference=None, intent_id="", charge_id=""):
    """Our Stripe payment named by any of these, or None."""
    stripe_payments = Payment.objects.filter(provider=PROVIDER)
    if provider_id:
        found = stripe_payments.filter(provider_id=provider_id).first()
        if found:
            return found
    reference = _reference(reference) if reference else None
    if reference:
        found = stripe_payments.filter(reference=reference).first()
        if found:
            return found
    if intent_id:
        found = stripe_payments.filter(payment_intent_id=intent_id).order_by("id").first()
        if found:
            return found
    if charge_id:
        return stripe_payments.filter(charge_id=charge_id).order_by("id").first()
    return None


def _payment_for_money(*, metadata_sources, intent_id="", charge_id=""):
    """The payment behind a PaymentIntent, charge, refund or dispute, or ``NotOurs``."""
    reference = None
    for source in metadata_sources:
        reference = metadata(source).get("crm_payment")
        if reference:
            break
    payment = _payment(reference=reference, intent_id=intent_id, charge_id=charge_id)
    if payment is None:
        raise NotOurs(_("No payment of ours for %(id)s.") % {"id": intent_id or charge_id})
    return payment


def _payment_or_invoice_first(*, metadata_sources, intent_id="", charge_id=""):
    """``_payment_for_money``, after syncing the invoice a PaymentIntent paid if need be.

    A subscription's PaymentIntents carry none of our metadata: the payment
    is ours only once ``sync_invoice`` made it. A refund or dispute of a
    renewal may be reported before the renewal's ``invoice.paid``; rather
    than ignore it (Stripe would not send it again), the invoice is synced
    first, as its own event would have done.
    """
    try:
        return _payment_for_money(
            metadata_sources=metadata_sources, intent_id=intent_id, charge_id=charge_id
        )
    except NotOurs:
        if not intent_id:
            raise
    try:
        listing = client().v1.invoice_payments.list(
            {"payment": {"type": "payment_intent", "payment_intent": intent_id}, "limit": 1}
        )
    except stripe.InvalidRequestError:
        # Stripe will not list it for us (another account's object): not ours.
        raise NotOurs(_("No payment of ours for %(id)s.") % {"id": intent_id}) from None
    invoice_ids = [object_id(value(entry, "invoice")) for entry in value(listing, "data") or []]
    if not any(invoice_ids):
        raise NotOurs(_("No payment of ours for %(id)s.") % {"id": intent_id})
    sync_invoice(fetch_invoice(next(filter(None, invoice_ids))))
    return _payment_for_money(
        metadata_sources=metadata_sources, intent_id=intent_id, charge_id=charge_id
    )


def _describe(payment, before):
    """A line for the report when the payment's status moved, else None."""
    if payment.status == before:
        return None
    contribution = payment.contribution
    contribution.refresh_from_db()
    return _(
        "Payment %(ref)s of %(money)s: %(old)s -> %(new)s (contribution %(id)s %(cstatus)s)"
    ) % {
        "ref": payment.provider_id or payment.reference,
        "money": format_money(payment.amount, payment.currency),
        "old": before,
        "new": payment.status,
        "id": contribution.pk,
        "cstatus": contribution.status,
    }


def _succeed(payment, **kwargs):
    before = payment.status
    updated = payments.mark_payment_succeeded(payment, source=SOURCE, **kwargs)
    return [line for line in [_describe(updated, before)] if line]


def _fail(payment, **kwargs):
    before = payment.status
    updated = payments.mark_payment_failed(payment, source=SOURCE, **kwargs)
    return [line for line in [_describe(updated, before)] if line]


def _cancel(payment, **kwargs):
    before = payment.status
    updated = payments.mark_payment_cancelled(payment, source=SOURCE, **kwargs)
    return [line for line in [_describe(updated, before)] if line]


def _decline(intent):
    """(reason, fraud) of a PaymentIntent's last failed attempt."""
    error = value(intent, "last_payment_error") or {}
    reason = value(error, "message") or value(error, "code") or _("The card was declined.")
    fraud = value(error, "decline_code") in FRAUD_DECLINE_CODES
    if value(intent, "latest_charge", "outcome", "type") == "blocked":
        fraud = True
    if value(error, "charge", "outcome", "type") == "blocked":
        fraud = True
    return str(reason), fraud


def _intent_paid(intent, payment):
    """Succeed ``payment`` from a succeeded PaymentIntent (one-off payments)."""
    return _succeed(
        payment,
        transaction_id=intent["id"],
        payment_intent_id=intent["id"],
        charge_id=object_id(value(intent, "latest_charge")),
    )


# -- checkout sessions ----------------------------------------------------------------------


def sync_checkout_session(session):
    """A Checkout Session: paid -> payment succeeded; expired -> cancelled; else unchanged.

    Subscription mode also links the standing order to its subscription
    (``set_recurring_processor``); completing the first contribution starts it.
    An asynchronous payment (bank debit) still processing stays pending; one
    that failed marks the payment failed.
    """
    payment = _payment(
        provider_id=session["id"],
        reference=metadata(session).get("crm_payment") or value(session, "client_reference_id"),
    )
    if payment is None:
        raise NotOurs(_("No payment of ours for %(id)s.") % {"id": session["id"]})
    changes = []
    status, paid = value(session, "status"), value(session, "payment_status")
    with transaction.atomic():
        if status == "expired":
            changes += _cancel(payment, reason=_("The checkout session expired."))
        elif status == "complete" and paid in ("paid", "no_payment_required"):
            if value(session, "mode") == "subscription":
                recurring = _recurring_from(metadata(session), payment)
                _lock_first(recurring)
                changes += _link_subscription(recurring, object_id(value(session, "subscription")))
                intent_id = _invoice_intent_id(value(session, "invoice"))
                changes += _succeed(
                    payment,
                    transaction_id=intent_id or payment.provider_id,
                    payment_intent_id=intent_id,
                )
            else:
                intent = value(session, "payment_intent")
                changes += _succeed(
                    payment,
                    transaction_id=object_id(intent),
                    payment_intent_id=object_id(intent),
                    charge_id=object_id(value(intent, "latest_charge")),
                )
        elif status == "complete" and value(session, "payment_intent", "status") in (
            "requires_payment_method",
            "canceled",
        ):
            reason, fraud = _decline(value(session, "payment_intent"))
            changes += _fail(payment, reason=reason, fraud=fraud)
    return changes


# -- payment intents and charges ------------------------------------------------------------


def sync_payment_intent(intent):
    """A PaymentIntent: succeeded -> payment succeeded; declined -> failed (fraud counted).

    A PaymentIntent Stripe made for a subscription's invoice carries none of
    our metadata and is ours only once ``sync_invoice`` recorded its id.
    """
    payment = _payment_for_money(metadata_sources=[intent], intent_id=intent["id"])
    status = value(intent, "status")
    with transaction.atomic():
        if status == "succeeded":
            return _intent_paid(intent, payment)
        if status == "requires_payment_method" and value(intent, "last_payment_error"):
            reason, fraud = _decline(intent)
            return _fail(payment, reason=reason, fraud=fraud)
        if status == "canceled":
            return _cancel(payment, reason=_("The payment was cancelled at Stripe."))
    return []


def _refund_lines(payment, refund):
    amount, _currency = _money(refund, "amount")
    if amount is None or amount <= 0:
        return []
    before = payment.refunds.filter(provider_id=refund["id"]).values_list("status", "applied_at")
    before = list(before)
    result = payments.record_provider_refund(
        payment,
        provider_id=refund["id"],
        amount=amount,
        status=REFUND_STATUS.get(value(refund, "status"), RefundStatus.PENDING),
        reference=str(_reference(metadata(refund).get("crm_refund")) or ""),
        reason=value(refund, "reason") or "",
        source=SOURCE,
    )
    after = [(result.status, result.applied_at)]
    if before == after:
        return []
    return [
        _("Refund %(id)s of %(money)s: %(status)s (contribution %(cid)s)")
        % {
            "id": refund["id"],
            "money": format_money(result.amount, result.currency),
            "status": result.status,
            "cid": result.contribution_id,
        }
    ]


def _settle_before_refund(payment, intent):
    """A refund proves the charge succeeded: record that first, whatever the order of events."""
    if payment.status == PaymentStatus.SUCCEEDED or value(intent, "status") != "succeeded":
        return []
    return _intent_paid(intent, payment)


def sync_charge(charge):
    """A charge's refunds (``charge.refunded``): each recorded once, ours matched by metadata.

    Refunds made in Stripe's dashboard are recorded as new refunds; ours
    (metadata ``crm_refund``) update the refund we started.
    """
    intent = value(charge, "payment_intent")
    payment = _payment_or_invoice_first(
        metadata_sources=[charge, intent],
        intent_id=object_id(intent),
        charge_id=charge["id"],
    )
    refunds = value(charge, "refunds")
    if refunds is not None and value(refunds, "has_more"):
        refunds = client().v1.refunds.list({"charge": charge["id"], "limit": 100})
        refunds = refunds.auto_paging_iter()
    else:
        refunds = value(refunds, "data") or []
    changes = []
    with transaction.atomic():
        changes += _settle_before_refund(payment, intent)
        payment.refresh_from_db()
        for refund in refunds:
            changes += _refund_lines(payment, refund)
    return changes


def sync_refund(refund):
    """One refund (``charge.refund.updated``, or the reconcile listing)."""
    intent = value(refund, "payment_intent")
    payment = _payment_or_invoice_first(
        metadata_sources=[refund, intent],
        intent_id=object_id(intent),
        charge_id=object_id(value(refund, "charge")),
    )
    with transaction.atomic():
        changes = _settle_before_refund(payment, intent)
        payment.refresh_from_db()
        return changes + _refund_lines(payment, refund)


def sync_dispute(dispute):
    """A chargeback: recorded, the contribution flagged while it is open."""
    payment = _payment_or_invoice_first(
        metadata_sources=[value(dispute, "payment_intent")],
        intent_id=object_id(value(dispute, "payment_intent")),
        charge_id=object_id(value(dispute, "charge")),
    )
    amount, _currency = _money(dispute, "amount")
    if amount is None:
        amount = payment.amount
    existing = payment.disputes.filter(provider_id=dispute["id"]).first()
    before = (existing.status, existing.amount) if existing else None
    result = payments.record_dispute(
        payment,
        provider_id=dispute["id"],
        amount=amount,
        status=value(dispute, "status") or "",
        reason=value(dispute, "reason") or "",
        source=SOURCE,
    )
    if before == (result.status, result.amount):
        return []
    return [
        _("Dispute %(id)s on contribution %(cid)s: %(status)s")
        % {"id": dispute["id"], "cid": payment.contribution_id, "status": result.status}
    ]


# -- subscriptions and invoices -------------------------------------------------------------


def _recurring_from(meta, payment=None):
    reference = _reference(meta.get("crm_recurring"))
    if reference:
        found = RecurringContribution.objects.filter(reference=reference).first()
        if found:
            return found
    if payment is not None and payment.contribution.recurring_id:
        return payment.contribution.recurring
    return None


def _recurring_for_subscription(subscription_id, meta):
    if subscription_id:
        found = RecurringContribution.objects.filter(
            processor=PROVIDER, processor_id=subscription_id
        ).first()
        if found:
            return found
    return _recurring_from(meta)


def _lock_first(recurring):
    """Lock the standing order before its payments.

    Completing an instalment locks payment, contribution, membership, then
    the standing order (``_advance_recurring``); a renewal locks the standing
    order first to make its one contribution. Taking the standing order first
    on every subscription path keeps one order and no deadlock.
    """
    if recurring is not None:
        RecurringContribution.objects.select_for_update().get(pk=recurring.pk)


def _link_subscription(recurring, subscription_id):
    if recurring is None or not subscription_id or recurring.processor_id == subscription_id:
        return []
    try:
        core.set_recurring_processor(
            recurring, processor=PROVIDER, processor_id=subscription_id, source=SOURCE
        )
    except InvalidTransition:
        # Linked to another subscription already: keep it, staff decide.
        return []
    return [
        _("Recurring contribution %(id)s linked to subscription %(sub)s")
        % {"id": recurring.pk, "sub": subscription_id}
    ]


def _invoice_intent_id(invoice):
    """The PaymentIntent that paid the invoice (``expand=["payments"]``), or ""."""
    for entry in value(invoice, "payments", "data") or []:
        intent = object_id(value(entry, "payment", "payment_intent"))
        if intent and value(entry, "status") in ("paid", None):
            return intent
    return ""


def _first_payment(recurring, invoice, meta):
    """The payment of a subscription's first contribution (made by Checkout), or None."""
    found = _payment(provider_id=invoice["id"], reference=meta.get("crm_payment"))
    if found:
        return found
    first = recurring.contributions.order_by("id").first()
    if first is None:
        return None
    return first.payments.filter(provider=PROVIDER).order_by("-id").first()


def _renewal_lines(recurring, amount):
    """(lines, note, fund) of a renewal: the membership's next term, or a donation."""
    membership = recurring.membership
    refusal = memberships.paid_term_refusal(membership) if membership is not None else ""
    if membership is not None and not refusal:
        return [{"kind": LineItemKind.MEMBERSHIP, "amount": amount, "membership": membership}], ""
    note = ""
    if refusal:
        # The money is in: keep it as a gift rather than refuse the invoice.
        note = _("The membership could not be renewed (%(why)s): recorded as a donation.") % {
            "why": refusal
        }
    return [{"kind": LineItemKind.DONATION, "amount": amount}], note


def _renewal_payment(recurring, invoice, amount, currency):
    """The one Payment (and contribution) of a renewal invoice, made on first sight.

    The standing order is locked (by the caller; again here) and a Payment's
    (provider, provider_id) is unique, so concurrent deliveries of the same
    invoice make one.
    """
    _lock_first(recurring)
    payment = _payment(provider_id=invoice["id"])
    if payment is not None:
        return payment, []
    recurring.refresh_from_db()
    lines, note = _renewal_lines(recurring, amount)
    ended = recurring.status in (RecurringStatus.CANCELLED, RecurringStatus.COMPLETED)
    contribution = core.create_pending(
        recurring.contact,
        currency=currency,
        lines=lines,
        financial_type=recurring.financial_type if recurring.financial_type.is_active else None,
        # An invoice paid after the standing order ended (reconcile catching
        # up): the money is recorded, outside the ended standing order.
        recurring=None if ended else recurring,
        campaign=recurring.campaign,
        note=note,
        source=SOURCE,
    )
    # The lock above makes a second row impossible; the unique constraint
    # on (provider, provider_id) would refuse it (IntegrityError) if not.
    payment = Payment.objects.create(
        contribution=contribution,
        provider=PROVIDER,
        provider_id=invoice["id"],
        amount=contribution.total_amount,
        currency=contribution.currency,
        email=str(value(invoice, "customer_email") or "")[:254],
        status=PaymentStatus.PENDING,
    )
    return payment, [
        _("Contribution %(id)s of %(money)s created for invoice %(invoice)s")
        % {
            "id": contribution.pk,
            "money": format_money(contribution.total_amount, currency),
            "invoice": invoice["id"],
        }
    ]


def sync_invoice(invoice):
    """A subscription's invoice: paid -> its contribution completed; failed attempt -> failed.

    The first invoice (``billing_reason`` subscription_create) settles the
    contribution the visitor started in Checkout. Every later invoice is
    exactly one new contribution of the standing order (a membership line
    for its membership, which renews it by one term, or a donation line),
    with a Payment whose provider id is the invoice's id.

    A paid renewal first settles the subscription's earlier paid invoices,
    so instalments take their terms in Stripe's order, not in the order the
    events arrive (refunding the latest instalment then takes back the
    latest term).
    """
    if value(invoice, "status") != "paid" or value(invoice, "billing_reason") == (
        "subscription_create"
    ):
        return _sync_one_invoice(invoice)
    changes = []
    for earlier in _earlier_paid_invoices(invoice):
        changes += _sync_one_invoice(earlier)
    return changes + _sync_one_invoice(invoice)


def _earlier_paid_invoices(invoice):
    """The paid invoices of ``invoice``'s subscription made before it, oldest first."""
    details = value(invoice, "parent", "subscription_details") or {}
    subscription_id = object_id(value(details, "subscription"))
    if _recurring_for_subscription(subscription_id, metadata(details)) is None:
        return []
    # Stripe lists newest first: the ones after ``invoice`` are older.
    newest_first = list(_paid_invoices(subscription_id))
    ids = [paid["id"] for paid in newest_first]
    if invoice["id"] not in ids:
        return []
    older = newest_first[ids.index(invoice["id"]) + 1 :]
    settled = set(
        Payment.objects.filter(
            provider=PROVIDER,
            provider_id__in=[paid["id"] for paid in older],
            status=PaymentStatus.SUCCEEDED,
        ).values_list("provider_id", flat=True)
    )
    return [paid for paid in reversed(older) if paid["id"] not in settled]


def _sync_one_invoice(invoice):
    details = value(invoice, "parent", "subscription_details") or {}
    subscription_id = object_id(value(details, "subscription"))
    meta = metadata(details)
    recurring = _recurring_for_subscription(subscription_id, meta)
    if recurring is None:
        raise NotOurs(_("No recurring contribution of ours for %(id)s.") % {"id": invoice["id"]})
    status = value(invoice, "status")
    attempted = bool(value(invoice, "attempted"))
    failed = status == "uncollectible" or (status == "open" and attempted)
    if status != "paid" and not failed:
        return []
    amount, currency = _money(invoice, "amount_paid" if status == "paid" else "amount_due")
    changes = []
    with transaction.atomic():
        _lock_first(recurring)
        changes += _link_subscription(recurring, subscription_id)
        first = value(invoice, "billing_reason") == "subscription_create"
        payment = _first_payment(recurring, invoice, meta) if first else None
        if payment is None:
            if amount is None or amount <= 0:
                return changes  # A free invoice (trial, coupon): nothing was paid.
            payment, created = _renewal_payment(recurring, invoice, amount, currency)
            changes += created
        if status == "paid":
            intent_id = _invoice_intent_id(invoice)
            # As StripeProvider.fetch_status says it (the return page may come first).
            changes += _succeed(
                payment,
                transaction_id=intent_id or payment.provider_id,
                payment_intent_id=intent_id,
                received_at=_timestamp(value(invoice, "status_transitions", "paid_at")),
            )
        else:
            changes += _fail(
                payment,
                reason=_("Stripe could not collect invoice %(id)s (attempt %(n)s).")
                % {"id": invoice["id"], "n": value(invoice, "attempt_count") or 1},
            )
    return changes


def _paid_invoices(subscription_id):
    listing = client().v1.invoices.list(
        {
            "subscription": subscription_id,
            "status": "paid",
            "limit": 100,
            "expand": ["data.payments"],
        }
    )
    return listing.auto_paging_iter()


def sync_subscription(subscription):
    """A subscription: cancelled at Stripe -> standing order cancelled; given up -> failed.

    Before cancelling, its paid invoices are settled, so an ``invoice.paid``
    that arrives after ``customer.subscription.deleted`` finds its
    contribution already made (the same end state in any order).
    """
    recurring = _recurring_for_subscription(subscription["id"], metadata(subscription))
    if recurring is None:
        raise NotOurs(
            _("No recurring contribution of ours for %(id)s.") % {"id": subscription["id"]}
        )
    status = value(subscription, "status")
    changes = _link_subscription(recurring, subscription["id"])
    if status == "canceled":
        for invoice in reversed(list(_paid_invoices(subscription["id"]))):
            changes += _sync_one_invoice(invoice)
        recurring.refresh_from_db()
        if recurring.status in (RecurringStatus.CANCELLED, RecurringStatus.COMPLETED):
            return changes
        details = value(subscription, "cancellation_details") or {}
        reason = (
            value(details, "comment")
            or value(details, "feedback")
            or value(details, "reason")
            or _("Cancelled at Stripe.")
        )
        core.cancel_recurring(recurring, reason=str(reason)[:255], source=SOURCE)
        changes.append(
            _("Recurring contribution %(id)s cancelled: %(why)s")
            % {"id": recurring.pk, "why": reason}
        )
    elif status in SUBSCRIPTION_FAILED:
        if recurring.status in (
            RecurringStatus.FAILED,
            RecurringStatus.CANCELLED,
            RecurringStatus.COMPLETED,
        ):
            return changes
        core.mark_recurring_failed(
            recurring, reason=_("Stripe stopped collecting (%(s)s).") % {"s": status}, source=SOURCE
        )
        changes.append(_("Recurring contribution %(id)s failed") % {"id": recurring.pk})
    return changes
