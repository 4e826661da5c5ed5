"""Contributions: money a contact gives or pays, and what it pays for.

Lifecycle (see docs/contributions.md)::

    pending -> completed -> partially_refunded -> refunded
    pending -> failed -> completed (a late success)
    pending | failed -> cancelled

``complete`` is the one place where a paid contribution becomes what it pays
for: a membership term (``memberships.apply_paid_term``) or a confirmed seat
(``events.confirm_paid_participant``). Every service here runs in one
transaction, locks the contribution row before reading its status, and
records an entry in the payer's history.
"""

import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..bulk import bulk_insert
from ..conf import crm_setting
from ..dates import LATEST_DATE, add_months
from ..exceptions import DuplicateTransaction, InvalidTransition, RefundNotAllowed
from ..models import (
    Activity,
    Campaign,
    Contact,
    Contribution,
    ContributionStatus,
    Event,
    FinancialType,
    FrequencyUnit,
    LineItem,
    LineItemKind,
    Membership,
    MembershipStatus,
    Participant,
    ParticipantStatus,
    PaymentMethod,
    ReceiptStatus,
    RecurringContribution,
    RecurringStatus,
    SoftCredit,
    SoftCreditKind,
)
from ..money import MAX_AMOUNT, format_money, parse_amount, validate_currency
from ..sanitize import plain_text
from . import events, memberships
from .activities import record_system_event, system_event, user_or_none

S = ContributionStatus

# Payment methods staff may record by hand: the money did not pass through a
# provider, so there is nothing to check it against.
OFFLINE_PAYMENT_METHODS = (
    PaymentMethod.CHEQUE,
    PaymentMethod.CASH,
    PaymentMethod.BANK_TRANSFER,
    PaymentMethod.OTHER,
)
# Statuses in which the money was received (at least once).
PAID_STATUSES = (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED)
# Fund used for a donation line when neither the line nor the contribution names one,
# and for event fees when the event has none (both made by migration 0004).
DEFAULT_DONATION_FUND = "donation"
DEFAULT_EVENT_FUND = "event-fee"
MAX_QUANTITY = 1000
# A recorded payment may be dated a little ahead (clock skew, another time zone), not more.
RECEIVED_AT_TOLERANCE = datetime.timedelta(days=1)
MAX_FREQUENCY_INTERVAL = {FrequencyUnit.MONTH: 36, FrequencyUnit.YEAR: 10}
MAX_INSTALLMENTS = 1200
LINE_KEYS = frozenset(
    {"kind", "amount", "quantity", "label", "financial_type", "membership", "participant"}
)
SOFT_CREDIT_KEYS = frozenset({"contact", "kind", "amount"})


# -- helpers ----------------------------------------------------------------------------


def _text(value, field, *, max_length=255, multiline=False):
    if not isinstance(value, str):
        raise ValidationError({field: [_("Expected text.")]})
    limit = crm_setting("MAX_TEXT_LENGTH") if multiline else max_length
    if len(value) > limit:
        raise ValidationError({field: [_("At most %(n)d characters.") % {"n": limit}]})
    return plain_text(value, multiline=multiline)


def _payment_method(value, field="payment_method", *, allowed=None):
    allowed = allowed or PaymentMethod.values
    if value not in allowed:
        raise ValidationError(
            {field: [_("Choose one of: %(choices)s.") % {"choices": ", ".join(allowed)}]}
        )
    return value


def _fund(slug):
    fund = FinancialType.objects.filter(slug=slug).first()
    if fund is None:
        raise ValidationError(
            {
                "financial_type": [
                    _("Choose a financial type (there is no %(slug)s fund).") % {"slug": slug}
                ]
            }
        )
    return fund


def _locked(contribution):
    return Contribution.objects.select_for_update().get(pk=contribution.pk)


def _money(contribution, amount=None):
    return format_money(
        contribution.total_amount if amount is None else amount, contribution.currency
    )


def _log_event(contribution, subject, *, old, new, actor, source, details=""):
    """The contact's history entry for a change of the contribution, unsaved."""
    return system_event(
        contribution.contact_id,
        subject,
        actor=actor,
        source=source,
        details=details,
        changes={"contribution_status": [old, new]} if old != new else {},
    )


def _log(contribution, subject, *, old, new, actor, source, details=""):
    _log_event(
        contribution, subject, old=old, new=new, actor=actor, source=source, details=details
    ).save(force_insert=True)


def _refuse(contribution, action):
    raise InvalidTransition(
        _("A %(status)s contribution cannot be %(action)s.")
        % {"status": contribution.get_status_display().lower(), "action": action}
    )


# -- creating ---------------------------------------------------------------------------


