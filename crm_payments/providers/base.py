"""The interface every payment provider implements.

A provider is a subclass of ``PaymentProvider`` listed (by dotted path) in the
``PAYMENT_PROVIDERS`` setting; ``crm_payments.providers.get_provider(identifier)``
returns an instance. Providers talk to the outside world only; they never
change our rows' statuses themselves: ``crm_payments.services.payments``
does, so there is one way to mark a payment paid or refunded.

A third-party provider (GoCardless, PayPal...) subclasses this, sets
``identifier`` and ``verbose_name``, implements ``start`` and, if it can,
``refund``, ``fetch_status`` and ``cancel_subscription``, and is added to
``PAYMENT_PROVIDERS``.
"""

from dataclasses import dataclass, field

from crm_core.models import PaymentMethod

from ..exceptions import ProviderNotAvailable


@dataclass
class PaymentStart:
    """What the visitor is shown after choosing this provider."""

    #: Send the visitor here to pay (a hosted checkout page), or "".
    redirect_url: str = ""
    #: Or show them these instructions (bank details, cheque address).
    instructions: str = ""


@dataclass
class ProviderPaymentState:
    """What the provider says about a payment, in our terms."""

    #: One of PaymentStatus's values.
    status: str
    transaction_id: str = ""
    payment_intent_id: str = ""
    charge_id: str = ""
    failure_reason: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class ProviderRefundResult:
    #: One of RefundStatus's values.
    status: str
    provider_id: str = ""
    failure_reason: str = ""


class PaymentProvider:
    #: Stored on Payment.provider; never change it once payments exist.
    identifier = ""
    verbose_name = ""
    #: What the core records as the contribution's payment method.
    payment_method = PaymentMethod.CARD
    #: Paid by hand and marked paid by staff (no hosted page, no webhook).
    is_offline = False
    supports_recurring = False
    #: ``start`` may rely on the payment being saved (it calls out, or a retry
    #: must find the row). A provider whose ``start`` only reads the payment
    #: sets False: the payment is then written once, with what ``start`` gave.
    start_needs_saved_payment = True

    def is_configured(self):
        """False when settings it needs are missing; it is then not offered."""
        return True

    def start(self, payment, *, return_url, cancel_url, recurring=None):
        """Begin collecting ``payment``; return a ``PaymentStart``.

        Called outside any database transaction (it may be slow). Must be safe
        to call twice for the same payment: use ``payment.idempotency_key``.
        ``recurring`` is the RecurringContribution the payment starts, if any.
        """
        raise NotImplementedError

    def fetch_status(self, payment):
        """Ask the provider once for the payment's state; a ``ProviderPaymentState``."""
        raise ProviderNotAvailable(
            f"{self.verbose_name or self.identifier} cannot report a payment's state."
        )

    def refund(self, refund):
        """Give back ``refund.amount`` of ``refund.payment``; a ``ProviderRefundResult``.

        Must be idempotent through ``refund.idempotency_key``.
        """
        raise ProviderNotAvailable(f"{self.verbose_name or self.identifier} cannot refund.")

    def cancel_subscription(self, recurring):
        """Stop collecting a recurring contribution at the provider."""
        raise ProviderNotAvailable(
            f"{self.verbose_name or self.identifier} has no subscriptions to cancel."
        )
