"""Payment attempts and refunds: the only writers of crm_payments' rows.

Views, webhooks, the reconcile command, the admin and the API all call these
functions, which in turn call crm_core's contribution services
(``complete``, ``fail``, ``cancel``, ``refund``, ``set_disputed``). Every
function that reacts to the provider is idempotent: it acts only from the
expected prior state, with the payment row locked, so a webhook delivered
twice, a webhook racing the visitor's return, or the reconcile command
repeating a webhook's work changes nothing the second time.

Lock order: a payment, then its contribution (the core's services lock the
contribution), never the other way round.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from crm_core.exceptions import InvalidTransition, RefundNotAllowed
from crm_core.models import Contribution, ContributionStatus
from crm_core.money import format_money
from crm_core.services import contributions as core
from crm_core.services.activities import record_system_event, user_or_none
from crm_core.services.messages import enqueue_after_commit
from crm_core.tasks import send_receipt_task

from ..exceptions import ProviderError
from ..models import Dispute, Payment, PaymentStatus, Refund, RefundStatus
from ..providers import get_provider
from . import velocity

S = ContributionStatus
PAYABLE = (S.PENDING, S.FAILED)
OPEN_PAYMENT = (PaymentStatus.CREATED, PaymentStatus.PENDING)
# Dispute states in which the money is still in question.
# Replaced by the payment's reference in the return and cancel addresses.
REFERENCE_PLACEHOLDER = "{reference}"
OPEN_DISPUTES = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")
# The bank gave the money back to the payer: it is gone, as if refunded.
DISPUTE_LOST = "lost"


def _source(provider, source):
    return source or f"payments:{provider}"


# -- starting -----------------------------------------------------------------------------


def start_payment(
    contribution,
    *,
    provider,
    return_url,
    cancel_url,
    email="",
    client_ip=None,
    recurring=None,
    actor=None,
):
    """Start collecting a pending contribution through ``provider`` (an identifier).

    Returns ``(payment, start)``: the new Payment (status pending) and the
    provider's ``PaymentStart`` (where to send the visitor, or instructions).
    ``return_url`` and ``cancel_url`` may hold ``{reference}``, replaced by
    the new payment's reference (``crm_payments.views.visitor_urls`` builds
    both for this site's return and cancel pages).
    The amount is the contribution's total, never a posted value. Online
    providers go through the card-testing defence first (``PaymentBlocked``).
    If the provider fails, the payment is marked failed and ``ProviderError``
    is raised; the contribution stays payable.
    """
    provider = get_provider(provider)
    if contribution.status not in PAYABLE:
        raise InvalidTransition(
            _("This contribution cannot be paid: it is %(status)s.")
            % {"status": contribution.get_status_display().lower()}
        )
    email = (email or "").strip()[:254]
    if not provider.is_offline:
        velocity.check_payment_start(ip=client_ip, email=email)
    payment = Payment(
        contribution=contribution,
        provider=provider.identifier,
        amount=contribution.total_amount,
        currency=contribution.currency,
        email=email,
        client_ip=client_ip,
    )
    if provider.start_needs_saved_payment:
        payment.save()
    reference = str(payment.reference)
    return_url = return_url.replace(REFERENCE_PLACEHOLDER, reference)
    cancel_url = cancel_url.replace(REFERENCE_PLACEHOLDER, reference)
    try:
        start = provider.start(
            payment, return_url=return_url, cancel_url=cancel_url, recurring=recurring
        )
    except ProviderError as error:
        payment.status = PaymentStatus.FAILED
        payment.failure_reason = str(error.message)[:255]
        if payment.pk is None:
            payment.save()
        else:
            payment.save(update_fields=["status", "failure_reason", "updated_at"])
        raise
    payment.status = PaymentStatus.PENDING
    payment.redirect_url = start.redirect_url
    # Inserts the payment if the provider did not need it saved first.
    payment.save()
    return payment, start


# -- what the provider reports ------------------------------------------------------------


def _flag(payment, message, *, source):
    payment.needs_attention = message[:255]
    payment.save(update_fields=["needs_attention", "updated_at"])
    record_system_event(payment.contribution.contact, message, source=source)


def mark_payment_succeeded(
    payment,
    *,
    transaction_id="",
    payment_intent_id="",
    charge_id="",
    received_at=None,
    actor=None,
    source="",
):
    """The provider took the money: the payment succeeds and the contribution completes.

    From created, pending, failed (a retry that worked) or cancelled (a late
    asynchronous success). Idempotent: a succeeded payment is returned
    unchanged, with its contribution untouched. Money that arrives for a
    contribution that is cancelled, or already paid by another attempt, is
    kept on the payment with ``needs_attention`` set and an entry in the
    payer's history, for staff to refund or reassign; it never raises for that.
    When the contribution completes, its receipt is emailed by a task, once.
    """
    source = _source(payment.provider, source)
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status == PaymentStatus.SUCCEEDED:
            return locked
        locked.status = PaymentStatus.SUCCEEDED
        locked.completed_at = timezone.now()
        locked.failure_reason = ""
        locked.payment_intent_id = payment_intent_id or locked.payment_intent_id
        locked.charge_id = charge_id or locked.charge_id
        locked.save()
        contribution = Contribution.objects.select_for_update().get(pk=locked.contribution_id)
        if contribution.status in core.PAID_STATUSES:
            _flag(
                locked,
                _("Paid twice: %(money)s arrived for a contribution that was already paid.")
                % {"money": format_money(locked.amount, locked.currency)},
                source=source,
            )
            return locked
        if contribution.status == S.CANCELLED:
            _flag(
                locked,
                _("%(money)s arrived for a cancelled contribution: refund or reassign it.")
                % {"money": format_money(locked.amount, locked.currency)},
                source=source,
            )
            return locked
        core.complete(
            contribution,
            transaction_id=transaction_id or payment_intent_id,
            received_at=received_at,
            payment_method=get_provider(locked.provider, configured=False).payment_method,
            actor=actor,
            source=source,
        )
        # The payer hears from us once the money is ours: the receipt, which
        # also says what it paid for (membership term, places at events).
        enqueue_after_commit(send_receipt_task, contribution.pk)
    return locked


def mark_payment_failed(payment, *, reason="", fraud=False, actor=None, source=""):
    """A payment attempt was declined or errored.

    From created or pending; a payment that already succeeded, failed or was
    cancelled is returned unchanged (a late failure never undoes a success).
    The contribution becomes failed if it was pending; it can still be paid
    by another attempt. The decline counts towards the card-testing limits
    of the payment's IP and email (``fraud``: the provider flagged it).
    """
    source = _source(payment.provider, source)
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status not in OPEN_PAYMENT:
            return locked
        locked.status = PaymentStatus.FAILED
        locked.failure_reason = str(reason or "")[:255]
        locked.save(update_fields=["status", "failure_reason", "updated_at"])
        contribution = Contribution.objects.select_for_update().get(pk=locked.contribution_id)
        if contribution.status == S.PENDING:
            core.fail(contribution, reason=locked.failure_reason, actor=actor, source=source)
        velocity.record_decline(ip=locked.client_ip, email=locked.email, fraud=fraud)
    return locked


def mark_payment_cancelled(payment, *, reason="", actor=None, source=""):
    """The attempt can no longer be paid (a checkout session expired or was abandoned).

    From created or pending (otherwise unchanged). When no other attempt is
    still open or succeeded, the contribution is cancelled too, which
    releases the seats and memberships it held (crm_core ``cancel``).
    """
    source = _source(payment.provider, source)
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status not in OPEN_PAYMENT:
            return locked
        locked.status = PaymentStatus.CANCELLED
        locked.failure_reason = str(reason or "")[:255]
        locked.save(update_fields=["status", "failure_reason", "updated_at"])
        contribution = Contribution.objects.select_for_update().get(pk=locked.contribution_id)
        others = contribution.payments.exclude(pk=locked.pk).filter(
            status__in=OPEN_PAYMENT + (PaymentStatus.SUCCEEDED,)
        )
        if contribution.status in PAYABLE and not others.exists():
            core.cancel(
                contribution,
                reason=locked.failure_reason or _("The payment was not completed."),
                actor=actor,
                source=source,
            )
    return locked


def sync_payment(payment, *, source=""):
    """Ask the provider once for an open payment's state and apply it (the return page).

    Returns the payment, updated. A provider that cannot be reached leaves
    it as it is (the webhook will tell us); offline payments are not asked.
    """
    if payment.status not in OPEN_PAYMENT + (PaymentStatus.FAILED,):
        return payment
    provider = get_provider(payment.provider, configured=False)
    if provider.is_offline:
        return payment
    try:
        state = provider.fetch_status(payment)
    except ProviderError:
        return payment
    return apply_provider_state(payment, state, source=source)


def apply_provider_state(payment, state, *, source=""):
    """Move a payment to what the provider reported (``ProviderPaymentState``)."""
    if state.status == PaymentStatus.SUCCEEDED:
        return mark_payment_succeeded(
            payment,
            transaction_id=state.transaction_id,
            payment_intent_id=state.payment_intent_id,
            charge_id=state.charge_id,
            source=source,
        )
    if state.status == PaymentStatus.FAILED:
        return mark_payment_failed(payment, reason=state.failure_reason, source=source)
    if state.status == PaymentStatus.CANCELLED:
        return mark_payment_cancelled(payment, reason=state.failure_reason, source=source)
    payment.refresh_from_db()
    return payment


def record_offline_payment(
    contribution, *, payment_method, received_at=None, transaction_id="", actor=None, source=""
):
    """Staff record a cheque, cash or bank transfer for a pay-later contribution.

    Settles the contribution through crm_core's ``record_offline_payment``
    and marks its open pay-later attempt (if any) succeeded, so nothing is
    left waiting. Idempotent as the core service is.
    """
    with transaction.atomic():
        contribution = core.record_offline_payment(
            contribution,
            payment_method=payment_method,
            received_at=received_at,
            transaction_id=transaction_id,
            actor=actor,
            source=source or "admin",
        )
        for open_payment in (
            contribution.payments.select_for_update()
            .filter(provider="offline", status__in=OPEN_PAYMENT)
            .order_by("id")
        ):
            open_payment.status = PaymentStatus.SUCCEEDED
            open_payment.completed_at = timezone.now()
            open_payment.save(update_fields=["status", "completed_at", "updated_at"])
    return contribution


# -- refunds ------------------------------------------------------------------------------


def _settling_payment(contribution):
    return (
        contribution.payments.filter(status=PaymentStatus.SUCCEEDED, needs_attention="")
        .order_by("-completed_at", "-id")
        .first()
    )


def _in_flight(contribution):
    """What is being refunded: refunds asked for, not confirmed yet."""
    return Refund.objects.filter(contribution=contribution, status=RefundStatus.PENDING).aggregate(
        total=Sum("amount")
    )["total"] or Decimal(0)


def _left_to_refund(contribution):
    """The total less what is refunded and what is being refunded."""
    return contribution.total_amount - contribution.refunded_amount - _in_flight(contribution)


def refund_contribution(contribution, *, amount=None, reason="", actor=None, source=""):
    """Give back all (``amount`` None) or part of a paid contribution: the one refund service.

    The money goes back through the provider that took it (Stripe refunds the
    card); a contribution paid offline, or recorded without a provider, is
    refunded by hand and recorded at once. Steps:

    1. with the contribution locked, check what is left (the total less what
       is refunded and what is being refunded) and record a pending Refund;
    2. ask the provider (outside the lock, with the refund's own idempotency
       key, so a retry after a crash never refunds twice);
    3. a refund the provider confirms is recorded on the contribution
       (crm_core ``refund``) exactly once; a pending one is recorded when the
       provider's webhook confirms it; a failed one changes nothing else.

    Raises ``RefundNotAllowed`` (nothing paid, or too much asked),
    ``ValidationError`` (bad amount) or ``ProviderError`` (the provider
    refused; the Refund row is kept as failed). Returns the Refund.
    """
    with transaction.atomic():
        locked = Contribution.objects.select_for_update().get(pk=contribution.pk)
        amount = core.refundable_amount(locked, amount, reserved=_in_flight(locked))
        if not isinstance(reason, str):
            raise ValidationError({"reason": [_("Expected text.")]})
        payment = _settling_payment(locked)
        refund = Refund.objects.create(
            payment=payment,
            provider=payment.provider if payment else "offline",
            contribution=locked,
            amount=amount,
            currency=locked.currency,
            reason=reason.strip()[:255],
            created_by=user_or_none(actor),
        )
    provider = get_provider(refund.provider, configured=False)
    try:
        result = provider.refund(refund)
    except ProviderError as error:
        refund.status = RefundStatus.FAILED
        refund.failure_reason = str(error.message)[:255]
        refund.save(update_fields=["status", "failure_reason", "updated_at"])
        raise
    return record_refund_result(
        refund,
        status=result.status,
        provider_id=result.provider_id,
        failure_reason=result.failure_reason,
        actor=actor,
        source=source,
    )


def record_refund_result(
    refund, *, status, provider_id="", failure_reason="", actor=None, source=""
):
    """Apply what the provider says about one of our refunds. Idempotent.

    A succeeded refund is recorded on the contribution once (``applied_at``);
    a failed one is marked failed unless it had already succeeded.
    """
    source = _source(refund.provider, source)
    with transaction.atomic():
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        if provider_id and not locked.provider_id:
            locked.provider_id = provider_id
        if status == RefundStatus.SUCCEEDED:
            locked.status = RefundStatus.SUCCEEDED
        elif status == RefundStatus.FAILED and locked.status != RefundStatus.SUCCEEDED:
            locked.status = RefundStatus.FAILED
            locked.failure_reason = str(failure_reason or "")[:255]
        locked.save()
        if locked.status == RefundStatus.SUCCEEDED and locked.applied_at is None:
            _apply_refund(locked, actor=actor, source=source)
    return locked


def _apply_refund(refund, *, actor, source):
    try:
        with transaction.atomic():
            core.refund(
                refund.contribution,
                amount=refund.amount,
                reason=refund.reason,
                actor=actor,
                source=source,
            )
    except RefundNotAllowed as error:
        # The provider gave back money our books say was not there to give
        # (refunded twice, or from the provider's dashboard after a manual
        # refund): keep the refund, flag it for staff.
        refund.failure_reason = str(error.message)[:255]
        if refund.payment_id:
            _flag(
                refund.payment,
                _("A refund of %(money)s at the provider could not be recorded: %(why)s")
                % {"money": format_money(refund.amount, refund.currency), "why": error.message},
                source=source,
            )
    refund.applied_at = timezone.now()
    refund.save(update_fields=["applied_at", "failure_reason", "updated_at"])


def record_provider_refund(
    payment, *, provider_id, amount, status, reference="", reason="", source=""
):
    """A refund the provider reports (a webhook, the reconcile command).

    Matches our own Refund by ``reference`` (the metadata we sent) or by the
    provider's id; otherwise it was made at the provider (Stripe's dashboard)
    and is recorded now. Then ``record_refund_result``. Idempotent.
    """
    with transaction.atomic():
        Payment.objects.select_for_update().get(pk=payment.pk)
        refund = None
        if reference:
            refund = Refund.objects.filter(reference=reference, payment=payment).first()
        if refund is None:
            refund = Refund.objects.filter(
                provider=payment.provider, provider_id=provider_id
            ).first()
        if refund is None:
            try:
                with transaction.atomic():
                    refund = Refund.objects.create(
                        payment=payment,
                        provider=payment.provider,
                        contribution_id=payment.contribution_id,
                        amount=amount,
                        currency=payment.currency,
                        provider_id=provider_id,
                        reason=str(reason or _("Refunded at the provider"))[:255],
                    )
            except IntegrityError:
                refund = Refund.objects.get(provider=payment.provider, provider_id=provider_id)
        return record_refund_result(refund, status=status, provider_id=provider_id, source=source)


# -- disputes -----------------------------------------------------------------------------


def record_dispute(payment, *, provider_id, amount, status, reason="", source=""):
    """Create or update a chargeback and flag the contribution while it is open.

    Idempotent: the dispute is keyed by the provider's id; the contribution's
    ``is_disputed`` follows whether any of its disputes is still open. A lost
    dispute is money gone: it is recorded once as a succeeded Refund whose
    provider id is the dispute's (the unique constraint keeps it one), of the
    disputed amount or what is left to refund if that is less.
    """
    source = _source(payment.provider, source)
    with transaction.atomic():
        Payment.objects.select_for_update().get(pk=payment.pk)
        dispute, _created = Dispute.objects.update_or_create(
            provider_id=provider_id,
            defaults={
                "payment": payment,
                "amount": amount,
                "currency": payment.currency,
                "reason": str(reason or "")[:100],
                "status": str(status or "")[:50],
            },
        )
        open_disputes = Dispute.objects.filter(
            payment__contribution_id=payment.contribution_id, status__in=OPEN_DISPUTES
        ).exists()
        core.set_disputed(
            payment.contribution, disputed=open_disputes, reason=dispute.reason, source=source
        )
        if dispute.status == DISPUTE_LOST:
            _record_lost_dispute(payment, dispute, source=source)
    return dispute


def _record_lost_dispute(payment, dispute, *, source):
    """The bank took the money back: a refund of the disputed amount, recorded once."""
    recorded = Refund.objects.filter(
        provider=payment.provider, provider_id=dispute.provider_id
    ).first()
    if recorded is not None:
        amount = recorded.amount
    else:
        contribution = Contribution.objects.get(pk=payment.contribution_id)
        amount = min(dispute.amount, _left_to_refund(contribution))
    if amount <= 0:
        return
    record_provider_refund(
        payment,
        provider_id=dispute.provider_id,
        amount=amount,
        status=RefundStatus.SUCCEEDED,
        reason=_("Chargeback lost (%(reason)s)") % {"reason": dispute.reason or _("dispute")},
        source=source,
    )