def _clean_line(index, line, currency, default_fund):
    """One line dict -> unsaved LineItem. Errors name the line: "Line 2: ..."."""
    prefix = _("Line %(n)d: ") % {"n": index + 1}

    def fail(message):
        raise ValidationError({"lines": [prefix + str(message)]})

    if not isinstance(line, dict):
        fail(_("expected an object with kind and amount."))
    unknown = sorted(str(key) for key in line if key not in LINE_KEYS)
    if unknown:
        fail(_("unknown keys %(keys)s.") % {"keys": ", ".join(unknown)})
    kind = line.get("kind", LineItemKind.DONATION)
    if kind not in LineItemKind.values:
        fail(_("kind must be one of %(kinds)s.") % {"kinds": ", ".join(LineItemKind.values)})
    if "amount" not in line:
        fail(_("give an amount."))
    try:
        unit_amount = parse_amount(line["amount"], currency, allow_zero=True)
    except ValidationError as error:
        fail(error.messages[0])
    quantity = line.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        fail(_("quantity must be a whole number."))
    if not 1 <= quantity <= MAX_QUANTITY:
        fail(_("quantity must be between 1 and %(max)d.") % {"max": MAX_QUANTITY})
    fund = line.get("financial_type")
    if fund is not None and not isinstance(fund, FinancialType):
        fail(_("financial_type must be a financial type."))
    if fund is not None and not fund.is_active:
        fail(_("the financial type %(name)s is not active.") % {"name": fund.name})
    membership, participant = line.get("membership"), line.get("participant")
    label = line.get("label") or ""
    if not isinstance(label, str) or len(label) > 255:
        fail(_("label must be text of at most 255 characters."))

    if kind == LineItemKind.MEMBERSHIP:
        if not isinstance(membership, Membership) or participant is not None:
            fail(_("a membership line names the membership it pays for, and nothing else."))
        mtype = membership.membership_type
        if mtype.currency != currency:
            fail(
                _("the membership type is priced in %(theirs)s, not %(ours)s.")
                % {"theirs": mtype.currency, "ours": currency}
            )
        if membership.status in (MembershipStatus.CANCELLED, MembershipStatus.DECEASED):
            fail(_("this membership is %(status)s.") % {"status": membership.get_status_display()})
        # Refuse now what ``complete`` would refuse once the money is in.
        if quantity > memberships.MAX_TERMS:
            fail(
                _("a membership line pays for at most %(max)d terms.")
                % {"max": memberships.MAX_TERMS}
            )
        refusal = memberships.paid_term_refusal(membership)
        if refusal:
            fail(refusal)
        fund = fund or mtype.financial_type
        label = label or mtype.name
    elif kind == LineItemKind.EVENT_FEE:
        if not isinstance(participant, Participant) or membership is not None:
            fail(_("an event line names the participant it pays for, and nothing else."))
        event = participant.event
        if event.currency != currency:
            fail(
                _("the event is priced in %(theirs)s, not %(ours)s.")
                % {"theirs": event.currency, "ours": currency}
            )
        if participant.status == ParticipantStatus.CANCELLED:
            fail(_("this registration is cancelled."))
        fund = fund or event.financial_type or _fund(DEFAULT_EVENT_FUND)
        label = label or event.title
    else:
        if membership is not None or participant is not None:
            fail(_("a donation line pays for no membership or registration."))
        fund = fund or default_fund or _fund(DEFAULT_DONATION_FUND)
        label = label or fund.name
    return LineItem(
        kind=kind,
        label=plain_text(label)[:255],
        quantity=quantity,
        unit_amount=unit_amount,
        line_total=unit_amount * quantity,
        financial_type=fund,
        membership=membership if kind == LineItemKind.MEMBERSHIP else None,
        participant=participant if kind == LineItemKind.EVENT_FEE else None,
    )


def _clean_soft_credits(soft_credits, contact, currency, total):
    cleaned, seen = [], set()
    if not isinstance(soft_credits, (list, tuple)):
        raise ValidationError({"soft_credits": [_("Expected a list.")]})
    for index, credit in enumerate(soft_credits):
        prefix = _("Soft credit %(n)d: ") % {"n": index + 1}

        def fail(message, prefix=prefix):
            raise ValidationError({"soft_credits": [prefix + str(message)]})

        if not isinstance(credit, dict):
            fail(_("expected an object with contact and kind."))
        unknown = sorted(str(key) for key in credit if key not in SOFT_CREDIT_KEYS)
        if unknown:
            fail(_("unknown keys %(keys)s.") % {"keys": ", ".join(unknown)})
        credited = credit.get("contact")
        if not isinstance(credited, Contact):
            fail(_("name the contact to credit."))
        if credited.pk == contact.pk:
            fail(_("the payer already has the contribution; credit someone else."))
        if credited.is_deleted:
            fail(_("this contact is in the trash."))
        kind = credit.get("kind")
        if kind not in SoftCreditKind.values:
            fail(_("kind must be one of %(kinds)s.") % {"kinds": ", ".join(SoftCreditKind.values)})
        if (credited.pk, kind) in seen:
            fail(_("this contact is already credited that way."))
        seen.add((credited.pk, kind))
        amount = credit.get("amount")
        if amount is None:
            amount = total
        else:
            try:
                amount = parse_amount(amount, currency)
            except ValidationError as error:
                fail(error.messages[0])
            if amount > total:
                fail(_("the credit cannot be more than the contribution's total."))
        cleaned.append(SoftCredit(contact=credited, kind=kind, amount=amount))
    return cleaned


def _pending_contribution(actor, **fields):
    """A new, unsaved contribution awaiting payment (what ``create_pending`` saves)."""
    return Contribution(
        **fields,
        status=S.PENDING,
        receipt_status=ReceiptStatus.PENDING,
        created_by=user_or_none(actor),
    )


def _check_total(total):
    if total <= 0:
        raise ValidationError(
            {"lines": [_("The total must be more than zero; nothing free needs a contribution.")]}
        )
    if total > MAX_AMOUNT:
        raise ValidationError({"lines": [_("The total is too large.")]})
    return total


