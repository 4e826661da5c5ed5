"""Registering people for events, the waiting list, check-in and paid seats.

These functions are the only writers of ``Participant.status``. Each runs in
one transaction and records a system activity on the participant's contact.

Capacity is never exceeded. Every function that takes or frees a seat locks
the event row (``SELECT ... FOR NO KEY UPDATE`` on PostgreSQL; on SQLite the
project's ``transaction_mode="IMMEDIATE"`` serializes writers), then counts
the seats held and decides, so two registrations for the last seat cannot
both see it free. ``register`` writes its rows first and takes the lock last
(the count, in a statement of its own after the lock is granted, sees every
registration committed before and its own rows), so registrations take turns
only for the count and the commit. The partial unique constraint on Participant
keeps one live place per contact per event even outside these functions.

A seat is held by a participant whose role takes a seat and who is pending
payment, registered, attended or a no-show, or who is on the waiting list
with an offer still open (``crm_core.selectors.events.seat_holding``).
"""

import datetime
import uuid
from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..dates import in_zone
from ..exceptions import AlreadyRegistered, EventFull, InvalidTransition, RegistrationClosed
from ..models import (
    Activity,
    Contact,
    Event,
    EventQuestion,
    LineItem,
    Participant,
    ParticipantRole,
    ParticipantStatus,
)
from ..sanitize import plain_text
from ..selectors.events import seat_holding
from .activities import record_system_event, user_or_none

Status = ParticipantStatus
ATTENDEE_KEYS = frozenset({"contact", "role", "fee_level", "answers"})
DEFAULT_ROLE_SLUG = "attendee"
# Statuses a registration can be cancelled from. Attended and no-show are
# the record of what happened at a past event and stay.
CANCELLABLE = (Status.PENDING_PAYMENT, Status.REGISTERED, Status.WAITLISTED)
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for deadlock_detected


# -- helpers ---------------------------------------------------------------------------------


def _lock_event(event):
    """The event row, locked until the end of the transaction.

    NO KEY UPDATE conflicts with itself (so seat-changing transactions take
    turns) but not with the KEY SHARE lock inserting a participant takes.
    """
    return Event.objects.select_for_update(no_key=True).get(pk=event.pk)


# What ``register`` reads of the event once it holds the lock.
REGISTRATION_FIELDS = (
    "is_active",
    "registration_opens_at",
    "registration_closes_at",
    "starts_at",
    "time_zone",
    "capacity",
    "waitlist_enabled",
)


def _lock_event_to_register(event, contact_ids):
    """``_lock_event`` for ``register``, in the same statement whether a contact is trashed.

    The trash check rides on the lock statement, which starts after the
    participant rows are written: their foreign-key checks wait for a
    ``trash_contact`` in progress on the same contact, so a contact trashed
    before this registration's rows went in is always seen here.
    """
    return (
        Event.objects.select_for_update(no_key=True)
        .only(*REGISTRATION_FIELDS)
        .annotate(has_trashed_contact=Exists(_trashed(contact_ids)))
        .get(pk=event.pk)
    )


def _contact_ids(prepared, registered_by):
    ids = [contact.pk for contact, *_rest in prepared]
    if registered_by is not None:
        ids.append(registered_by.pk)
    return ids


def _lock_participant(participant):
    return (
        Participant.objects.select_for_update(of=("self",))
        .select_related("event", "role", "contact", "fee_level")
        .get(pk=participant.pk)
    )


def _local(event, moment):
    return in_zone(moment, event.zone).strftime("%d %B %Y %H:%M %Z")


def _record(participant, old_status, subject, *, actor, source, details=""):
    return record_system_event(
        participant.contact,
        subject,
        actor=actor,
        source=source,
        details=details,
        changes={"event_participation": [old_status, participant.status]},
    )


def _status_subject(participant):
    return _("%(event)s: %(status)s") % {
        "event": participant.event.title,
        "status": participant.get_status_display().lower(),
    }


def _free_seats(event, now):
    """Seats free at ``event`` (already locked); ``None`` means unlimited."""
    if event.capacity is None:
        return None
    taken = Participant.objects.filter(seat_holding(now), event=event).count()
    return max(event.capacity - taken, 0)


