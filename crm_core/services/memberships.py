"""Joining, renewing, cancelling and changing memberships; their statuses.

These functions are the only writers of ``Membership`` rows. Each runs in one
transaction, locks the rows whose race matters (the contact when joining, the
membership otherwise), and appends a system activity to the contact's history
naming the actor, the source and the fields that changed.

Date rules live in ``crm_core.memberships_dates``. Statuses:

- ``pending``, ``cancelled`` and ``deceased`` are set by these services only;
  the date rules never touch them (except that every membership of a contact
  marked deceased becomes ``deceased``, and turns back to a date-driven status
  if that mark is removed).
- ``new``, ``current``, ``grace`` and ``expired`` come from the active
  ``MembershipStatusRule`` rows: the first rule by weight whose window holds
  the day wins. A ``new`` rule never applies once the end date has passed, so
  a short membership that ends within its "new" window goes on to grace or
  expired instead of staying new.
"""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from ..dates import EARLIEST_DATE, LATEST_DATE, add_interval
from ..exceptions import AlreadyMember, ContactDeleted, InvalidTransition, MembershipNotRenewable
from ..memberships_dates import (
    ONE_DAY,
    first_term,
    grace_end,
    is_lifetime,
    renewal_end,
)
from ..models import (
    RULE_STATUSES,
    Activity,
    ActivityType,
    AutoRenew,
    Contact,
    ContactKind,
    LineItem,
    Membership,
    MembershipStatus,
    MembershipStatusRule,
    MembershipType,
    Relationship,
)
from ..sanitize import plain_text
from .activities import record_system_event, user_or_none

MAX_TERMS = 10
# A second membership of the same type is refused while one of these exists.
LIVE_STATUSES = (
    MembershipStatus.PENDING,
    MembershipStatus.NEW,
    MembershipStatus.CURRENT,
    MembershipStatus.GRACE,
)
# Statuses in which a primary membership hands inherited memberships out.
INHERITING_STATUSES = (MembershipStatus.NEW, MembershipStatus.CURRENT, MembershipStatus.GRACE)
CHUNK = 1000
STATUS_SOURCE = "status rules"


# -- statuses ---------------------------------------------------------------------------


def active_status_rules():
    """The active date rules, in the order they are tried."""
    return list(
        MembershipStatusRule.objects.filter(is_active=True, status__in=RULE_STATUSES).order_by(
            "weight", "id"
        )
    )


def _shift(day, unit, count):
    """``day`` + offset; beyond the calendar's ends, the end in that direction."""
    try:
        return add_interval(day, unit, count)
    except (OverflowError, ValueError):
        return datetime.date.max if count >= 0 else datetime.date.min


def _event_dates(membership):
    mtype = membership.membership_type
    try:
        grace = grace_end(membership.end_date, mtype)
    except OverflowError:
        grace = datetime.date.max
    return {
        "join": membership.join_date,
        "start": membership.start_date,
        "end": membership.end_date,
        "grace_end": grace,
    }


def _rule_holds(rule, dates, today):
    start = dates[rule.start_event]
    # A lifetime membership has no end: windows starting at it never begin.
    if start is None or _shift(start, rule.start_offset_unit, rule.start_offset_interval) > today:
        return False
    if rule.end_event:
        end = dates[rule.end_event]
        # ...and windows ending at it never close.
        if end is not None and _shift(end, rule.end_offset_unit, rule.end_offset_interval) < today:
            return False
    # "New" never outlasts the end date (see the module docstring).
    ended = dates["end"] is not None and dates["end"] < today
    return not (rule.status == MembershipStatus.NEW and ended)


def status_from_rules(membership, *, today=None, rules=None):
    """The date-driven status of ``membership`` on ``today``, or None if no rule holds.

    Reads no status: callers decide whether the membership's status is one the
    rules may change.
    """
    today = today or timezone.localdate()
    rules = active_status_rules() if rules is None else rules
    dates = _event_dates(membership)
    for rule in rules:
        if _rule_holds(rule, dates, today):
            return rule.status
    return None


