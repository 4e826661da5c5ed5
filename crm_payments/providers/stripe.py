"""Stripe: Checkout Sessions for one-off payments and subscriptions.

With ``stripe_webhooks.py`` and ``stripe_fake.py``, the only modules that
import the stripe SDK. Every call goes through ``client()``: the API version
pinned in settings, the base address from ``STRIPE_API_BASE`` (tests point it
at the local fake). Code here reads the pinned version's shapes only (an
invoice's subscription is under ``parent.subscription_details``, its
payments come with ``expand=["payments"]``).

Every create call carries an idempotency key derived from our own row, so a
retry after a crash or a double click never charges or refunds twice. Any
Stripe failure becomes ``ProviderError`` with a message fit for a visitor:
no keys, no Stripe internals.
"""

import logging
from contextlib import contextmanager
from decimal import Decimal

import stripe
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm_core.models import PaymentMethod
from crm_core.money import currency_exponent, from_minor_units, to_minor_units

from ..conf import payments_setting
from ..exceptions import ProviderError
from ..models import PaymentStatus, ProviderCustomer, RefundStatus
from .base import PaymentProvider, PaymentStart, ProviderPaymentState, ProviderRefundResult

logger = logging.getLogger("crm.payments.stripe")

IDENTIFIER = "stripe"
# Stripe takes these with three decimals but only in steps of ten minor units
# ("round to the nearest ten"): 1.234 KWD cannot be charged, 1.230 can.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Where Stripe's minor units differ from ISO 4217: ISK has no fractions but
# Stripe still counts it in hundredths; Stripe takes MGA in whole ariary.
STRIPE_EXPONENTS = {"ISK": 2, "MGA": 0}
PRODUCT_NAME_LENGTH = 250
REFUND_STATUSES = {
    "succeeded": RefundStatus.SUCCEEDED,
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}


def client():
    """A StripeClient configured from settings (new each call: settings may change)."""
    return stripe.StripeClient(
        payments_setting("STRIPE_SECRET_KEY"),
        stripe_version=payments_setting("STRIPE_API_VERSION"),
        base_addresses={"api": payments_setting("STRIPE_API_BASE")},
        max_network_retries=2,
    )


def to_stripe_amount(amount, currency):
    """An amount in Stripe's minor units, or ``ProviderError`` if Stripe cannot charge it.

    ``crm_core.money.to_minor_units`` knows ISO 4217's decimals; this adds
    Stripe's own rules (three-decimal currencies in steps of ten, ISK, MGA).
    """
    currency = currency.upper()
    try:
        iso_units = to_minor_units(amount, currency)
        exponent = STRIPE_EXPONENTS.get(currency)
        if exponent is None:
            units = iso_units
        else:
            scaled = Decimal(iso_units).scaleb(exponent - currency_exponent(currency))
            if scaled != scaled.to_integral_value():
                raise ProviderError(
                    _("Card payments in %(currency)s must be whole amounts.")
                    % {"currency": currency}
                )
            units = int(scaled)
    except ValidationError as error:
        raise ProviderError(" ".join(error.messages)) from None
    if currency in STRIPE_THREE_DECIMAL and units % 10:
        raise ProviderError(
            _(
                "Card payments in %(currency)s can only be taken in steps of 0.010 "
                "(the last decimal must be 0)."
            )
            % {"currency": currency}
        )
    return units


def from_stripe_amount(units, currency):
    """Stripe's minor units as a ``Decimal`` of ``currency``: ``to_stripe_amount`` reversed."""
    currency = currency.upper()
    exponent = STRIPE_EXPONENTS.get(currency)
    if exponent is not None:
        units = int(Decimal(units).scaleb(currency_exponent(currency) - exponent))
    return from_minor_units(units, currency)


def value(obj, *path):
    """``obj[a][b]...`` of a StripeObject or dict, or None where a step is missing or null."""
    for key in path:
        if obj is None or isinstance(obj, str):
            return None
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def object_id(field):
    """The id of an expandable field, whether it came expanded or not."""
    if field is None or isinstance(field, str):
        return field or ""
    return value(field, "id") or ""


@contextmanager
def stripe_errors(message):
    """Turn any Stripe failure into ``ProviderError(message)``, logged without secrets.

    The message is for the visitor or staff member; Stripe's error code is
    added in brackets (it names the problem without internals).
    """
    try:
        yield
    except stripe.StripeError as error:
        logger.warning(
            "Stripe refused a request: %s %s (request %s)",
            error.http_status or "no response",
            error.code or type(error).__name__,
            error.request_id or "-",
        )
        code = error.code if isinstance(error.code, str) else ""
        raise ProviderError(f"{message} ({code[:50]})" if code else message) from None


START_FAILED = gettext_lazy(
    "The card payment could not be started. Nothing was charged; please try again later."
)