@transaction.atomic
def create_pending(
    contact,
    *,
    currency,
    lines,
    financial_type=None,
    campaign=None,
    payment_method="",
    soft_credits=(),
    recurring=None,
    note="",
    actor=None,
    source="",
):
    """Record a contribution that is owed but not paid yet; returns it (status pending).

    ``lines`` is a list of dicts, one per thing paid for::

        {"kind": "donation" | "membership" | "event_fee",
         "amount": unit amount (Decimal or text), "quantity": 1, "label": "...",
         "financial_type": FinancialType (optional),
         "membership": Membership (membership lines), "participant": Participant (event lines)}

    A line may be zero (a free item listed beside paid ones); the total must
    be more than zero: a free registration needs no contribution. The fund of
    a line defaults to the membership type's, the event's ("event-fee" when it
    has none) or, for donations, the contribution's ("donation" when none).
    The contribution's fund defaults to its first line's.

    Grants nothing: memberships and seats are given by ``complete``.
    One transaction; bad input raises ``ValidationError`` keyed by field and
    saves nothing.
    """
    if Contact.all_objects.filter(pk=contact.pk, is_deleted=True).exists():
        raise ValidationError({"contact": [_("This contact is in the trash.")]})
    try:
        currency = validate_currency(currency)
    except ValidationError as error:
        raise ValidationError({"currency": error.messages}) from None
    if financial_type is not None and not financial_type.is_active:
        raise ValidationError({"financial_type": [_("This financial type is not active.")]})
    if campaign is not None and not isinstance(campaign, Campaign):
        raise ValidationError({"campaign": [_("Expected a campaign.")]})
    if payment_method:
        _payment_method(payment_method)
    note = _text(note, "note", multiline=True)
    if not isinstance(lines, (list, tuple)) or not lines:
        raise ValidationError({"lines": [_("Give at least one line: what is being paid for.")]})
    if len(lines) > 100:
        raise ValidationError({"lines": [_("At most 100 lines.")]})
    items = [_clean_line(i, line, currency, financial_type) for i, line in enumerate(lines)]
    total = _check_total(sum((item.line_total for item in items), Decimal(0)))
    credits = _clean_soft_credits(soft_credits, contact, currency, total)
    if recurring is not None:
        if recurring.contact_id != contact.pk or recurring.currency != currency:
            raise ValidationError(
                {"recurring": [_("The recurring contribution is for another contact or currency.")]}
            )
        if recurring.status in (RecurringStatus.CANCELLED, RecurringStatus.COMPLETED):
            raise ValidationError({"recurring": [_("This recurring contribution has ended.")]})

    contribution = _pending_contribution(
        actor,
        contact=contact,
        total_amount=total,
        currency=currency,
        financial_type=financial_type or items[0].financial_type,
        campaign=campaign,
        source=_text(source, "source"),
        payment_method=payment_method,
        recurring=recurring,
        note=note,
    )
    contribution.save(force_insert=True)
    for item in items:
        item.contribution = contribution
    LineItem.objects.bulk_create(items)
    for credit in credits:
        credit.contribution = contribution
    SoftCredit.objects.bulk_create(credits)
    _log(
        contribution,
        _("Contribution of %(money)s recorded, awaiting payment") % {"money": _money(contribution)},
        old=None,
        new=S.PENDING,
        actor=actor,
        source=source,
    )
    for credit in credits:
        record_system_event(
            credit.contact,
            _("%(kind)s credit: %(money)s from %(payer)s")
            % {
                "kind": credit.get_kind_display(),
                "money": _money(contribution, credit.amount),
                "payer": contact.display_name,
            },
            actor=actor,
            source=source,
        )
    return contribution


# -- paying -----------------------------------------------------------------------------


def _received_at(value):
    if value is None:
        return timezone.now()
    if not isinstance(value, datetime.datetime):
        raise ValidationError({"received_at": [_("Expected a date and time.")]})
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value > timezone.now() + RECEIVED_AT_TOLERANCE:
        raise ValidationError({"received_at": [_("A payment cannot be received in the future.")]})
    if value.year < 1900:
        raise ValidationError({"received_at": [_("Give a date after 1900.")]})
    return value


def _clean_transaction_id(value):
    if not isinstance(value, str) or len(value) > 255:
        raise ValidationError({"transaction_id": [_("Expected text of at most 255 characters.")]})
    return value.strip()


def _duplicate_transaction(transaction_id):
    return DuplicateTransaction(
        _("The transaction %(id)s is already recorded on another contribution.")
        % {"id": transaction_id[:64]}
    )