def _latest_event_date(today, unit, count):
    """Largest date e with e + offset <= today."""
    candidate = _shift(today, unit, -count)
    while _shift(candidate + ONE_DAY, unit, count) <= today:
        candidate += ONE_DAY
    while _shift(candidate, unit, count) > today:
        candidate -= ONE_DAY
    return candidate


def _earliest_event_date(today, unit, count):
    """Smallest date e with e + offset >= today."""
    candidate = _shift(today, unit, -count)
    while _shift(candidate - ONE_DAY, unit, count) >= today:
        candidate -= ONE_DAY
    while _shift(candidate, unit, count) < today:
        candidate += ONE_DAY
    return candidate


_COLUMNS = {"join": "join_date", "start": "start_date", "end": "end_date", "grace_end": "end_date"}


def _rule_q(rule, today, grace_days):
    """The rule's window as a filter on a membership type with ``grace_days`` of grace.

    The same test as ``_rule_holds``, turned round so the database compares
    plain date columns with thresholds computed here once.
    """

    def column_days(event):
        return grace_days if event == "grace_end" else 0

    event = rule.start_event
    threshold = _latest_event_date(today, rule.start_offset_unit, rule.start_offset_interval)
    q = Q(**{f"{_COLUMNS[event]}__lte": threshold - datetime.timedelta(column_days(event))})
    if event in ("end", "grace_end"):
        q &= Q(end_date__isnull=False)
    if rule.end_event:
        event = rule.end_event
        threshold = _earliest_event_date(today, rule.end_offset_unit, rule.end_offset_interval)
        ends = Q(**{f"{_COLUMNS[event]}__gte": threshold - datetime.timedelta(column_days(event))})
        if event in ("end", "grace_end"):
            ends |= Q(end_date__isnull=True)
        q &= ends
    if rule.status == MembershipStatus.NEW:
        q &= Q(end_date__isnull=True) | Q(end_date__gte=today)
    return q


def _date_driven_status(membership, *, today, rules):
    """What the status of ``membership`` should be, without writing; None: leave it."""
    if membership.contact.is_deceased:
        if membership.status == MembershipStatus.CANCELLED:
            return None
        return MembershipStatus.DECEASED
    if membership.status in (MembershipStatus.PENDING, MembershipStatus.CANCELLED):
        return None
    return status_from_rules(membership, today=today, rules=rules) or (
        # A membership no rule covers keeps its status; a deceased mark that was
        # removed must not leave it "deceased", so it counts as expired.
        MembershipStatus.EXPIRED if membership.status == MembershipStatus.DECEASED else None
    )


# -- helpers ----------------------------------------------------------------------------


def _today(today):
    return today or timezone.localdate()


def _check_date(name, value):
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise ValidationError({name: [_("Expected a date.")]})
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValidationError(
            {
                name: [
                    _("Give a date between %(earliest)s and %(latest)s.")
                    % {"earliest": EARLIEST_DATE.isoformat(), "latest": LATEST_DATE.isoformat()}
                ]
            }
        )


def _check_terms(terms, name="terms"):
    if isinstance(terms, bool) or not isinstance(terms, int) or not 1 <= terms <= MAX_TERMS:
        raise ValidationError(
            {name: [_("Give a whole number of terms from 1 to %(max)d.") % {"max": MAX_TERMS}]}
        )


def _too_far():
    return ValidationError({"end_date": [_("The end date would be beyond the year 9999.")]})


def _iso(value):
    return value.isoformat() if value else None


def _lock(membership):
    # The membership and its contact (as ``join`` locks the contact), never the
    # type: locking it would make every renewal of a type wait for the others
    # and let two transactions renewing two types in turn deadlock.
    return (
        Membership.objects.select_for_update(of=("self", "contact"))
        .select_related("membership_type", "contact")
        .get(pk=membership.pk)
    )


def _record(membership, subject, *, actor, source, changes):
    record_system_event(
        membership.contact,
        subject % {"type": membership.membership_type.name},
        actor=actor,
        source=source,
        changes=changes,
    )


def _changes(before, membership, fields):
    changes = {}
    for name in fields:
        old, new = before[name], getattr(membership, name)
        if old != new:
            changes[name] = [_plain(old), _plain(new)]
    return changes