class StripeProvider(PaymentProvider):
    identifier = IDENTIFIER
    verbose_name = gettext_lazy("Card (Stripe)")
    payment_method = PaymentMethod.CARD
    supports_recurring = True

    def is_configured(self):
        return bool(payments_setting("STRIPE_SECRET_KEY"))

    # -- starting a payment ---------------------------------------------------------------

    def start(self, payment, *, return_url, cancel_url, recurring=None):
        """Create a Checkout Session (one-off, or a subscription for ``recurring``).

        The session is created with ``payment.idempotency_key``: calling this
        twice for the same payment gives the same session. Sets
        ``payment.provider_id`` to the session id (the caller saves it).
        """
        contribution = payment.contribution
        metadata = {
            "crm_payment": str(payment.reference),
            "crm_contribution": str(contribution.reference),
        }
        if recurring is not None:
            metadata["crm_recurring"] = str(recurring.reference)
        params = {
            "mode": "payment",
            "client_reference_id": str(payment.reference),
            "success_url": return_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": payment.currency.lower(),
                        "unit_amount": to_stripe_amount(payment.amount, payment.currency),
                        "product_data": {"name": self._product_name(contribution)},
                    },
                }
            ],
        }
        if recurring is None:
            params["payment_intent_data"] = {"metadata": metadata}
            if all(line.kind == "donation" for line in contribution.line_items.all()):
                params["submit_type"] = "donate"
        else:
            if (
                recurring.currency.upper() != payment.currency.upper()
                or recurring.amount != payment.amount
            ):
                raise ProviderError(_("The first instalment must be the standing order's amount."))
            params["mode"] = "subscription"
            params["line_items"][0]["price_data"]["recurring"] = {
                "interval": recurring.frequency_unit,
                "interval_count": recurring.frequency_interval,
            }
            params["subscription_data"] = {"metadata": metadata}
        session = self._create_session(payment, params)
        payment.provider_id = session["id"]
        return PaymentStart(redirect_url=session["url"] or "")

    def _product_name(self, contribution):
        labels = [line.label for line in contribution.line_items.all() if line.label]
        name = "; ".join(dict.fromkeys(labels)) or _("Contribution")
        return name[:PRODUCT_NAME_LENGTH]

    def _create_session(self, payment, params):
        api = client()
        contact = payment.contribution.contact
        customer = self.customer_for(contact, email=payment.email, api=api)
        with stripe_errors(START_FAILED):
            try:
                return api.v1.checkout.sessions.create(
                    params={**params, "customer": customer.customer_id},
                    options={"idempotency_key": payment.idempotency_key},
                )
            except stripe.InvalidRequestError as error:
                if error.code != "resource_missing" or error.param != "customer":
                    raise
        # The customer was deleted at Stripe (or the keys now point at another
        # account): forget it and make a new one, once.
        ProviderCustomer.objects.filter(pk=customer.pk).delete()
        customer = self.customer_for(contact, email=payment.email, api=api)
        with stripe_errors(START_FAILED):
            return api.v1.checkout.sessions.create(
                params={**params, "customer": customer.customer_id},
                options={"idempotency_key": f"{payment.idempotency_key}-{customer.customer_id}"},
            )

    def customer_for(self, contact, *, email="", api=None):
        """The contact's Stripe customer (a ``ProviderCustomer``), created once and reused.

        Two payments of one contact racing here create one Stripe customer:
        the idempotency key is the contact's own, and the unique constraint
        keeps one row.
        """
        existing = ProviderCustomer.objects.filter(provider=IDENTIFIER, contact=contact).first()
        if existing is not None:
            return existing
        primary = contact.primary_email
        params = {
            "name": str(contact)[:256],
            "metadata": {"crm_contact": str(contact.pk)},
        }
        email = email or (primary.email if primary else "")
        if email:
            params["email"] = email
        # The pk alone could repeat across databases sharing a Stripe account
        # (a demo reset); the creation time makes the key this contact's.
        key = f"crm-contact-{contact.pk}-{int(contact.created_at.timestamp() * 1_000_000)}"
        with stripe_errors(START_FAILED):
            customer = (api or client()).v1.customers.create(
                params=params, options={"idempotency_key": key}
            )
        try:
            with transaction.atomic():
                return ProviderCustomer.objects.create(
                    provider=IDENTIFIER, contact=contact, customer_id=customer["id"]
                )
        except IntegrityError:
            return ProviderCustomer.objects.get(provider=IDENTIFIER, contact=contact)

    # -- asking for a payment's state --------------------------------------------------

    def fetch_status(self, payment):
        """Retrieve the payment's Checkout Session and say what it means for us."""
        if not payment.provider_id:
            raise ProviderError(_("This payment was never sent to Stripe."))
        with stripe_errors(_("Stripe could not say whether the payment went through.")):
            session = client().v1.checkout.sessions.retrieve(
                payment.provider_id,
                params={"expand": ["payment_intent", "invoice.payments"]},
            )
        return session_state(session)

    # -- refunds ------------------------------------------------------------------------

    def refund(self, refund):
        """Refund ``refund.amount`` of the payment's PaymentIntent, once (its idempotency key)."""
        payment = refund.payment
        intent_id = payment.payment_intent_id if payment else ""
        if payment and not intent_id:
            intent_id = self.fetch_status(payment).payment_intent_id
        if not intent_id:
            raise ProviderError(_("Stripe has no card payment to refund for this contribution."))
        params = {
            "payment_intent": intent_id,
            "amount": to_stripe_amount(refund.amount, refund.currency),
            "metadata": {
                "crm_refund": str(refund.reference),
                "crm_payment": str(payment.reference),
            },
        }
        with stripe_errors(_("Stripe refused the refund; nothing was given back.")):
            result = client().v1.refunds.create(
                params=params, options={"idempotency_key": refund.idempotency_key}
            )
        return refund_result(result)

    # -- subscriptions ----------------------------------------------------------------

    def cancel_subscription(self, recurring):
        """Cancel the subscription at Stripe now. Idempotent: a cancelled one is fine."""
        if not recurring.processor_id:
            return
        api = client()
        with stripe_errors(_("Stripe could not cancel the subscription; it may still charge.")):
            try:
                api.v1.subscriptions.cancel(
                    recurring.processor_id,
                    options={"idempotency_key": f"crm-cancel-{recurring.reference}"},
                )
            except stripe.InvalidRequestError as error:
                # Stripe answers "No such subscription" for one already cancelled.
                if error.code != "resource_missing":
                    raise
                try:
                    subscription = api.v1.subscriptions.retrieve(recurring.processor_id)
                except stripe.InvalidRequestError as missing:
                    if missing.code != "resource_missing":
                        raise
                    logger.warning("Subscription %s is unknown to Stripe", recurring.processor_id)
                    return
                if subscription["status"] not in ("canceled", "incomplete_expired"):
                    raise


