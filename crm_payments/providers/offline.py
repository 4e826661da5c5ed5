"""Pay later: bank transfer, cheque or cash, marked paid by staff."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm_core.models import PaymentMethod

from ..conf import payments_setting
from .base import PaymentProvider, PaymentStart, ProviderRefundResult


class OfflineProvider(PaymentProvider):
    identifier = "offline"
    verbose_name = gettext_lazy("Pay later (bank transfer or cheque)")
    payment_method = PaymentMethod.BANK_TRANSFER
    is_offline = True
    start_needs_saved_payment = False

    def start(self, payment, *, return_url, cancel_url, recurring=None):
        instructions = payments_setting("OFFLINE_PAYMENT_INSTRUCTIONS") or _(
            "We will send you details of how to pay. Your reference is %(reference)s."
        ) % {"reference": str(payment.contribution.reference)[:8].upper()}
        return PaymentStart(instructions=instructions)

    def refund(self, refund):
        # Staff give the money back by hand; recording it is all there is to do.
        return ProviderRefundResult(status="succeeded")