def _plain(value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, MembershipType):
        return value.slug
    return value


def _snapshot(membership, fields):
    return {name: getattr(membership, name) for name in fields}


def _rule_status_or_error(membership, today):
    status = status_from_rules(membership, today=today)
    if status is None:
        raise ValidationError(
            {
                "start_date": [
                    _("No membership status rule covers these dates; check the dates or the rules.")
                ]
            }
        )
    return status


def _refresh(given, saved):
    if given is not saved:
        given.refresh_from_db()


# -- services ---------------------------------------------------------------------------


@transaction.atomic
def join(
    contact,
    membership_type,
    *,
    join_date=None,
    start_date=None,
    pending=False,
    auto_renew=False,
    today=None,
    actor=None,
    source="",
):
    """Make ``contact`` a member of ``membership_type``; returns the new Membership.

    The first term starts on ``start_date`` (default: the join date, default
    today) and its end follows the type's duration (fixed periods: the rest of
    the current period, plus the next one on or after the rollover day).
    ``pending=True`` creates it unpaid with those dates; ``apply_paid_term``
    activates it. Otherwise the status comes from the rules.

    Refused: an inactive type, a contact in the trash or deceased, auto-renew
    the type does not offer (or leaving it off when the type requires it), and
    a second live membership of the same type (``AlreadyMember``: renew the
    existing one). The contact row is locked, so two joins at once give one
    membership.
    """
    today = _today(today)
    locked = Contact.all_objects.select_for_update().get(pk=contact.pk)
    if locked.is_deleted:
        raise ContactDeleted(_("This contact is in the trash."))
    if locked.is_deceased:
        raise ValidationError({"contact": [_("This contact is deceased.")]})
    if not membership_type.is_active:
        raise ValidationError({"membership_type": [_("This membership type is not active.")]})
    if auto_renew and membership_type.auto_renew == AutoRenew.NO:
        raise ValidationError({"auto_renew": [_("This membership type does not auto-renew.")]})
    if not auto_renew and membership_type.auto_renew == AutoRenew.REQUIRED:
        raise ValidationError({"auto_renew": [_("This membership type must auto-renew.")]})
    join_date = join_date or today
    _check_date("join_date", join_date)
    start_date = start_date or join_date
    _check_date("start_date", start_date)
    if start_date < join_date:
        raise ValidationError({"start_date": [_("The start date is before the join date.")]})
    existing = Membership.objects.filter(
        contact=locked, membership_type=membership_type, status__in=LIVE_STATUSES
    ).first()
    if existing is not None:
        raise AlreadyMember(
            _(
                "This contact already has a %(status)s %(type)s membership; renew it "
                "instead of joining again (as CiviCRM would)."
            )
            % {"status": existing.get_status_display().lower(), "type": membership_type.name}
        )
    try:
        start, end = first_term(start_date, membership_type)
    except OverflowError:
        raise _too_far() from None
    membership = Membership(
        contact=locked,
        membership_type=membership_type,
        join_date=join_date,
        start_date=start,
        end_date=end,
        source=plain_text(source)[:255],
        auto_renew=auto_renew,
        created_by=user_or_none(actor),
    )
    membership.status = (
        MembershipStatus.PENDING if pending else _rule_status_or_error(membership, today)
    )
    membership.save()
    _record(
        membership,
        _("Joined: %(type)s"),
        actor=actor,
        source=source,
        changes={
            "membership_type": [None, membership_type.slug],
            "status": [None, membership.status],
            "start_date": [None, _iso(start)],
            "end_date": [None, _iso(end)],
        },
    )
    sync_inherited_memberships(membership, today=today, actor=actor, source=source)
    return membership


def _renewable(membership):
    if membership.inherited_from_id:
        raise MembershipNotRenewable(
            _("This membership is inherited; renew the membership it comes from.")
        )
    if membership.status in (
        MembershipStatus.PENDING,
        MembershipStatus.CANCELLED,
        MembershipStatus.DECEASED,
    ):
        raise MembershipNotRenewable(
            _("A %(status)s membership cannot be renewed.")
            % {"status": membership.get_status_display().lower()}
        )
    # Marked deceased, but the status update that makes the membership
    # "deceased" has not run yet: refused all the same, as joining is.
    if membership.contact.is_deceased:
        raise MembershipNotRenewable(_("This contact is deceased."))
    if is_lifetime(membership.membership_type) or membership.end_date is None:
        raise MembershipNotRenewable(_("A lifetime membership does not need renewing."))