def session_state(session):
    """A Checkout Session (``payment_intent`` and ``invoice.payments`` expanded or not)
    in our terms: a ``ProviderPaymentState``.

    paid / no_payment_required -> succeeded; expired -> cancelled; a
    completed session whose delayed payment bounced -> failed; anything else
    (open, or a bank debit still clearing) -> pending.
    """
    # StripeObjects are not dicts (no .get); ``value`` reads them safely.
    intent = value(session, "payment_intent")
    invoice = value(session, "invoice")
    intent_id = object_id(intent)
    charge_id = object_id(value(intent, "latest_charge"))
    if not intent_id and invoice is not None and not isinstance(invoice, str):
        # Subscription mode: the first invoice's payment.
        for invoice_payment in value(invoice, "payments", "data") or []:
            if value(invoice_payment, "payment", "type") == "payment_intent":
                intent_id = object_id(value(invoice_payment, "payment", "payment_intent"))
                break
    extra = {
        "session_status": session["status"],
        "payment_status": session["payment_status"],
        "mode": session["mode"],
        "customer": object_id(value(session, "customer")),
        "subscription": object_id(value(session, "subscription")),
        "invoice": object_id(invoice),
    }
    common = {"payment_intent_id": intent_id, "charge_id": charge_id, "extra": extra}
    if session["payment_status"] in ("paid", "no_payment_required"):
        return ProviderPaymentState(
            status=PaymentStatus.SUCCEEDED, transaction_id=intent_id or session["id"], **common
        )
    if session["status"] == "expired":
        return ProviderPaymentState(
            status=PaymentStatus.CANCELLED,
            failure_reason=_("The checkout page expired before payment."),
            **common,
        )
    intent_status = value(intent, "status")
    if session["status"] == "complete" and intent_status in ("requires_payment_method", "canceled"):
        return ProviderPaymentState(
            status=PaymentStatus.FAILED,
            failure_reason=str(
                value(intent, "last_payment_error", "decline_code")
                or value(intent, "last_payment_error", "code")
                or _("The payment did not go through.")
            ),
            **common,
        )
    return ProviderPaymentState(status=PaymentStatus.PENDING, **common)


def refund_result(refund):
    """A Stripe Refund object in our terms: a ``ProviderRefundResult``."""
    status = REFUND_STATUSES.get(refund["status"], RefundStatus.PENDING)
    reason = ""
    if status == RefundStatus.FAILED:
        reason = str(value(refund, "failure_reason") or refund["status"])
    return ProviderRefundResult(status=status, provider_id=refund["id"], failure_reason=reason)
