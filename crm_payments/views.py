"""Visitor-facing payment pages: where Stripe Checkout sends the visitor back.

Both pages are addressed by the payment's random reference (a UUID nobody
can guess) and show no personal data: the amount, a short reference and what
happens next. Neither ever fails with a 500 because Stripe is unreachable.
"""

import logging
from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm_core.exceptions import CRMError
from crm_core.money import format_money

from .models import Payment, PaymentStatus
from .services.payments import REFERENCE_PLACEHOLDER, sync_payment

logger = logging.getLogger("crm.payments")

OPEN = (PaymentStatus.CREATED, PaymentStatus.PENDING)
# reverse() needs a UUID where the reference goes; visitor_urls swaps it out.
PLACEHOLDER_UUID = "00000000-0000-0000-0000-000000000000"


def _payment(reference):
    payment = Payment.objects.select_related("contribution").filter(reference=reference).first()
    if payment is None:
        raise Http404
    return payment


def _back_url(request):
    """Where "try again" leads: the form's page if the site passed it (``?back=``), else home."""
    back = request.GET.get("back", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return back
    return "/"


def _context(request, payment, state):
    return {
        "payment": payment,
        "state": state,
        "amount": format_money(payment.amount, payment.currency),
        "short_reference": str(payment.contribution.reference)[:8].upper(),
        "back_url": _back_url(request),
        "checkout_url": payment.redirect_url if payment.status in OPEN else "",
    }


@never_cache
@require_GET
def payment_return(request, reference):
    """The thank-you page (Checkout's ``success_url``).

    Asks the provider once for the payment's state (``sync_payment``), so it
    can say "paid" before the webhook arrives; the webhook stays the source
    of truth and finds the work done. If the provider cannot be asked, the
    page says the payment is being processed.
    """
    payment = _payment(reference)
    try:
        payment = sync_payment(payment, source="payments:return page")
    except CRMError as error:
        logger.warning("Return page could not sync payment %s: %s", payment.pk, error)
        payment.refresh_from_db()
    if payment.status == PaymentStatus.SUCCEEDED:
        state = "paid"
    elif payment.status in OPEN:
        state = "processing"
    else:
        state = "failed"
    return render(request, "crm_payments/payment_return.html", _context(request, payment, state))


@never_cache
@require_GET
def payment_cancelled(request, reference):
    """The visitor left the checkout page (Checkout's ``cancel_url``).

    Changes nothing: the checkout session stays usable until it expires, and
    its expiry (webhook or reconcile) cancels the attempt.
    """
    payment = _payment(reference)
    state = "paid" if payment.status == PaymentStatus.SUCCEEDED else "cancelled"
    return render(request, "crm_payments/payment_cancelled.html", _context(request, payment, state))


def visitor_urls(request, *, back=""):
    """``return_url`` and ``cancel_url`` for ``start_payment``: this site's pages.

    Absolute addresses with the ``{reference}`` placeholder that
    ``start_payment`` fills in; ``back`` (a path on this site, such as the
    form's page) is where "try again" leads.
    """
    query = f"?{urlencode({'back': back})}" if back else ""
    urls = {}
    for key, name in (("return_url", "crm_payments:return"), ("cancel_url", "crm_payments:cancel")):
        address = reverse(name, args=[PLACEHOLDER_UUID])
        urls[key] = (
            request.build_absolute_uri(address).replace(PLACEHOLDER_UUID, REFERENCE_PLACEHOLDER)
            + query
        )
    return urls