def _check_window(event, now):
    if not event.is_active:
        raise RegistrationClosed(_("Registration for this event is not open."))
    opens = event.registration_opens_at
    if opens and now < opens:
        raise RegistrationClosed(
            _("Registration opens on %(when)s.") % {"when": _local(event, opens)}
        )
    closes = event.registration_closes_at or event.starts_at
    if now >= closes:
        raise RegistrationClosed(_("Registration for this event has closed."))


def registration_closed_message(event, *, now=None):
    """Why ``register`` would refuse this event now (not open yet, closed), or ""."""
    try:
        _check_window(event, now or timezone.now())
    except RegistrationClosed as error:
        return error.message
    return ""


def _json_answer(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _clean_answers(answers, questions, prefix):
    """Answers validated by each question's custom field; ``{name: JSON value}``."""
    errors = {}
    if answers is None:
        answers = {}
    if not isinstance(answers, Mapping):
        raise ValidationError({f"{prefix}answers": [_("Expected an object of answers.")]})
    by_name = {question.field.name: question for question in questions}
    for name in answers:
        if name not in by_name:
            errors[f"{prefix}answers.{str(name)[:64]}"] = [_("This event asks no such question.")]
    cleaned = {}
    for name, question in by_name.items():
        value = answers.get(name)
        if value is None or value == "" or value == []:
            if question.is_required:
                errors[f"{prefix}answers.{name}"] = [
                    _("%(label)s is required.") % {"label": question.field.label}
                ]
            continue
        try:
            cleaned[name] = _json_answer(question.field.to_python(value))
        except ValidationError as exc:
            errors[f"{prefix}answers.{name}"] = exc.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def _default_fee_level(levels):
    defaults = [level for level in levels if level.is_default]
    if len(defaults) == 1:
        return defaults[0]
    if len(levels) == 1:
        return levels[0]
    return None


def _prefetched(event, name):
    """``event.<name>`` when the caller prefetched it, else ``None`` (read it fresh)."""
    cache = getattr(event, "_prefetched_objects_cache", {})
    return list(getattr(event, name).all()) if name in cache else None


def _roles_for(event, needs_default):
    """The roles ``event`` offers and the role given when none is chosen.

    One query: the offered roles plus the active "attendee" role, which is
    the default when the event offers every role (none listed). When the
    event lists its roles, the default must be one of them. With the roles
    prefetched, the default is read only if ``needs_default`` and the event
    lists none.
    """
    offered = _prefetched(event, "roles")
    if offered is None:
        is_offered = Event.roles.through.objects.filter(
            event_id=event.pk, participantrole_id=OuterRef("pk")
        )
        rows = list(
            ParticipantRole.objects.annotate(offered=Exists(is_offered)).filter(
                Q(offered=True) | Q(slug=DEFAULT_ROLE_SLUG, is_active=True)
            )
        )
        offered = [role for role in rows if role.offered]
        candidates = offered or rows
    elif offered or not needs_default:
        candidates = offered
    else:
        candidates = ParticipantRole.objects.filter(slug=DEFAULT_ROLE_SLUG, is_active=True)
    default = next(
        (role for role in candidates if role.slug == DEFAULT_ROLE_SLUG and role.is_active), None
    )
    return offered, default


def _questions_of(event):
    questions = _prefetched(event, "questions")
    if questions is None:
        questions = list(EventQuestion.objects.filter(event=event).select_related("field"))
    return questions


def _prepare_attendees(event, attendees):
    """Validate everything about the attendees that does not depend on seats.

    Returns ``[(contact, role, fee_level, answers)]``. Errors are keyed
    ``attendees.<index>.<field>`` (``attendees`` for the list itself).
    """
    if isinstance(attendees, (str, bytes, Mapping)) or not hasattr(attendees, "__iter__"):
        raise ValidationError({"attendees": [_("Expected a list of attendees.")]})
    attendees = list(attendees)
    if not attendees:
        raise ValidationError({"attendees": [_("Register at least one person.")]})
    if len(attendees) > event.max_seats_per_registration:
        raise ValidationError(
            {
                "attendees": [
                    _("At most %(count)d people can be registered at once.")
                    % {"count": event.max_seats_per_registration}
                ]
            }
        )
    levels = [level for level in event.fee_levels.all() if level.is_active]
    needs_default_role = any(
        isinstance(attendee, Mapping) and attendee.get("role") is None for attendee in attendees
    )
    offered_roles, default_role = _roles_for(event, needs_default_role)
    questions = _questions_of(event)

    errors = {}
    prepared = []
    seen = set()
    for index, attendee in enumerate(attendees):
        prefix = f"attendees.{index}."
        if not isinstance(attendee, Mapping):
            errors[f"attendees.{index}"] = [_("Expected an object.")]
            continue
        unknown = set(attendee) - ATTENDEE_KEYS
        for name in sorted(map(str, unknown)):
            errors[f"{prefix}{name[:64]}"] = [_("Unknown field.")]
        contact = attendee.get("contact")
        if not isinstance(contact, Contact) or contact.pk is None:
            errors[f"{prefix}contact"] = [_("Choose a contact.")]
        elif contact.pk in seen:
            errors[f"{prefix}contact"] = [_("This person is already in this registration.")]
        else:
            seen.add(contact.pk)

        role = attendee.get("role")
        if role is None:
            role = default_role
            if role is None:
                errors[f"{prefix}role"] = [_("Choose a role.")]
        elif not isinstance(role, ParticipantRole) or not role.is_active:
            errors[f"{prefix}role"] = [_("This role is not available.")]
        elif offered_roles and role.pk not in {r.pk for r in offered_roles}:
            errors[f"{prefix}role"] = [_("This event does not offer this role.")]

        fee_level = attendee.get("fee_level")
        if fee_level is None:
            fee_level = _default_fee_level(levels)
            if fee_level is None and levels:
                errors[f"{prefix}fee_level"] = [_("Choose a fee level.")]
        elif getattr(fee_level, "pk", None) not in {level.pk for level in levels}:
            errors[f"{prefix}fee_level"] = [_("This fee level is not offered for this event.")]
        else:
            fee_level = next(level for level in levels if level.pk == fee_level.pk)

        try:
            answers = _clean_answers(attendee.get("answers"), questions, prefix)
        except ValidationError as exc:
            errors.update(exc.message_dict)
            answers = {}
        prepared.append((contact, role, fee_level, answers))
    if errors:
        raise ValidationError(errors)
    return prepared


def _trashed(contact_ids):
    return Contact.all_objects.filter(pk__in=contact_ids, is_deleted=True)


def _in_the_trash():
    return ValidationError(_("A contact in this registration is in the trash."))


def _queued_registration_fits(event, free):
    """Whether a registration waiting without an offer would fit ``free`` seats.

    True only when an offer expired and the expiry task has not passed it on
    yet: newcomers then join the waiting list behind it instead of jumping it.
    """
    sizes = (
        Participant.objects.filter(
            event=event,
            status=Status.WAITLISTED,
            offer_expires_at__isnull=True,
            role__counts_towards_capacity=True,
        )
        .values("registration")
        .annotate(seats=Count("id"))
    )
    return any(row["seats"] <= free for row in sizes)


# -- registering -------------------------------------------------------------------------------


def register(
    event,
    *,
    registered_by,
    attendees,
    pending_payment=None,
    now=None,
    actor=None,
    source="",
):
    """Book seats at ``event`` for one or several people at once.

    ``attendees`` is a list of ``{"contact": Contact, "role": ParticipantRole
    or None, "fee_level": EventFeeLevel or None, "answers": {field name:
    value}}``. The role defaults to "attendee"; the fee level to the event's
    default (or only) active level and is required when there are several.

    All seats are decided together, in one transaction, with the event row
    locked: if they all fit, each participant is ``registered`` (or
    ``pending_payment`` when its fee is above zero, unless the caller passes
    ``pending_payment=False`` because the money is already in hand); if they
    do not, the whole registration goes on the waiting list when the event
    has one, else ``EventFull`` is raised and nothing is written. Capacity is
    never exceeded, even by concurrent calls.

    Raises ``RegistrationClosed`` (inactive, before it opens, from when it
    closes), ``AlreadyRegistered`` (a contact holds a live place),
    ``EventFull``, or ``ValidationError`` keyed ``attendees.<n>.<field>``.
    Returns the participants created, which share one ``registration`` id.
    """
    now = now or timezone.now()
    prepared = _prepare_attendees(event, attendees)
    retry = not transaction.get_connection().in_atomic_block
    while True:
        try:
            with transaction.atomic():
                return _register_locked(
                    event, registered_by, prepared, pending_payment, now, actor, source
                )
        except IntegrityError:
            # The partial unique constraint: a contact already holds a live place.
            # The trash is checked after the inserts, so it is checked here too
            # and, as before, wins over "already registered".
            if _trashed(_contact_ids(prepared, registered_by)).exists():
                raise _in_the_trash() from None
            raise _already_registered(event, [contact for contact, *_rest in prepared]) from None
        except OperationalError as exc:
            # Our rows are written before the event lock, so a seat-changing
            # call that holds the lock and revives a cancelled place of the
            # same person can wait for them while we wait for the lock.
            # PostgreSQL breaks the cycle; run once more, from the start.
            if not (retry and getattr(exc.__cause__, "sqlstate", None) == DEADLOCK):
                raise
            retry = False


def _already_registered(event, contacts):
    holder = (
        Participant.objects.filter(event=event, contact__in=contacts)
        .exclude(status=Status.CANCELLED)
        .select_related("contact")
        .first()
    )
    name = holder.contact.display_name if holder else _("A person in this registration")
    return AlreadyRegistered(_("%(name)s is already registered for this event.") % {"name": name})


def _register_locked(event, registered_by, prepared, pending_payment, now, actor, source):
    """Write the registration, then lock the event and keep it only if it fits.

    Everything that does not depend on the seats left (the participant
    rows with the status they get if they fit, their history entries) is
    written before the event lock, so registrations for one event only take
    turns for the lock, the seat count and the commit. The lock statement
    also says whether a contact is in the trash (refused, all rolled back).
    Once the lock is granted, a new statement sees every registration
    committed before (READ COMMITTED) plus this one's own rows; if the
    seats do not fit, the rows go on the waiting list or ``EventFull`` rolls
    it all back. The count cannot ride on the lock statement: on PostgreSQL
    a statement reads from the snapshot taken when it started, before it
    waited for the lock, and would miss the registrations committed
    meanwhile.
    """
    registration = uuid.uuid4()
    participants = []
    for contact, role, fee_level, answers in prepared:
        amount = fee_level.amount if fee_level else Decimal(0)
        participants.append(
            Participant(
                event=event,
                contact=contact,
                role=role,
                fee_level=fee_level,
                fee_amount=amount,
                status=(
                    Status.PENDING_PAYMENT
                    if amount > 0 and pending_payment is not False
                    else Status.REGISTERED
                ),
                registration=registration,
                registered_by=registered_by,
                registered_at=now,
                answers=answers,
                source=source[:255],
                created_by=user_or_none(actor),
            )
        )
    # A person who holds a live place trips the partial unique constraint
    # (IntegrityError, see register), waiting first for a concurrent
    # registration of the same person to end. Inserted in contact order, so
    # two registrations sharing people wait for each other, never deadlock.
    Participant.objects.bulk_create(sorted(participants, key=lambda p: p.contact_id))
    history = [
        _record(participant, None, _status_subject(participant), actor=actor, source=source)
        for participant in participants
    ]

    # The serialized part: lock, count, decide, commit.
    event = _lock_event_to_register(event, _contact_ids(prepared, registered_by))
    if event.has_trashed_contact:
        raise _in_the_trash()
    _check_window(event, now)
    needed = sum(1 for participant in participants if participant.role.counts_towards_capacity)
    if event.capacity is None or not needed:
        return participants
    counts = {"taken": Count("id", filter=seat_holding(now))}
    if event.waitlist_enabled:
        counts["queued"] = Count(
            "id",
            filter=Q(
                status=Status.WAITLISTED,
                offer_expires_at__isnull=True,
                role__counts_towards_capacity=True,
            ),
        )
    counts = Participant.objects.filter(event=event).aggregate(**counts)
    # The count includes this registration's own seats.
    free = max(event.capacity - (counts["taken"] - needed), 0)
    fits = needed <= free
    if fits and counts.get("queued"):
        fits = not _queued_registration_fits(event, free)
    if fits:
        return participants
    if not event.waitlist_enabled:
        if free == 0:
            raise EventFull(_("This event is full."))
        raise EventFull(
            _("Only %(count)d seats left.") % {"count": free}
            if free != 1
            else _("Only 1 seat left.")
        )
    Participant.objects.filter(registration=registration).update(
        status=Status.WAITLISTED, waitlisted_at=now
    )
    for participant in participants:
        participant.status = Status.WAITLISTED
        participant.waitlisted_at = now
    # The history entries said "registered"; one statement corrects them all.
    Activity.objects.filter(pk__in=[entry.pk for entry in history]).update(
        subject=plain_text(_status_subject(participants[0]))[:255],
        changes={"event_participation": [None, Status.WAITLISTED]},
    )
    return participants


# -- cancelling, check-in ------------------------------------------------------------------------


def cancel_registration(participant, *, reason="", actor=None, source=""):
    """Cancel a place (pending payment, registered or waitlisted), freeing its seat.

    Idempotent: an already cancelled participant is returned unchanged.
    Attended and no-show places are the record of a past event and raise
    ``InvalidTransition``. In the same transaction the freed seat is offered
    to the waiting list (``promote_from_waitlist``); the participants offered
    are on the returned object's ``waitlist_offers`` (for notifications).
    """
    with transaction.atomic():
        _lock_event(participant.event)
        participant = _lock_participant(participant)
        participant.waitlist_offers = []
        if participant.status == Status.CANCELLED:
            return participant
        if participant.status not in CANCELLABLE:
            raise InvalidTransition(
                _("A place marked %(status)s cannot be cancelled.")
                % {"status": participant.get_status_display().lower()}
            )
        old = participant.status
        participant.status = Status.CANCELLED
        participant.cancelled_at = timezone.now()
        participant.cancel_reason = plain_text(reason)[:255]
        participant.save(update_fields=["status", "cancelled_at", "cancel_reason"])
        _record(
            participant,
            old,
            _status_subject(participant),
            actor=actor,
            source=source,
            details=participant.cancel_reason,
        )
        participant.waitlist_offers = promote_from_waitlist(
            participant.event, actor=actor, source=source
        )
    return participant


def _set_status(participant, allowed_from, new_status, *, actor, source, **fields):
    with transaction.atomic():
        participant = _lock_participant(participant)
        if participant.status == new_status:
            return participant
        if participant.status not in allowed_from:
            raise InvalidTransition(
                _("A participant who is %(current)s cannot be marked %(new)s.")
                % {
                    "current": participant.get_status_display().lower(),
                    "new": Status(new_status).label.lower(),
                }
            )
        old = participant.status
        participant.status = new_status
        for name, value in fields.items():
            setattr(participant, name, value)
        participant.save(update_fields=["status", *fields])
        _record(participant, old, _status_subject(participant), actor=actor, source=source)
    return participant


def check_in(participant, *, actor=None, source=""):
    """Registered (or a no-show who turns up late) -> attended. Idempotent.

    Pending payment, waitlisted and cancelled participants raise
    ``InvalidTransition``: they have no confirmed seat.
    """
    return _set_status(
        participant,
        (Status.REGISTERED, Status.NO_SHOW),
        Status.ATTENDED,
        actor=actor,
        source=source,
        checked_in_at=timezone.now(),
    )


def undo_check_in(participant, *, actor=None, source=""):
    """Attended -> registered, for a check-in made by mistake. Idempotent."""
    return _set_status(
        participant,
        (Status.ATTENDED,),
        Status.REGISTERED,
        actor=actor,
        source=source,
        checked_in_at=None,
    )


def mark_no_show(participant, *, actor=None, source=""):
    """Registered -> no-show. Idempotent; anything else raises ``InvalidTransition``."""
    return _set_status(
        participant, (Status.REGISTERED,), Status.NO_SHOW, actor=actor, source=source
    )


# -- the waiting list --------------------------------------------------------------------------


def _expire_offers(event, now, actor, source):
    # Locked: an offer accepted meanwhile is re-read as accepted and left alone.
    stale = (
        Participant.objects.select_for_update(of=("self",))
        .filter(event=event, status=Status.WAITLISTED, offer_expires_at__lte=now)
        .select_related("event", "contact")
    )
    expired = []
    for participant in stale:
        participant.status = Status.CANCELLED
        participant.cancelled_at = now
        participant.cancel_reason = _("offer expired")
        participant.save(update_fields=["status", "cancelled_at", "cancel_reason"])
        _record(
            participant,
            Status.WAITLISTED,
            _("%(event)s: seat offer expired") % {"event": event.title},
            actor=actor,
            source=source,
        )
        expired.append(participant)
    return expired


def promote_from_waitlist(event, *, now=None, actor=None, source=""):
    """Offer free seats to the waiting list, in the order people joined it.

    First cancels offers that have expired (reason "offer expired"), then
    walks the registrations waiting without an offer, oldest first, and
    offers a seat to every person of a registration whose seats all fit in
    what is free (a registration too big for the free seats keeps its place
    and the next smaller one is offered). An offer holds the seats until
    ``now + event.waitlist_offer_hours``. One transaction, event locked.
    No seat is offered while registration is closed (inactive event, or
    from ``registration_closes_at`` or the start): no one could take it.

    Each registration offered seats is emailed the offer, with a signed link
    to take it (``send_waitlist_offer_task``, after commit). Returns the
    participants offered a seat.
    """
    now = now or timezone.now()
    with transaction.atomic():
        event = _lock_event(event)
        _expire_offers(event, now, actor, source)
        waiting = list(
            Participant.objects.filter(
                event=event, status=Status.WAITLISTED, offer_expires_at__isnull=True
            )
            .select_related("role", "contact")
            .order_by("waitlisted_at", "id")
        )
        if not waiting or registration_closed_message(event, now=now):
            return []
        free = _free_seats(event, now)
        groups = {}
        for participant in waiting:
            groups.setdefault(participant.registration, []).append(participant)
        until = now + datetime.timedelta(hours=event.waitlist_offer_hours)
        offered = []
        for members in groups.values():
            if free is not None and free <= 0:
                break
            needed = sum(1 for member in members if member.role.counts_towards_capacity)
            if free is not None and needed > free:
                continue
            for member in members:
                member.event = event
                member.offer_expires_at = until
                member.save(update_fields=["offer_expires_at"])
                _record(
                    member,
                    Status.WAITLISTED,
                    _("%(event)s: seat offered until %(until)s")
                    % {"event": event.title, "until": _local(event, until)},
                    actor=actor,
                    source=source,
                )
            if free is not None:
                free -= needed
            offered.extend(members)
            _notify_offer(members[0].registration)
    return offered


def _notify_offer(registration):
    """Email the offer once the transaction that made it commits."""
    from ..tasks import send_waitlist_offer_task

    transaction.on_commit(lambda: send_waitlist_offer_task.enqueue(str(registration)))


def accept_waitlist_offer(participant, *, pending_payment=None, now=None, actor=None, source=""):
    """Take up an open seat offer: waitlisted -> pending payment (fee above zero) or registered.

    Idempotent for a participant already pending payment or registered.
    An expired offer, or one made before registration closed (the event was
    deactivated, or has started), raises ``RegistrationClosed`` as
    ``register`` would; no offer (still waiting) or any other status raises
    ``InvalidTransition``.
    """
    now = now or timezone.now()
    with transaction.atomic():
        participant = _lock_participant(participant)
        if participant.status in (Status.PENDING_PAYMENT, Status.REGISTERED):
            return participant
        if participant.status != Status.WAITLISTED:
            raise InvalidTransition(_("There is no seat offer to accept."))
        if participant.offer_expires_at is None:
            raise InvalidTransition(
                _("No seat has been offered yet; this place is still on the waiting list.")
            )
        if participant.offer_expires_at <= now:
            raise RegistrationClosed(
                _("This seat offer expired on %(when)s.")
                % {"when": _local(participant.event, participant.offer_expires_at)}
            )
        _check_window(participant.event, now)
        old = participant.status
        paying = participant.fee_amount > 0 and pending_payment is not False
        participant.status = Status.PENDING_PAYMENT if paying else Status.REGISTERED
        participant.offer_expires_at = None
        participant.save(update_fields=["status", "offer_expires_at"])
        _record(participant, old, _status_subject(participant), actor=actor, source=source)
    return participant


def expire_waitlist_offers(*, now=None, actor=None, source="waitlist expiry"):
    """Cancel expired seat offers at every event and pass the seats on.

    For a periodic task. Each event is handled in its own transaction by
    ``promote_from_waitlist``. Returns every participant newly offered a seat.
    """
    now = now or timezone.now()
    event_ids = (
        Participant.objects.filter(status=Status.WAITLISTED, offer_expires_at__lte=now)
        .values_list("event_id", flat=True)
        .distinct()
        .order_by()
    )
    offered = []
    for event in Event.objects.filter(pk__in=list(event_ids)):
        offered.extend(promote_from_waitlist(event, now=now, actor=actor, source=source))
    return offered


# -- paid seats (called by the contributions services) --------------------------------------------


def confirm_paid_participant(line_item, *, actor=None, source=""):
    """Give the participant an ``event_fee`` line item paid for. Idempotent.

    Called by ``contributions.complete()`` inside its transaction. Once
    ``line_item.applied_at`` is set it does nothing. Otherwise:

    - pending payment, or waitlisted with an open offer -> registered;
    - registered, attended or no-show -> unchanged;
    - waitlisted with an offer that lapsed before the payment came -> as a
      cancelled place (below), so the expiry run does not cancel a paid place;
    - still waiting without an offer -> stays on the waiting list (a history
      entry says a refund may be due if no seat frees up);
    - cancelled (the payment arrived late) -> registered again when a seat is
      free and the contact holds no other place; otherwise it goes on the
      waiting list (or stays cancelled when the contact has another place),
      with a history entry saying a refund may be due.

    Sets ``applied_at`` on the line item. Returns the participant.
    """
    with transaction.atomic():
        line = LineItem.objects.select_for_update().get(pk=line_item.pk)
        if line.applied_at is not None:
            line_item.applied_at = line.applied_at
            return line.participant
        now = timezone.now()
        event = _lock_event(line.participant.event)
        participant = _lock_participant(line.participant)
        old = participant.status
        note = ""
        if old == Status.PENDING_PAYMENT or (
            old == Status.WAITLISTED
            and participant.offer_expires_at
            and participant.offer_expires_at > now
        ):
            participant.status = Status.REGISTERED
            participant.offer_expires_at = None
        elif old == Status.WAITLISTED and participant.offer_expires_at:
            # The offer lapsed before the money came (the expiry run would
            # cancel it next): as for a cancelled place, seat it if one is free.
            note = _revive_paid(participant, event, now)
        elif old == Status.WAITLISTED:
            note = _("Paid while on the waiting list; a refund may be due if no seat frees up.")
        elif old == Status.CANCELLED:
            note = _revive_paid(participant, event, now)
        if participant.status != old or note:
            participant.save(
                update_fields=[
                    "status",
                    "offer_expires_at",
                    "waitlisted_at",
                    "cancelled_at",
                    "cancel_reason",
                ]
            )
        if participant.status != old or note:
            _record(
                participant,
                old,
                _status_subject(participant),
                actor=actor,
                source=source,
                details=note,
            )
        line.applied_at = now
        line.save(update_fields=["applied_at"])
        line_item.applied_at = now
    return participant


def _revive_paid(participant, event, now):
    """A cancelled participant's payment arrived: seat, waiting list or nothing."""
    other_place = (
        Participant.objects.filter(event=event, contact_id=participant.contact_id)
        .exclude(status=Status.CANCELLED)
        .exclude(pk=participant.pk)
        .exists()
    )
    if other_place:
        return _(
            "Payment arrived for a cancelled place; the contact holds another place at "
            "this event, so a refund may be due."
        )
    free = _free_seats(event, now)
    needed = 1 if participant.role.counts_towards_capacity else 0
    participant.cancelled_at = None
    participant.cancel_reason = ""
    participant.offer_expires_at = None
    if free is None or needed <= free:
        participant.status = Status.REGISTERED
        return _("Payment arrived after the place was cancelled; registered again.")
    participant.status = Status.WAITLISTED
    participant.waitlisted_at = now
    return _(
        "Payment arrived after the place was cancelled and the event is full; put on the "
        "waiting list. A refund may be due if no seat frees up."
    )


def revoke_paid_participant(line_item, *, actor=None, source=""):
    """A full refund with ``REFUND_REGISTRATION_POLICY == "cancel"``: cancel the place.

    Idempotent (a cancelled place stays cancelled). Attended and no-show
    places are kept, with a history entry noting the refund. Returns the
    participant.
    """
    participant = Participant.objects.select_related("event").get(pk=line_item.participant_id)
    if participant.status in (Status.ATTENDED, Status.NO_SHOW):
        with transaction.atomic():
            participant = _lock_participant(participant)
            record_system_event(
                participant.contact,
                _("%(event)s: fee refunded; attendance record kept")
                % {"event": participant.event.title},
                actor=actor,
                source=source,
            )
        return participant
    return cancel_registration(
        participant, reason=_("Payment refunded"), actor=actor, source=source
    )