def paid_term_refusal(membership):
    """Why ``apply_paid_term`` would refuse ``membership``, or "" (for checks before payment)."""
    if membership.status == MembershipStatus.PENDING:
        return ""
    try:
        _renewable(membership)
    except MembershipNotRenewable as exc:
        return str(exc)
    return ""


def _extend(membership, terms, today):
    """Move ``membership``'s dates on by ``terms`` terms; returns the new term's (start, end)."""
    mtype = membership.membership_type
    try:
        lapsed = grace_end(membership.end_date, mtype) < today
        if lapsed:
            # Lapsed beyond grace: a fresh spell from today.
            start, end = first_term(today, mtype, terms)
            membership.start_date = start
            term_start = start
        else:
            term_start = membership.end_date + ONE_DAY
            end = renewal_end(membership.start_date, membership.end_date, mtype, terms)
    except OverflowError:
        raise _too_far() from None
    membership.end_date = end
    return term_start, end


_DATE_FIELDS = ("start_date", "end_date", "status")


@transaction.atomic
def renew(membership, *, terms=1, today=None, actor=None, source=""):
    """Add ``terms`` terms (1 to 10) to ``membership``; returns it.

    The new term follows on from the current end date, also during grace;
    only a membership lapsed beyond its grace period starts again from today
    (start date included). Rolling terms are counted from the start date so
    month ends never drift; fixed periods add whole periods. Never shortens a
    membership. Refuses lifetime, pending, cancelled, deceased and inherited
    memberships, and those of a contact marked deceased
    (``MembershipNotRenewable``). The row is locked.
    """
    _check_terms(terms)
    today = _today(today)
    locked = _lock(membership)
    _renewable(locked)
    before = _snapshot(locked, _DATE_FIELDS)
    _extend(locked, terms, today)
    locked.status = status_from_rules(locked, today=today) or locked.status
    locked.save()
    _record(
        locked,
        _("Membership renewed: %(type)s"),
        actor=actor,
        source=source,
        changes={**_changes(before, locked, _DATE_FIELDS), "terms": [None, terms]},
    )
    sync_inherited_memberships(locked, today=today, actor=actor, source=source)
    _refresh(membership, locked)
    return locked


@transaction.atomic
def cancel(membership, *, reason="", actor=None, source=""):
    """Cancel ``membership`` (and the memberships inherited from it).

    Idempotent: cancelling a cancelled membership changes nothing. An
    inherited membership cannot be cancelled on its own (``InvalidTransition``):
    end the relationship or cancel the membership it comes from. Dates stay.
    """
    if not isinstance(reason, str):
        raise ValidationError({"reason": [_("Expected text.")]})
    reason = plain_text(reason)
    if len(reason) > 255:
        raise ValidationError({"reason": [_("At most 255 characters.")]})
    locked = _lock(membership)
    if locked.status == MembershipStatus.CANCELLED:
        _refresh(membership, locked)
        return locked
    if locked.inherited_from_id:
        raise InvalidTransition(
            _(
                "This membership is inherited; end the relationship or cancel the "
                "membership it comes from."
            )
        )
    _cancel_row(locked, reason)
    _record(
        locked,
        _("Membership cancelled: %(type)s"),
        actor=actor,
        source=source,
        changes={"status": [before_status(locked), MembershipStatus.CANCELLED]}
        | ({"cancel_reason": [None, reason]} if reason else {}),
    )
    sync_inherited_memberships(locked, actor=actor, source=source)
    _refresh(membership, locked)
    return locked


def before_status(membership):
    return getattr(membership, "_status_before_cancel", None)


def _cancel_row(membership, reason):
    membership._status_before_cancel = membership.status
    membership.status = MembershipStatus.CANCELLED
    membership.cancelled_at = timezone.now()
    membership.cancel_reason = reason[:255]
    membership.auto_renew = False
    membership.save()