def complete(
    contribution,
    *,
    transaction_id="",
    received_at=None,
    payment_method=None,
    actor=None,
    source="",
):
    """Mark the contribution paid and give the contact what it paid for.

    From pending, and from failed (a late success, as asynchronous payments
    report). Idempotent: the contribution row is locked first, and one that
    is already paid (completed or refunded in part or whole) is returned
    unchanged, so a webhook delivered twice, or two concurrent calls, apply
    each line once. A cancelled contribution is refused (``InvalidTransition``):
    money that arrives for it is the payment layer's to refund or reassign.

    For each line, in order: a membership line -> ``memberships.apply_paid_term``,
    an event line -> ``events.confirm_paid_participant`` (both idempotent
    through ``LineItem.applied_at``). A recurring contribution moves on to
    its next date. ``transaction_id``, when given, must not belong to another
    contribution (``DuplicateTransaction``). One transaction: if a line cannot
    be applied, nothing is saved. Returns the updated contribution.
    """
    transaction_id = _clean_transaction_id(transaction_id)
    if payment_method is not None:
        _payment_method(payment_method)
    received = _received_at(received_at)
    with transaction.atomic():
        locked = _locked(contribution)
        if locked.status in PAID_STATUSES:
            return locked
        if locked.status not in (S.PENDING, S.FAILED):
            _refuse(locked, _("paid"))
        if (
            transaction_id
            and Contribution.objects.filter(transaction_id=transaction_id)
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise _duplicate_transaction(transaction_id)
        old = locked.status
        locked.status = S.COMPLETED
        locked.received_at = received
        locked.status_reason = ""
        if transaction_id:
            locked.transaction_id = transaction_id
        if payment_method:
            locked.payment_method = payment_method
        if locked.receipt_status != ReceiptStatus.SENT:
            locked.receipt_status = ReceiptStatus.PENDING
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError:
            # Another contribution took the same transaction id since we looked.
            raise _duplicate_transaction(transaction_id) from None
        _log(
            locked,
            _("Contribution of %(money)s completed") % {"money": _money(locked)},
            old=old,
            new=S.COMPLETED,
            actor=actor,
            source=source,
        )
        for line in locked.line_items.select_related("membership", "participant").order_by("id"):
            if line.kind == LineItemKind.MEMBERSHIP:
                memberships.apply_paid_term(line, actor=actor, source=source)
            elif line.kind == LineItemKind.EVENT_FEE:
                events.confirm_paid_participant(line, actor=actor, source=source)
        if locked.recurring_id:
            _advance_recurring(locked.recurring_id)
    return locked


def _plan_donation(entry, taken, default_fund, *, actor):
    """One ``record_donations`` entry -> (unsaved Contribution, LineItem); raises
    what ``create_pending`` and ``complete`` would raise for it."""
    try:
        currency = validate_currency(entry["currency"])
    except ValidationError as error:
        raise ValidationError({"currency": error.messages}) from None
    fund = entry.get("financial_type")
    if fund is not None and not fund.is_active:
        raise ValidationError({"financial_type": [_("This financial type is not active.")]})
    payment_method = entry.get("payment_method") or ""
    if payment_method:
        _payment_method(payment_method)
    note = _text(entry.get("note", ""), "note", multiline=True)
    line = _clean_line(
        0,
        {"kind": LineItemKind.DONATION, "amount": entry["amount"], "financial_type": fund},
        currency,
        fund or default_fund(),
    )
    total = _check_total(line.line_total)
    contribution = _pending_contribution(
        actor,
        contact_id=entry["contact_id"],
        total_amount=total,
        currency=currency,
        financial_type=fund or line.financial_type,
        source=_text(entry.get("source", ""), "source"),  # checked last, as in create_pending
        payment_method=payment_method,
        note=note,
    )
    if entry.get("paid"):
        transaction_id = _clean_transaction_id(entry.get("transaction_id", ""))
        received = _received_at(entry.get("received_at"))
        if transaction_id in taken:
            raise _duplicate_transaction(transaction_id)
        if transaction_id:
            taken.add(transaction_id)
        contribution.status = S.COMPLETED
        contribution.received_at = received
        contribution.transaction_id = transaction_id
    return contribution, line


@transaction.atomic
def record_donations(entries, *, actor=None, source=""):
    """Record many one-line donations at once, each as ``create_pending`` and
    then, when paid, ``complete`` record it: the same checks, rows and history
    entries, written with a few bulk statements (an import of past giving).

    ``entries`` are dicts: contact_id, currency, amount, financial_type (a
    FinancialType or None), note, source (the contribution's), and for a paid
    one paid=True, received_at (None: now), transaction_id. ``source`` is the
    caller's, for the "completed" entries, as ``complete(source=...)``.

    Returns one item per entry: its saved Contribution, or the
    ``ValidationError`` / ``DuplicateTransaction`` that refused it (nothing of
    it saved). A transaction id another contribution takes at the same moment
    raises ``IntegrityError`` for the whole call, which saves nothing.
    """
    results = [None] * len(entries)
    wanted = {
        entry.get("transaction_id").strip()
        for entry in entries
        if entry.get("paid") and isinstance(entry.get("transaction_id"), str)
    } - {""}
    taken = set(
        Contribution.objects.filter(transaction_id__in=wanted).values_list(
            "transaction_id", flat=True
        )
    )
    trashed = set(
        Contact.all_objects.filter(
            pk__in={entry["contact_id"] for entry in entries}, is_deleted=True
        ).values_list("pk", flat=True)
    )
    found = []

    def default_fund():
        # _clean_line's default for a donation, looked up once for the call
        # (a missing one too: its error is kept and raised for each entry).
        if not found:
            try:
                found.append(_fund(DEFAULT_DONATION_FUND))
            except ValidationError as error:
                found.append(error)
        if isinstance(found[0], ValidationError):
            raise ValidationError(found[0].message_dict)
        return found[0]

    planned = []
    for index, entry in enumerate(entries):
        try:
            if entry["contact_id"] in trashed:
                raise ValidationError({"contact": [_("This contact is in the trash.")]})
            planned.append((index, entry, *_plan_donation(entry, taken, default_fund, actor=actor)))
        except (ValidationError, DuplicateTransaction) as error:
            results[index] = error
    bulk_insert(Contribution, [contribution for _i, _e, contribution, _l in planned])
    for _index, _entry, contribution, line in planned:
        line.contribution = contribution
    bulk_insert(LineItem, [line for _i, _e, _c, line in planned])
    events = []
    for index, entry, contribution, _line in planned:
        money = _money(contribution)
        events.append(
            _log_event(
                contribution,
                _("Contribution of %(money)s recorded, awaiting payment") % {"money": money},
                old=None,
                new=S.PENDING,
                actor=actor,
                source=entry.get("source", ""),
            )
        )
        if contribution.status == S.COMPLETED:
            events.append(
                _log_event(
                    contribution,
                    _("Contribution of %(money)s completed") % {"money": money},
                    old=S.PENDING,
                    new=S.COMPLETED,
                    actor=actor,
                    source=source,
                )
            )
        results[index] = contribution
    bulk_insert(Activity, events)
    return results


def record_offline_payment(
    contribution, *, payment_method, received_at=None, transaction_id="", actor=None, source=""
):
    """Staff record that a pay-later contribution was paid by cheque, cash, bank transfer
    or another offline way; then ``complete`` does the rest (idempotent as it is).

    Card and direct debit payments come from a provider and are refused here.
    """
    _payment_method(payment_method, allowed=[str(m) for m in OFFLINE_PAYMENT_METHODS])
    return complete(
        contribution,
        transaction_id=transaction_id,
        received_at=received_at,
        payment_method=payment_method,
        actor=actor,
        source=source,
    )


@transaction.atomic
def fail(contribution, *, reason="", actor=None, source=""):
    """A payment attempt failed: pending -> failed. Failed again changes nothing.

    A failed contribution can still be completed (a retry or late success)
    or cancelled. Paid or cancelled ones are refused (``InvalidTransition``).
    """
    reason = _text(reason, "reason")
    locked = _locked(contribution)
    if locked.status == S.FAILED:
        return locked
    if locked.status != S.PENDING:
        _refuse(locked, _("marked failed"))
    locked.status = S.FAILED
    locked.status_reason = reason
    locked.save(update_fields=["status", "status_reason", "updated_at"])
    _log(
        locked,
        _("Payment of %(money)s failed") % {"money": _money(locked)},
        old=S.PENDING,
        new=S.FAILED,
        actor=actor,
        source=source,
        details=reason,
    )
    return locked


@transaction.atomic
def cancel(contribution, *, reason="", actor=None, source=""):
    """Nothing will be paid: pending or failed -> cancelled (cancelled again: unchanged).

    Releases what it held: a membership still pending payment is cancelled
    (``memberships.cancel``), a seat still pending payment is given up
    (``events.cancel_registration``). A paid contribution is refunded, not
    cancelled (``InvalidTransition``).
    """
    reason = _text(reason, "reason")
    locked = _locked(contribution)
    if locked.status == S.CANCELLED:
        return locked
    if locked.status not in (S.PENDING, S.FAILED):
        _refuse(locked, _("cancelled; refund it instead"))
    old = locked.status
    locked.status = S.CANCELLED
    locked.status_reason = reason
    locked.receipt_status = ReceiptStatus.NOT_REQUIRED
    locked.save(update_fields=["status", "status_reason", "receipt_status", "updated_at"])
    _log(
        locked,
        _("Contribution of %(money)s cancelled") % {"money": _money(locked)},
        old=old,
        new=S.CANCELLED,
        actor=actor,
        source=source,
        details=reason,
    )
    for line in locked.line_items.select_related("membership", "participant").order_by("id"):
        if line.kind == LineItemKind.DONATION or line.applied_at is not None:
            continue
        if _other_lines(line, (S.PENDING, S.FAILED)).exists():
            # Another contribution may still pay for it (a second invoice for
            # the same membership or seat): it stays held.
            continue
        if line.kind == LineItemKind.MEMBERSHIP:
            membership = Membership.objects.select_for_update().get(pk=line.membership_id)
            if membership.status == MembershipStatus.PENDING:
                memberships.cancel(
                    membership,
                    reason=reason or _("Its payment was cancelled."),
                    actor=actor,
                    source=source,
                )
        elif line.kind == LineItemKind.EVENT_FEE:
            # The events services lock the event before its participants; same order here.
            event_id = Participant.objects.values_list("event_id", flat=True).get(
                pk=line.participant_id
            )
            Event.objects.select_for_update(no_key=True).get(pk=event_id)
            participant = Participant.objects.select_for_update(of=("self",)).get(
                pk=line.participant_id
            )
            if participant.status == ParticipantStatus.PENDING_PAYMENT:
                events.cancel_registration(
                    participant,
                    reason=reason or _("Its payment was cancelled."),
                    actor=actor,
                    source=source,
                )
    return locked


def refundable_amount(contribution, amount=None, *, reserved=Decimal(0)):
    """What a refund of ``contribution`` may give back: ``amount``, checked, or all that is left.

    Left = the total, less what is refunded and ``reserved`` (refunds asked
    for but not confirmed yet, which the payment layer counts). Raises
    ``RefundNotAllowed`` unless the contribution is paid and ``0 < amount <=
    left``, and ``ValidationError`` (keyed "amount") for an amount that is
    not money of its currency. Reads the row as given: lock it first.
    """
    if contribution.status not in (S.COMPLETED, S.PARTIALLY_REFUNDED):
        if contribution.status == S.REFUNDED:
            raise RefundNotAllowed(_("This contribution has already been refunded in full."))
        raise RefundNotAllowed(
            _("Only a paid contribution can be refunded; this one is %(status)s.")
            % {"status": contribution.get_status_display().lower()}
        )
    remaining = contribution.total_amount - contribution.refunded_amount - reserved
    if amount is None:
        amount = remaining
    else:
        try:
            amount = parse_amount(amount, contribution.currency)
        except ValidationError as error:
            raise ValidationError({"amount": error.messages}) from None
    if amount <= 0 or amount > remaining:
        raise RefundNotAllowed(
            _("At most %(money)s is left to refund.")
            % {"money": _money(contribution, max(remaining, Decimal(0)))}
        )
    return amount


@transaction.atomic
def refund(contribution, *, amount=None, reason="", actor=None, source=""):
    """Give back all (``amount`` None) or part of what is left of a paid contribution.

    Only from completed or partially refunded; ``0 < amount <= total -
    refunded`` or ``RefundNotAllowed``. The row is locked, so concurrent
    refunds never add up to more than the total. The status becomes
    partially_refunded, or refunded once nothing is left. When a refund
    leaves nothing, settings REFUND_MEMBERSHIP_POLICY and
    REFUND_REGISTRATION_POLICY decide what happens to what was paid for:
    "cancel" revokes the membership term / the seat
    (``memberships.revoke_paid_term``, ``events.revoke_paid_participant``),
    "keep" leaves it. A partial refund never revokes anything.

    This records the refund; returning the money is the payment provider's
    (crm_payments calls this once the provider has refunded).
    """
    reason = _text(reason, "reason")
    locked = _locked(contribution)
    amount = refundable_amount(locked, amount)
    old = locked.status
    locked.refunded_amount += amount
    full = locked.refunded_amount == locked.total_amount
    locked.status = S.REFUNDED if full else S.PARTIALLY_REFUNDED
    if reason:
        locked.status_reason = reason
    locked.save(update_fields=["refunded_amount", "status", "status_reason", "updated_at"])
    _log(
        locked,
        _("%(money)s refunded") % {"money": _money(locked, amount)},
        old=old,
        new=locked.status,
        actor=actor,
        source=source,
        details=reason,
    )
    if full:
        _apply_refund_policies(locked, actor=actor, source=source)
    return locked


def _other_lines(line, statuses):
    """Lines of other contributions in ``statuses`` for what ``line`` pays for."""
    target = (
        {"membership_id": line.membership_id}
        if line.kind == LineItemKind.MEMBERSHIP
        else {"participant_id": line.participant_id}
    )
    return LineItem.objects.filter(
        kind=line.kind, contribution__status__in=statuses, **target
    ).exclude(contribution_id=line.contribution_id)


def _apply_refund_policies(contribution, *, actor, source):
    cancel_terms = crm_setting("REFUND_MEMBERSHIP_POLICY") == "cancel"
    cancel_seats = crm_setting("REFUND_REGISTRATION_POLICY") == "cancel"
    for line in contribution.line_items.order_by("id"):
        if line.applied_at is None:
            continue
        if line.kind == LineItemKind.MEMBERSHIP and cancel_terms:
            memberships.revoke_paid_term(line, actor=actor, source=source)
        elif line.kind == LineItemKind.EVENT_FEE and cancel_seats:
            # A place paid twice (two payments for one seat): refunding one
            # leaves the place the other still pays for.
            still_paid = (S.COMPLETED, S.PARTIALLY_REFUNDED)
            if not _other_lines(line, still_paid).filter(applied_at__isnull=False).exists():
                events.revoke_paid_participant(line, actor=actor, source=source)


@transaction.atomic
def mark_receipt_sent(contribution, *, sent_at=None, actor=None, source=""):
    """Note that the receipt went out (sending it is the receipts task's job).

    Only for contributions that were paid; marking twice keeps the first time
    and records nothing more in the payer's history.
    """
    locked = _locked(contribution)
    if locked.status not in PAID_STATUSES:
        _refuse(locked, _("receipted"))
    if locked.receipt_status != ReceiptStatus.SENT:
        old = locked.receipt_status
        locked.receipt_status = ReceiptStatus.SENT
        locked.receipt_sent_at = sent_at or timezone.now()
        locked.save(update_fields=["receipt_status", "receipt_sent_at", "updated_at"])
        record_system_event(
            locked.contact,
            _("Receipt for %(money)s sent") % {"money": _money(locked)},
            actor=actor,
            source=source,
            changes={"receipt_status": [old, ReceiptStatus.SENT]},
        )
    return locked


@transaction.atomic
def set_disputed(contribution, *, disputed=True, reason="", actor=None, source=""):
    """Flag (or clear) a chargeback on a contribution. Idempotent.

    A flag for staff and reports only: the status and refunded amount do
    not change (a lost dispute is recorded as a refund by the payment layer).
    """
    reason = _text(reason, "reason")
    locked = _locked(contribution)
    if locked.is_disputed == disputed:
        return locked
    locked.is_disputed = disputed
    locked.save(update_fields=["is_disputed", "updated_at"])
    record_system_event(
        locked.contact,
        (_("Payment of %(money)s disputed") if disputed else _("Dispute on %(money)s closed"))
        % {"money": _money(locked)},
        actor=actor,
        source=source,
        details=reason,
        changes={"is_disputed": [not disputed, disputed]},
    )
    return locked


# -- recurring --------------------------------------------------------------------------


def nth_payment_date(start_date, frequency_unit, frequency_interval, n):
    """Date of payment ``n`` (0 = the first, on ``start_date``).

    Always counted from the start, never from the previous date, so a plan
    started on 31 January pays on 28/29 February and again on 31 March.
    """
    months = frequency_interval * n * (12 if frequency_unit == FrequencyUnit.YEAR else 1)
    return add_months(start_date, months)


def _advance_recurring(recurring_id):
    recurring = RecurringContribution.objects.select_for_update().get(pk=recurring_id)
    if recurring.status in (RecurringStatus.CANCELLED, RecurringStatus.COMPLETED):
        return
    paid = recurring.contributions.filter(status__in=PAID_STATUSES).count()
    next_date = None
    if not (recurring.installments and paid >= recurring.installments):
        try:
            next_date = nth_payment_date(
                recurring.start_date, recurring.frequency_unit, recurring.frequency_interval, paid
            )
        except OverflowError:
            # Past year 9999 (an open-ended schedule, or one set up before
            # schedules were bounded): no date to ask for, so the schedule ends
            # rather than the payment that got here failing.
            next_date = None
    recurring.next_date = next_date
    recurring.status = RecurringStatus.IN_PROGRESS if next_date else RecurringStatus.COMPLETED
    recurring.save(update_fields=["status", "next_date", "updated_at"])


def _schedule_too_long(start_date, frequency_unit, frequency_interval, installments):
    """An error when the last instalment would fall after LATEST_DATE, else {}.

    Refused up front: 1,200 instalments every 10 years would otherwise be
    accepted, then fail when a late instalment is paid and its next date
    cannot be counted.
    """
    try:
        last = nth_payment_date(start_date, frequency_unit, frequency_interval, installments - 1)
    except OverflowError:
        last = None
    if last is not None and last <= LATEST_DATE:
        return {}
    return {
        "installments": [
            _(
                "The last instalment would fall after %(latest)s: "
                "give fewer instalments or a shorter interval."
            )
            % {"latest": LATEST_DATE.isoformat()}
        ]
    }


@transaction.atomic
def create_recurring(
    contact,
    *,
    amount,
    currency,
    frequency_unit,
    frequency_interval=1,
    financial_type,
    campaign=None,
    membership=None,
    installments=None,
    start_date=None,
    processor="",
    processor_id="",
    payment_method="",
    actor=None,
    source="",
):
    """Set up a standing order (status pending until its first payment completes).

    ``next_date`` starts at ``start_date`` (default today) and moves on as
    instalments complete (see ``nth_payment_date``). Taking the money is the
    payment provider's; each instalment is a contribution made with
    ``create_pending(..., recurring=...)``. A schedule whose last instalment
    would fall after ``LATEST_DATE`` (2199) is refused.
    """
    errors = {}
    if Contact.all_objects.filter(pk=contact.pk, is_deleted=True).exists():
        errors["contact"] = [_("This contact is in the trash.")]
    try:
        currency = validate_currency(currency)
    except ValidationError as error:
        raise ValidationError({"currency": error.messages}) from None
    try:
        amount = parse_amount(amount, currency)
    except ValidationError as error:
        errors["amount"] = error.messages
    if frequency_unit not in FrequencyUnit.values:
        errors["frequency_unit"] = [
            _("Choose one of: %(choices)s.") % {"choices": ", ".join(FrequencyUnit.values)}
        ]
    elif (
        isinstance(frequency_interval, bool)
        or not isinstance(frequency_interval, int)
        or not 1 <= frequency_interval <= MAX_FREQUENCY_INTERVAL[frequency_unit]
    ):
        errors["frequency_interval"] = [
            _("Give a whole number from 1 to %(max)d.")
            % {"max": MAX_FREQUENCY_INTERVAL[frequency_unit]}
        ]
    if installments is not None and (
        isinstance(installments, bool)
        or not isinstance(installments, int)
        or not 1 <= installments <= MAX_INSTALLMENTS
    ):
        errors["installments"] = [
            _("Give a whole number from 1 to %(max)d, or leave it open-ended.")
            % {"max": MAX_INSTALLMENTS}
        ]
    if not isinstance(financial_type, FinancialType):
        errors["financial_type"] = [_("Choose a financial type.")]
    elif not financial_type.is_active:
        errors["financial_type"] = [_("This financial type is not active.")]
    today = timezone.localdate()
    if start_date is None:
        start_date = today
    elif not isinstance(start_date, datetime.date) or isinstance(start_date, datetime.datetime):
        errors["start_date"] = [_("Expected a date.")]
    elif not (today.replace(year=today.year - 100, day=1) <= start_date <= add_months(today, 12)):
        errors["start_date"] = [_("Give a start date no more than a year from today.")]
    schedule = ("frequency_unit", "frequency_interval", "installments", "start_date")
    if installments and not any(name in errors for name in schedule):
        errors.update(
            _schedule_too_long(start_date, frequency_unit, frequency_interval, installments)
        )
    if payment_method:
        try:
            _payment_method(payment_method)
        except ValidationError as error:
            errors.update(error.message_dict)
    if membership is not None and membership.contact_id != contact.pk:
        errors["membership"] = [_("The membership belongs to another contact.")]
    for name, value in (("processor", processor), ("processor_id", processor_id)):
        limit = 50 if name == "processor" else 255
        if not isinstance(value, str) or len(value) > limit:
            errors[name] = [_("Expected text of at most %(n)d characters.") % {"n": limit}]
    if errors:
        raise ValidationError(errors)
    recurring = RecurringContribution.objects.create(
        contact=contact,
        amount=amount,
        currency=currency,
        frequency_unit=frequency_unit,
        frequency_interval=frequency_interval,
        installments=installments,
        financial_type=financial_type,
        campaign=campaign,
        membership=membership,
        start_date=start_date,
        next_date=start_date,
        processor=processor.strip(),
        processor_id=processor_id.strip(),
        payment_method=payment_method,
        source=_text(source, "source"),
        status=RecurringStatus.PENDING,
    )
    record_system_event(
        contact,
        _("Recurring contribution of %(money)s every %(n)d %(unit)s set up")
        % {
            "money": format_money(amount, currency),
            "n": frequency_interval,
            "unit": recurring.get_frequency_unit_display().lower(),
        },
        actor=actor,
        source=source,
        changes={"recurring_status": [None, RecurringStatus.PENDING]},
    )
    return recurring


@transaction.atomic
def cancel_recurring(recurring, *, reason, actor=None, source=""):
    """Stop a standing order; the reason (required) is kept for reporting.

    Idempotent: a cancelled one is returned unchanged. One that completed all
    its instalments is refused. Contributions already made are untouched;
    stopping the provider's subscription is crm_payments'.
    """
    reason = _text(reason, "reason")
    if not reason:
        raise ValidationError({"reason": [_("Say why the recurring contribution stops.")]})
    locked = RecurringContribution.objects.select_for_update().get(pk=recurring.pk)
    if locked.status == RecurringStatus.CANCELLED:
        return locked
    if locked.status == RecurringStatus.COMPLETED:
        raise InvalidTransition(_("This recurring contribution has already completed."))
    old = locked.status
    locked.status = RecurringStatus.CANCELLED
    locked.cancelled_at = timezone.now()
    locked.cancel_reason = reason
    locked.next_date = None
    locked.save(
        update_fields=["status", "cancelled_at", "cancel_reason", "next_date", "updated_at"]
    )
    record_system_event(
        locked.contact,
        _("Recurring contribution of %(money)s cancelled")
        % {"money": format_money(locked.amount, locked.currency)},
        actor=actor,
        source=source,
        details=reason,
        changes={"recurring_status": [old, RecurringStatus.CANCELLED]},
    )
    return locked


@transaction.atomic
def mark_recurring_failed(recurring, *, reason="", actor=None, source=""):
    """The provider gave up collecting (retries exhausted): -> failed. Idempotent.

    Cancelled or completed ones are refused.
    """
    reason = _text(reason, "reason")
    locked = RecurringContribution.objects.select_for_update().get(pk=recurring.pk)
    if locked.status == RecurringStatus.FAILED:
        return locked
    if locked.status in (RecurringStatus.CANCELLED, RecurringStatus.COMPLETED):
        raise InvalidTransition(_("This recurring contribution has already ended."))
    old = locked.status
    locked.status = RecurringStatus.FAILED
    locked.save(update_fields=["status", "updated_at"])
    record_system_event(
        locked.contact,
        _("Recurring contribution of %(money)s failed")
        % {"money": format_money(locked.amount, locked.currency)},
        actor=actor,
        source=source,
        details=reason,
        changes={"recurring_status": [old, RecurringStatus.FAILED]},
    )
    return locked


@transaction.atomic
def set_recurring_processor(recurring, *, processor, processor_id, actor=None, source=""):
    """Record the provider's subscription behind a standing order, once.

    Called when the provider reports the subscription exists (crm_payments'
    Stripe webhooks and reconcile command). Idempotent: the same id again
    changes nothing and records nothing. A standing order already linked to
    another subscription is refused (``InvalidTransition``): a second
    subscription for one standing order is for staff to look at, never
    silently swapped. The row is locked.
    """
    for name, value, limit in (("processor", processor, 50), ("processor_id", processor_id, 255)):
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ValidationError(
                {name: [_("Expected text of at most %(n)d characters.") % {"n": limit}]}
            )
    processor, processor_id = processor.strip(), processor_id.strip()
    locked = RecurringContribution.objects.select_for_update().get(pk=recurring.pk)
    if locked.processor == processor and locked.processor_id == processor_id:
        return locked
    if locked.processor_id:
        raise InvalidTransition(
            _("This recurring contribution is already linked to %(id)s.")
            % {"id": locked.processor_id[:64]}
        )
    locked.processor = processor
    locked.processor_id = processor_id
    locked.save(update_fields=["processor", "processor_id", "updated_at"])
    record_system_event(
        locked.contact,
        _("Recurring contribution of %(money)s linked to %(processor)s %(id)s")
        % {
            "money": format_money(locked.amount, locked.currency),
            "processor": processor,
            "id": processor_id,
        },
        actor=actor,
        source=source,
        changes={"processor_id": ["", processor_id]},
    )
    return locked
