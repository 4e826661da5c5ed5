"""Merging two contacts that are the same person or organisation.

``merge_contacts(keep, remove, field_choices=..., actor=...)`` is the only
way to merge. In one transaction, with both contacts locked, it:

1. sets the kept contact's simple fields to the values staff chose;
2. adds the removed contact's emails, phones and addresses that the kept
   one lacks, its tags, and its custom values (the chosen one wins);
3. moves every record that points at the removed contact to the kept one:
   crm_core's own (memberships, contributions, soft credits, recurring
   contributions, event places, activities, group memberships, consent
   records, relationships, employees, membership types owned, places booked)
   and those of other apps registered with ``register_merge_handler``;
4. trashes the removed contact, writes a ``MergeRecord`` (who, when, the
   choices, the counts moved, notes and a snapshot of the removed contact)
   and a "Merged" activity on the kept contact, and marks their
   ``PossibleDuplicate`` pair merged.

Extension point for other apps
------------------------------
An app whose models point at ``Contact`` registers them once, from its
``AppConfig.ready()``::

    from crm_core.services.merge import register_merge_handler

    register_merge_handler(MyModel, "contact")  # plain move of the foreign key
    register_merge_handler(MyModel, "contact", handler=my_handler)

A handler is ``handler(keep, remove, context) -> int`` (rows moved); it runs
inside the merge's transaction with both contacts locked, and may append
human-readable notes with ``context.note("...")``. Without a handler the
foreign key is moved with one UPDATE. Foreign keys to Contact that nobody
registered are moved the same way, so nothing is left pointing at the
trashed contact; register a handler when a unique constraint needs care.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ForeignObjectRel, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import (
    Activity,
    ConsentRecord,
    Contact,
    ContactAddress,
    ContactEmail,
    ContactPhone,
    Contribution,
    CustomFieldValue,
    DuplicateStatus,
    GroupMembership,
    Membership,
    MembershipType,
    MergeRecord,
    Participant,
    ParticipantStatus,
    PossibleDuplicate,
    RecurringContribution,
    Relationship,
    SoftCredit,
)
from .activities import record_system_event, user_or_none
from .contacts import CONTACT_FIELDS, _address_identity, _phone_identity, update_contact
from .events import cancel_registration

SOURCE = "merge"
KEEP, REMOVE = "keep", "remove"
# Simple fields staff choose between; the kind must already agree.
MERGE_FIELDS = tuple(name for name in CONTACT_FIELDS if name != "kind")

# Event places, best first: the better one survives when both have a place.
_PLACE_RANK = {
    ParticipantStatus.ATTENDED: 0,
    ParticipantStatus.NO_SHOW: 1,
    ParticipantStatus.REGISTERED: 2,
    ParticipantStatus.PENDING_PAYMENT: 3,
    ParticipantStatus.WAITLISTED: 4,
}
_CANCELLABLE = (
    ParticipantStatus.PENDING_PAYMENT,
    ParticipantStatus.REGISTERED,
    ParticipantStatus.WAITLISTED,
)


@dataclass
class MergeContext:
    """What handlers get besides the two contacts: the actor and a notebook."""

    actor: object = None
    notes: list = field(default_factory=list)

    def note(self, text):
        self.notes.append(str(text))


@dataclass(frozen=True)
class MergeHandler:
    model: type
    field_name: str
    handler: object = None

    @property
    def label(self):
        return f"{self.model._meta.label_lower}.{self.field_name}"


_registry = {}


def register_merge_handler(model, field_name, handler=None):
    """Say how a merge moves ``model`` rows whose ``field_name`` is the removed contact.

    Registering the same (model, field) again replaces the earlier entry.
    """
    entry = MergeHandler(model, field_name, handler)
    _registry[entry.label] = entry
    return entry


def merge_handlers():
    """Every foreign key to Contact with how it is moved, registered ones first."""
    handlers = dict(_registry)
    # Hidden relations too (``related_name="+"``); not the tags' own through
    # table, which the merge fills with ``keep.tags.add``.
    for relation in Contact._meta.get_fields(include_hidden=True):
        if not isinstance(relation, ForeignObjectRel) or relation.many_to_many:
            continue
        model = relation.related_model
        if model in (PossibleDuplicate, MergeRecord) or model._meta.auto_created:
            continue
        entry = MergeHandler(model, relation.field.name)
        handlers.setdefault(entry.label, entry)
    return list(handlers.values())


# -- refusing bad input ---------------------------------------------------------------------


def _lock_pair(keep, remove):
    keep_pk, remove_pk = getattr(keep, "pk", keep), getattr(remove, "pk", remove)
    if keep_pk is None or remove_pk is None:
        raise ValidationError(_("Choose two saved contacts to merge."))
    if keep_pk == remove_pk:
        raise ValidationError(_("A contact cannot be merged with itself."))
    # Lock in id order, so two merges of overlapping pairs cannot deadlock.
    locked = {
        c.pk: c
        for c in Contact.all_objects.select_for_update()
        .filter(pk__in=[keep_pk, remove_pk])
        .order_by("pk")
    }
    if len(locked) != 2:
        raise ValidationError(_("One of the contacts no longer exists."))
    keep, remove = locked[keep_pk], locked[remove_pk]
    for contact in (keep, remove):
        if contact.is_deleted:
            raise ValidationError(
                _("%(name)s is in the trash; restore it before merging.") % {"name": contact}
            )
    if keep.kind != remove.kind:
        raise ValidationError(
            _("Only contacts of the same kind can be merged (%(a)s and %(b)s).")
            % {"a": keep.get_kind_display().lower(), "b": remove.get_kind_display().lower()}
        )
    return keep, remove


def _is_blank(value):
    return value is None or value == "" or value is False


def default_side(keep, remove, name):
    """Whose value of the simple field ``name`` a merge keeps unless staff choose.

    The kept contact's, unless it is blank and the other is not; an employer
    that is the kept contact itself is never proposed (it cannot employ itself).
    """
    if name == "employer" and remove.employer_id == keep.pk:
        return KEEP
    kept, other = getattr(keep, name), getattr(remove, name)
    return REMOVE if _is_blank(kept) and not _is_blank(other) else KEEP


def _clean_choices(keep, remove, field_choices):
    """Return {field: "keep"|"remove"} for every simple and custom field that differs."""
    choices = dict(field_choices or {})
    errors = {}
    custom_names = set(
        CustomFieldValue.objects.filter(contact__in=[keep, remove]).values_list(
            "field__name", flat=True
        )
    )
    for name, side in choices.items():
        known = name in MERGE_FIELDS or (
            name.startswith("custom:") and name.removeprefix("custom:") in custom_names
        )
        if not known:
            errors[name] = [_("Unknown field.")]
        elif side not in (KEEP, REMOVE):
            errors[name] = [_('Choose "keep" or "remove".')]
    if errors:
        raise ValidationError(errors)
    result = {}
    for name in MERGE_FIELDS:
        if getattr(keep, name) == getattr(remove, name):
            continue
        result[name] = choices.get(name) or default_side(keep, remove, name)
    for name in sorted(custom_names):
        key = f"custom:{name}"
        result[key] = choices.get(key, KEEP)
    return result


# -- the merge ------------------------------------------------------------------------------


@transaction.atomic
def merge_contacts(keep, remove, *, field_choices=None, actor=None, source=SOURCE):
    """Merge ``remove`` into ``keep``; return the ``MergeRecord``.

    ``field_choices`` maps a simple field (see ``MERGE_FIELDS``) or
    ``"custom:<name>"`` to ``"keep"`` or ``"remove"``: whose value the kept
    contact ends up with. Fields left out keep the kept contact's value,
    unless it is blank and the other is not.

    Raises ``ValidationError`` (nothing written) for a contact merged with
    itself, a trashed contact, contacts of different kinds, unknown fields
    or choices, or values that together break a contact rule.
    """
    keep, remove = _lock_pair(keep, remove)
    choices = _clean_choices(keep, remove, field_choices)
    snapshot = _snapshot(remove)
    context = MergeContext(actor=actor)
    moved = {}

    chosen = {
        name: getattr(remove, name)
        for name, side in choices.items()
        if side == REMOVE and not name.startswith("custom:")
    }
    if "external_id" in chosen:
        # Unique: free it on the removed contact before the kept one takes it.
        Contact.all_objects.filter(pk=remove.pk).update(external_id=None)
    moved["emails"] = _union_emails(keep, remove)
    moved["phones"] = _union_phones(keep, remove)
    moved["addresses"] = _union_addresses(keep, remove)
    moved["custom_values"] = _merge_custom_values(keep, remove, choices)
    tags = list(remove.tags.all())
    keep.tags.add(*tags)
    moved["tags"] = len(tags)
    # The contact's own "source" (where it came from) would clash with the
    # service's ``source`` argument (who makes this change): set apart.
    origin = chosen.pop("source", None)
    if chosen:
        # Validates (names, dates, employer) and recomputes the display names.
        update_contact(keep, actor=actor, source=source, **chosen)
    if origin is not None:
        Contact.all_objects.filter(pk=keep.pk).update(source=origin)
        keep.source = origin

    for entry in merge_handlers():
        handler = entry.handler or _move_foreign_key(entry.model, entry.field_name)
        count = handler(keep, remove, context)
        if count:
            moved[entry.label] = count

    Contact.all_objects.filter(pk=remove.pk).update(
        is_deleted=True, deleted_at=timezone.now(), updated_at=timezone.now()
    )
    _close_pairs(keep, remove)
    record = MergeRecord.objects.create(
        kept_contact=keep,
        removed_contact=remove,
        kept_contact_ref=keep.pk,
        removed_contact_ref=remove.pk,
        merged_by=user_or_none(actor),
        source=source[:100],
        field_choices=choices,
        moved={name: count for name, count in moved.items() if count},
        notes=context.notes,
        removed_snapshot=snapshot,
    )
    record_system_event(
        keep,
        _("Merged with %(name)s (contact %(id)s)") % {"name": remove, "id": remove.pk},
        actor=actor,
        source=source,
        details="\n".join(context.notes),
        changes={"merged_contact": [remove.pk, None], "merge_record": [None, record.pk]},
    )
    record_system_event(
        remove,
        _("Merged into %(name)s (contact %(id)s)") % {"name": keep, "id": keep.pk},
        actor=actor,
        source=source,
        changes={"is_deleted": [False, True]},
    )
    return record


def _snapshot(contact):
    def plain(value):
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if value is None or isinstance(value, (bool, int, float, str, list)):
            return value
        return str(value)

    data = {"id": contact.pk, "kind": contact.kind, "display_name": contact.display_name}
    data.update({name: plain(getattr(contact, name)) for name in MERGE_FIELDS})
    data["emails"] = list(contact.emails.values_list("email", flat=True))
    data["phones"] = [str(p) for p in contact.phones.all()]
    data["addresses"] = [str(a) for a in contact.addresses.all()]
    data["tags"] = sorted(contact.tags.values_list("slug", flat=True))
    data["custom_fields"] = {
        v.field.name: plain(v.value) for v in contact.custom_values.select_related("field")
    }
    return data


def _union_rows(keep, remove, model, related_name, identity):
    known = {identity(row) for row in getattr(keep, related_name).all()}
    keep_has_primary = getattr(keep, related_name).filter(is_primary=True).exists()
    moved = 0
    for row in getattr(remove, related_name).all():
        if identity(row) in known:
            continue
        known.add(identity(row))
        row.contact = keep
        row.is_primary = row.is_primary and not keep_has_primary
        keep_has_primary = keep_has_primary or row.is_primary
        row.save()
        moved += 1
    return moved


def _union_emails(keep, remove):
    # An address on hold (it bounced) stays on hold whoever had it.
    held = set(remove.emails.filter(on_hold=True).values_list("email_normalized", flat=True))
    keep.emails.filter(email_normalized__in=held).update(on_hold=True)
    return _union_rows(keep, remove, ContactEmail, "emails", lambda row: row.email_normalized)


def _union_phones(keep, remove):
    return _union_rows(keep, remove, ContactPhone, "phones", _phone_identity)


def _union_addresses(keep, remove):
    return _union_rows(keep, remove, ContactAddress, "addresses", _address_identity)


def _merge_custom_values(keep, remove, choices):
    kept = {v.field_id: v for v in keep.custom_values.select_related("field")}
    moved = 0
    for value in remove.custom_values.select_related("field"):
        current = kept.get(value.field_id)
        if current is not None:
            if choices.get(f"custom:{value.field.name}") != REMOVE:
                value.delete()
                continue
            current.delete()
        value.contact = keep
        value.save(update_fields=["contact"])
        moved += 1
    return moved


def _move_foreign_key(model, field_name):
    def move(keep, remove, context):
        manager = getattr(model, "_base_manager", model.objects)
        return manager.filter(**{field_name: remove}).update(**{field_name: keep})

    return move


def _close_pairs(keep, remove):
    low, high = sorted([keep.pk, remove.pk])
    PossibleDuplicate.objects.filter(contact_a_id=low, contact_b_id=high).update(
        status=DuplicateStatus.MERGED
    )
    # The removed contact's other pairs now concern the kept one: open ones
    # to review, and decisions that it is not a duplicate, which must hold
    # for the kept contact too (else the next search asks again).
    for pair in PossibleDuplicate.objects.filter(
        Q(contact_a=remove) | Q(contact_b=remove),
        status__in=[DuplicateStatus.OPEN, DuplicateStatus.NOT_DUPLICATE],
    ):
        other = pair.contact_b_id if pair.contact_a_id == remove.pk else pair.contact_a_id
        low, high = sorted([keep.pk, other])
        existing = PossibleDuplicate.objects.filter(contact_a_id=low, contact_b_id=high).first()
        if other == keep.pk:
            pair.delete()
        elif existing is None:
            PossibleDuplicate.objects.filter(pk=pair.pk).update(contact_a_id=low, contact_b_id=high)
        else:
            if pair.status == DuplicateStatus.NOT_DUPLICATE and existing.status == (
                DuplicateStatus.OPEN
            ):
                PossibleDuplicate.objects.filter(pk=existing.pk).update(
                    status=DuplicateStatus.NOT_DUPLICATE
                )
            pair.delete()


# -- crm_core's own records -----------------------------------------------------------------


def _move_participants(keep, remove, context):
    kept_places = {
        p.event_id: p
        for p in Participant.objects.filter(contact=keep).exclude(
            status=ParticipantStatus.CANCELLED
        )
    }
    moved = 0
    for place in Participant.objects.filter(contact=remove).select_related("event"):
        other = kept_places.get(place.event_id)
        if other is not None and place.status != ParticipantStatus.CANCELLED:
            # One live place per person per event: the better one stays.
            if _PLACE_RANK.get(place.status, 9) < _PLACE_RANK.get(other.status, 9):
                loser, winner = other, place
            else:
                loser, winner = place, other
            reason = _("Duplicate place: the merged contact also has place %(id)s.") % {
                "id": winner.pk
            }
            _cancel_place(loser, reason, context.actor)
            context.note(
                _("%(event)s: both had a place; place %(lost)s was cancelled, %(kept)s kept.")
                % {"event": place.event.title, "lost": loser.pk, "kept": winner.pk}
            )
        Participant.objects.filter(pk=place.pk).update(contact=keep)
        moved += 1
    return moved


def _cancel_place(participant, reason, actor):
    if participant.status in _CANCELLABLE:
        cancel_registration(participant, reason=reason, actor=actor, source=SOURCE)
    else:
        # Attended or no-show twice: history, not a seat; close it directly.
        Participant.objects.filter(pk=participant.pk).update(
            status=ParticipantStatus.CANCELLED, cancelled_at=timezone.now(), cancel_reason=reason
        )


def _move_group_memberships(keep, remove, context):
    current = {g.group_id: g for g in GroupMembership.objects.filter(contact=keep).current()}
    moved = 0
    for spell in GroupMembership.objects.filter(contact=remove).select_related("group"):
        other = current.get(spell.group_id)
        if spell.left_at is None and other is not None:
            # Both in the group now: one row, from the earlier join.
            if spell.joined_at < other.joined_at:
                GroupMembership.objects.filter(pk=other.pk).update(joined_at=spell.joined_at)
            spell.delete()
            continue
        GroupMembership.objects.filter(pk=spell.pk).update(contact=keep)
        moved += 1
    return moved


def _move_relationships(keep, remove, context):
    moved = 0
    for relationship in Relationship.objects.filter(
        Q(contact_a=remove) | Q(contact_b=remove)
    ).select_related("relationship_type"):
        a = keep.pk if relationship.contact_a_id == remove.pk else relationship.contact_a_id
        b = keep.pk if relationship.contact_b_id == remove.pk else relationship.contact_b_id
        same = Relationship.objects.filter(
            relationship_type_id=relationship.relationship_type_id,
            contact_a_id=a,
            contact_b_id=b,
            is_active=relationship.is_active,
        ).exclude(pk=relationship.pk)
        if a == b or same.exists():
            # A relationship between the two merged contacts, or one the
            # kept contact already has.
            relationship.delete()
            continue
        Relationship.objects.filter(pk=relationship.pk).update(contact_a_id=a, contact_b_id=b)
        moved += 1
    return moved


def _move_soft_credits(keep, remove, context):
    moved = 0
    for credit in SoftCredit.objects.filter(contact=remove):
        clash = SoftCredit.objects.filter(
            contribution_id=credit.contribution_id, contact=keep, kind=credit.kind
        ).first()
        if clash is not None:
            context.note(
                _("Contribution %(id)s credited both; the credit of %(amount)s was dropped.")
                % {"id": credit.contribution_id, "amount": credit.amount}
            )
            credit.delete()
            continue
        SoftCredit.objects.filter(pk=credit.pk).update(contact=keep)
        moved += 1
    # A credit to one of the two on a gift the other paid now credits the payer.
    for credit in SoftCredit.objects.filter(contact=keep, contribution__contact=keep):
        context.note(
            _("Contribution %(id)s: the soft credit to its own payer was dropped.")
            % {"id": credit.contribution_id}
        )
        credit.delete()
    return moved


def _move_consent(keep, remove, context):
    # Consent records are append-only; this is the one sanctioned change:
    # the records keep what they say and say it of the kept contact.
    return ConsentRecord.objects.filter(contact=remove).reassign_contact(keep)


def _move_employees(keep, remove, context):
    if keep.employer_id == remove.pk:
        Contact.all_objects.filter(pk=keep.pk).update(employer=None)
    return Contact.all_objects.filter(employer=remove).exclude(pk=keep.pk).update(employer=keep)


for _model, _field, _handler in (
    (Activity, "contact", None),
    (Membership, "contact", None),
    (Contribution, "contact", None),
    (RecurringContribution, "contact", None),
    (MembershipType, "owner", None),
    (Participant, "registered_by", None),
    (Participant, "contact", _move_participants),
    (GroupMembership, "contact", _move_group_memberships),
    (Relationship, "contact_a", _move_relationships),
    (SoftCredit, "contact", _move_soft_credits),
    (ConsentRecord, "contact", _move_consent),
    (Contact, "employer", _move_employees),
    # Handled above with the fields staff chose.
    (ContactEmail, "contact", lambda keep, remove, context: 0),
    (ContactPhone, "contact", lambda keep, remove, context: 0),
    (ContactAddress, "contact", lambda keep, remove, context: 0),
    (CustomFieldValue, "contact", lambda keep, remove, context: 0),
    (Relationship, "contact_b", lambda keep, remove, context: 0),
):
    register_merge_handler(_model, _field, _handler)