@transaction.atomic
def change_type(membership, new_type, *, actor=None, source=""):
    """Move ``membership`` to ``new_type``, keeping its dates; returns it.

    Refused: an inactive type, a type in another currency (what was paid
    would no longer match), a move between lifetime and term types (the end
    date would be meaningless), a cancelled or inherited membership, and a
    type of which the contact already has a live membership. Auto-renew is
    switched off when the new type does not offer it. The status is
    recomputed, since the grace period may differ.
    """
    locked = _lock(membership)
    old_type = locked.membership_type
    if new_type.pk == old_type.pk:
        _refresh(membership, locked)
        return locked
    if locked.inherited_from_id:
        raise InvalidTransition(
            _("This membership is inherited; change the membership it comes from.")
        )
    if locked.status == MembershipStatus.CANCELLED:
        raise InvalidTransition(_("A cancelled membership cannot change type."))
    if not new_type.is_active:
        raise ValidationError({"membership_type": [_("This membership type is not active.")]})
    if new_type.currency != old_type.currency:
        raise ValidationError(
            {"membership_type": [_("Choose a membership type in the same currency.")]}
        )
    if is_lifetime(new_type) != is_lifetime(old_type):
        raise ValidationError(
            {
                "membership_type": [
                    _("A lifetime membership and a membership with terms cannot be swapped.")
                ]
            }
        )
    if (
        Membership.objects.filter(
            contact_id=locked.contact_id, membership_type=new_type, status__in=LIVE_STATUSES
        )
        .exclude(pk=locked.pk)
        .exists()
    ):
        raise AlreadyMember(_("This contact already has a live membership of that type."))
    fields = ("membership_type", "status", "auto_renew")
    before = _snapshot(locked, fields)
    locked.membership_type = new_type
    if new_type.auto_renew == AutoRenew.NO:
        locked.auto_renew = False
    new_status = _date_driven_status(
        locked, today=timezone.localdate(), rules=active_status_rules()
    )
    if new_status:
        locked.status = new_status
    locked.save()
    _record(
        locked,
        _("Membership type changed: %(type)s"),
        actor=actor,
        source=source,
        changes=_changes(before, locked, fields),
    )
    sync_inherited_memberships(locked, actor=actor, source=source)
    _refresh(membership, locked)
    return locked


@transaction.atomic
def apply_paid_term(line_item, *, actor=None, source=""):
    """Give the contact the membership term a completed line item paid for.

    Called by ``contributions.complete`` for each membership line item.
    ``line_item.quantity`` is the number of terms (1 to 10). A pending
    membership is activated with the dates of its first ``quantity`` terms
    from its start date (a payment that arrives late does not move them).
    Any other membership is renewed as ``renew`` does. Sets
    ``term_start``, ``term_end`` and ``applied_at`` on the line item.

    Idempotent: a line item already applied changes nothing. The membership
    and the line item are locked, so two completions at once apply it once.
    Raises ``MembershipNotRenewable`` for a cancelled, deceased, lifetime or
    inherited membership that is not pending.
    """
    locked = _lock(line_item.membership)
    item = LineItem.objects.select_for_update().get(pk=line_item.pk)
    if item.applied_at is not None:
        _copy_term(line_item, item)
        _refresh(line_item.membership, locked)
        return locked
    _check_terms(item.quantity, "quantity")
    today = timezone.localdate()
    before = _snapshot(locked, ("join_date",) + _DATE_FIELDS)
    if locked.status == MembershipStatus.PENDING:
        try:
            locked.start_date, locked.end_date = first_term(
                locked.start_date, locked.membership_type, item.quantity
            )
        except OverflowError:
            raise _too_far() from None
        term_start = locked.start_date
        # The money is in: never refuse here. Without a rule for the dates
        # (a misconfigured site) the member counts as new.
        status = status_from_rules(locked, today=today) or MembershipStatus.NEW
        subject = _("Membership paid and activated: %(type)s")
    else:
        _renewable(locked)
        term_start, _end = _extend(locked, item.quantity, today)
        status = status_from_rules(locked, today=today) or locked.status
        subject = _("Membership renewed: %(type)s")
    locked.status = status
    locked.save()
    item.term_start, item.term_end = term_start, locked.end_date
    item.applied_at = timezone.now()
    item.save(update_fields=["term_start", "term_end", "applied_at"])
    _copy_term(line_item, item)
    _record(
        locked,
        subject,
        actor=actor,
        source=source,
        changes={
            **_changes(before, locked, ("join_date",) + _DATE_FIELDS),
            "terms": [None, item.quantity],
            "line_item": [None, item.pk],
        },
    )
    sync_inherited_memberships(locked, today=today, actor=actor, source=source)
    _refresh(line_item.membership, locked)
    return locked


