"""Relationships between contacts (employee of, household member of, ...)."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import Relationship
from ..sanitize import plain_text
from .activities import record_system_event


def _validate(relationship):
    errors = {}
    rtype = relationship.relationship_type
    a, b = relationship.contact_a, relationship.contact_b
    if a.pk == b.pk:
        errors["contact_b"] = [_("A contact cannot be related to itself.")]
    if a.is_deleted or b.is_deleted:
        errors["contact_a" if a.is_deleted else "contact_b"] = [_("This contact is in the trash.")]
    if rtype.contact_kind_a and a.kind != rtype.contact_kind_a:
        errors["contact_a"] = [
            _("Must be of kind %(kind)s for this type.") % {"kind": rtype.contact_kind_a}
        ]
    if rtype.contact_kind_b and b.kind != rtype.contact_kind_b:
        errors["contact_b"] = [
            _("Must be of kind %(kind)s for this type.") % {"kind": rtype.contact_kind_b}
        ]
    if not rtype.is_active and relationship._state.adding:
        errors["relationship_type"] = [_("This relationship type is not active.")]
    if (
        relationship.start_date
        and relationship.end_date
        and relationship.end_date < relationship.start_date
    ):
        errors["end_date"] = [_("The end date is before the start date.")]
    if errors:
        raise ValidationError(errors)


def _describe(relationship):
    return _("%(a)s %(label)s %(b)s") % {
        "a": relationship.contact_a.display_name,
        "label": relationship.relationship_type.label_a_to_b,
        "b": relationship.contact_b.display_name,
    }


def _log_both(relationship, subject, *, actor, source, changes=None):
    for contact in (relationship.contact_a, relationship.contact_b):
        record_system_event(contact, subject, actor=actor, source=source, changes=changes)


@transaction.atomic
def create_relationship(
    *,
    relationship_type,
    contact_a,
    contact_b,
    start_date=None,
    end_date=None,
    is_active=True,
    description="",
    actor=None,
    source="",
):
    """Relate two contacts; the activity is recorded on both."""
    relationship = Relationship(
        relationship_type=relationship_type,
        contact_a=contact_a,
        contact_b=contact_b,
        start_date=start_date,
        end_date=end_date,
        is_active=is_active,
        description=plain_text(description),
    )
    _validate(relationship)
    relationship.full_clean(exclude=["relationship_type", "contact_a", "contact_b"])
    relationship.save()
    _log_both(
        relationship,
        _("Relationship added: %(what)s") % {"what": _describe(relationship)},
        actor=actor,
        source=source,
    )
    return relationship


UPDATABLE = {
    "start_date",
    "end_date",
    "is_active",
    "description",
    "relationship_type",
    "contact_a",
    "contact_b",
}


@transaction.atomic
def update_relationship(relationship, *, actor=None, source="", **fields):
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValidationError({name: [_("Unknown field.")] for name in unknown})
    changes = {}
    for name, value in fields.items():
        if name == "description":
            value = plain_text(value)
        old = getattr(relationship, name)
        if old != value:
            changes[name] = [str(getattr(old, "pk", old)), str(getattr(value, "pk", value))]
        setattr(relationship, name, value)
    _validate(relationship)
    relationship.full_clean(exclude=["relationship_type", "contact_a", "contact_b"])
    relationship.save()
    if changes:
        _log_both(
            relationship,
            _("Relationship changed: %(what)s") % {"what": _describe(relationship)},
            actor=actor,
            source=source,
            changes=changes,
        )
    return relationship


@transaction.atomic
def delete_relationship(relationship, *, actor=None, source=""):
    _log_both(
        relationship,
        _("Relationship removed: %(what)s") % {"what": _describe(relationship)},
        actor=actor,
        source=source,
    )
    relationship.delete()