def _copy_term(target, source_item):
    target.term_start = source_item.term_start
    target.term_end = source_item.term_end
    target.applied_at = source_item.applied_at


@transaction.atomic
def revoke_paid_term(line_item, *, actor=None, source=""):
    """Take back the term a fully refunded line item paid for.

    Called by ``contributions.refund`` when ``REFUND_MEMBERSHIP_POLICY`` is
    "cancel" and the refund is full. When the term is the membership's latest:
    if nothing of the membership comes before it (its first term, or a
    fresh spell after a lapse) the membership is cancelled, otherwise its end
    date goes back to the day before the term and the status is recomputed.
    When a later term has been added since, dates stay and a note is
    recorded. Clears ``applied_at``, so a second call changes nothing.
    """
    locked = _lock(line_item.membership)
    item = LineItem.objects.select_for_update().get(pk=line_item.pk)
    if item.applied_at is None:
        _copy_term(line_item, item)
        return locked
    today = timezone.localdate()
    if locked.status == MembershipStatus.CANCELLED:
        pass
    elif locked.end_date == item.term_end and item.term_start <= locked.start_date:
        if locked.inherited_from_id is None:
            _cancel_row(locked, _("Payment refunded"))
            _record(
                locked,
                _("Membership cancelled (payment refunded): %(type)s"),
                actor=actor,
                source=source,
                changes={"status": [before_status(locked), MembershipStatus.CANCELLED]},
            )
    elif locked.end_date == item.term_end:
        before = _snapshot(locked, _DATE_FIELDS)
        locked.end_date = item.term_start - ONE_DAY
        new_status = _date_driven_status(locked, today=today, rules=active_status_rules())
        if new_status:
            locked.status = new_status
        locked.save()
        _record(
            locked,
            _("Membership term refunded: %(type)s"),
            actor=actor,
            source=source,
            changes=_changes(before, locked, _DATE_FIELDS),
        )
    else:
        _record(
            locked,
            _("Membership term refunded, dates kept (a later term exists): %(type)s"),
            actor=actor,
            source=source,
            changes={"line_item": [item.pk, None]},
        )
    item.applied_at = None
    item.save(update_fields=["applied_at"])
    _copy_term(line_item, item)
    sync_inherited_memberships(locked, today=today, actor=actor, source=source)
    _refresh(line_item.membership, locked)
    return locked


# -- inheritance ----------------------------------------------------------------------


def _related_contact_ids(membership, today):
    type_ids = list(
        membership.membership_type.inherit_relationship_types.values_list("pk", flat=True)
    )
    if not type_ids:
        return set()
    member = membership.contact_id
    active = (
        Relationship.objects.filter(relationship_type_id__in=type_ids, is_active=True)
        .filter(Q(start_date__isnull=True) | Q(start_date__lte=today))
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=today))
        .filter(Q(contact_a_id=member) | Q(contact_b_id=member))
        .filter(contact_a__is_deleted=False, contact_b__is_deleted=False)
    )
    related = set()
    for a, b in active.values_list("contact_a_id", "contact_b_id"):
        related.add(b if a == member else a)
    related.discard(member)
    return related


_MIRRORED = ("membership_type_id", "join_date", "start_date", "end_date", "status")


def _mirror_status(primary, contact):
    return MembershipStatus.DECEASED if contact.is_deceased else primary.status


@transaction.atomic
def sync_inherited_memberships(membership, *, today=None, actor=None, source=""):
    """Bring the memberships inherited from ``membership`` in line with it.

    Contacts related to an organisation or household member through one of
    the type's ``inherit_relationship_types`` (an active relationship, with
    the member on either side)
    get an inherited membership with the same type, dates and status while
    the primary is new, current or grace; existing ones follow its renewals,
    type changes and expiry. An inherited membership is cancelled when its
    relationship ends or the primary is cancelled. A contact with a live
    membership of the type of their own inherits nothing. Returns counts
    ``{"created": n, "updated": n, "cancelled": n}``. Idempotent.
    """
    counts = {"created": 0, "updated": 0, "cancelled": 0}
    if membership.inherited_from_id:
        return counts
    today = _today(today)
    primary = Membership.objects.select_related("membership_type", "contact").get(pk=membership.pk)
    existing = {
        m.contact_id: m
        for m in Membership.objects.filter(inherited_from=primary)
        .exclude(status=MembershipStatus.CANCELLED)
        .select_related("contact")
    }
    wanted = set()
    keeps = primary.status not in (
        MembershipStatus.PENDING,
        MembershipStatus.CANCELLED,
        MembershipStatus.DECEASED,
    )
    # Only organisations and households hand memberships on (CiviCRM's
    # relationship direction): an employee's own membership gives the
    # employer nothing.
    hands_on = primary.contact.kind != ContactKind.INDIVIDUAL
    if keeps and hands_on and not primary.contact.is_deleted:
        related = _related_contact_ids(primary, today)
        own = set(
            Membership.objects.filter(
                contact_id__in=related,
                membership_type_id=primary.membership_type_id,
                status__in=LIVE_STATUSES,
                inherited_from__isnull=True,
            ).values_list("contact_id", flat=True)
        )
        wanted = related - own
        if primary.status not in INHERITING_STATUSES:
            wanted &= set(existing)  # an expired primary hands out nothing new
    name = primary.contact.display_name
    for contact_id, inherited in existing.items():
        if contact_id not in wanted:
            _cancel_row(inherited, _("No longer related to %(name)s") % {"name": name})
            _record(
                inherited,
                _("Inherited membership ended: %(type)s"),
                actor=actor,
                source=source,
                changes={"status": [before_status(inherited), MembershipStatus.CANCELLED]},
            )
            counts["cancelled"] += 1
            continue
        before = _snapshot(inherited, _MIRRORED)
        for field in _MIRRORED[:-1]:
            setattr(inherited, field, getattr(primary, field))
        inherited.status = _mirror_status(primary, inherited.contact)
        changes = _changes(before, inherited, _MIRRORED)
        if changes:
            inherited.save()
            _record(
                inherited,
                _("Inherited membership updated: %(type)s"),
                actor=actor,
                source=source,
                changes=changes,
            )
            counts["updated"] += 1
    new_ids = wanted - set(existing)
    for contact in Contact.objects.filter(pk__in=new_ids):
        inherited = Membership.objects.create(
            contact=contact,
            membership_type=primary.membership_type,
            join_date=primary.join_date,
            start_date=primary.start_date,
            end_date=primary.end_date,
            status=_mirror_status(primary, contact),
            inherited_from=primary,
            source=plain_text(source)[:255],
            created_by=user_or_none(actor),
        )
        record_system_event(
            contact,
            _("Inherited membership from %(name)s: %(type)s")
            % {"name": name, "type": primary.membership_type.name},
            actor=actor,
            source=source,
            changes={
                "membership_type": [None, primary.membership_type.slug],
                "inherited_from": [None, primary.pk],
                "status": [None, inherited.status],
            },
        )
        counts["created"] += 1
    return counts


# -- statuses in bulk -----------------------------------------------------------------


def _bulk_set_status(queryset, status, counts):
    """Set ``status`` on every row of ``queryset``, a chunk at a time, with history."""
    while True:
        with transaction.atomic():
            rows = list(
                queryset.select_for_update(of=("self",))
                .order_by("pk")
                .values_list("pk", "contact_id", "status", "membership_type__name")[:CHUNK]
            )
            if not rows:
                return
            now = timezone.now()
            changed = Membership.objects.filter(pk__in=[row[0] for row in rows]).update(
                status=status, updated_at=now
            )
            label = MembershipStatus(status).label
            Activity.objects.bulk_create(
                Activity(
                    contact_id=contact_id,
                    activity_type=ActivityType.SYSTEM,
                    subject=(
                        _("Membership status: %(type)s is now %(status)s")
                        % {"type": type_name, "status": label}
                    )[:255],
                    changes={"status": [old, status], "membership": [pk, pk]},
                    source=STATUS_SOURCE,
                    occurred_at=now,
                    created_at=now,
                )
                for pk, contact_id, old, type_name in rows
            )
            counts[str(status)] = counts.get(str(status), 0) + changed
            if changed == 0:  # pragma: no cover - rows vanished under us
                return


def update_membership_statuses(*, today=None):
    """Recompute every membership's status as of ``today``; returns change counts.

    ``{"new": n, "current": n, "grace": n, "expired": n, "deceased": n,
    "inherited_created": n, "inherited_updated": n, "inherited_cancelled": n}``.
    Works per membership type and rule with queryset updates, a chunk of
    changed rows at a time (each chunk one transaction with its history), so
    it never loads unchanged rows. Idempotent: a second run on the same day
    changes nothing. Pending and cancelled memberships are never touched.
    """
    today = _today(today)
    _check_date("today", today)
    counts = dict.fromkeys(
        [str(s) for s in (*RULE_STATUSES, MembershipStatus.DECEASED)]
        + ["inherited_created", "inherited_updated", "inherited_cancelled"],
        0,
    )
    rules = active_status_rules()

    # Contacts marked deceased: all their memberships but cancelled ones.
    _bulk_set_status(
        Membership.objects.filter(contact__is_deceased=True).exclude(
            status__in=[MembershipStatus.CANCELLED, MembershipStatus.DECEASED]
        ),
        MembershipStatus.DECEASED,
        counts,
    )
    # The mark removed: back to a date-driven status (rare; one at a time).
    for membership in Membership.objects.filter(
        status=MembershipStatus.DECEASED, contact__is_deceased=False, inherited_from__isnull=True
    ).select_related("membership_type", "contact"):
        with transaction.atomic():
            locked = _lock(membership)
            status = _date_driven_status(locked, today=today, rules=rules)
            if status and status != locked.status:
                old = locked.status
                locked.status = status
                locked.save(update_fields=["status", "updated_at"])
                _record(
                    locked,
                    _("Membership status recomputed: %(type)s"),
                    actor=None,
                    source=STATUS_SOURCE,
                    changes={"status": [old, status]},
                )
                counts[str(status)] += 1

    if rules:
        primaries = Membership.objects.filter(
            status__in=RULE_STATUSES, inherited_from__isnull=True, contact__is_deceased=False
        )
        for mtype in MembershipType.objects.all():
            target = Case(
                *(
                    When(_rule_q(rule, today, mtype.grace_period_days), then=Value(rule.status))
                    for rule in rules
                ),
                default=Value(""),
            )
            of_type = primaries.filter(membership_type=mtype).alias(target_status=target)
            for status in dict.fromkeys(rule.status for rule in rules):
                _bulk_set_status(
                    of_type.filter(target_status=status).exclude(status=status), status, counts
                )

    for primary in _primaries_to_sync():
        with transaction.atomic():
            synced = sync_inherited_memberships(primary, today=today, source=STATUS_SOURCE)
        for key, value in synced.items():
            counts[f"inherited_{key}"] += value
    return counts


def _primaries_to_sync():
    with_inheritance = Q(membership_type__inherit_relationship_types__isnull=False) & ~Q(
        status__in=[MembershipStatus.PENDING, MembershipStatus.CANCELLED]
    )
    handing_out = Q(
        inherited_memberships__status__in=[
            s for s in MembershipStatus.values if s != MembershipStatus.CANCELLED
        ]
    )
    ids = (
        Membership.objects.filter(inherited_from__isnull=True)
        .filter(with_inheritance | handing_out)
        .values_list("pk", flat=True)
        .distinct()
        .order_by()
    )
    # Plain ids: the loop writes, so no cursor stays open across it.
    return [Membership(pk=pk) for pk in ids]
