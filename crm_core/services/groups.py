"""Adding contacts to and removing them from static groups."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import Contact, GroupMembership
from .activities import record_system_event, user_or_none


def add_to_group(contact, group, *, actor=None, source=""):
    """Put ``contact`` in ``group``. Returns ``(membership, added)``.

    Idempotent: a contact already in the group keeps its current membership
    (``added`` is False), even when two requests race.
    """
    # Read from the database: the caller's instance may predate a trash.
    if Contact.all_objects.filter(pk=contact.pk, is_deleted=True).exists():
        raise ValidationError(_("This contact is in the trash."))
    if not group.is_active:
        raise ValidationError({"group": [_("This group is not active.")]})
    try:
        with transaction.atomic():
            membership = GroupMembership.objects.create(
                contact=contact, group=group, source=source[:100], added_by=user_or_none(actor)
            )
            record_system_event(
                contact,
                _("Added to group %(group)s") % {"group": group.name},
                actor=actor,
                source=source,
                changes={"groups": [None, group.slug]},
            )
    except IntegrityError:
        membership = GroupMembership.objects.current().get(contact=contact, group=group)
        return membership, False
    return membership, True


@transaction.atomic
def remove_from_group(contact, group, *, actor=None, source=""):
    """End ``contact``'s current membership of ``group``; the row stays as history.

    Returns the closed membership, or None when the contact was not in the group.
    """
    membership = (
        GroupMembership.objects.current()
        .select_for_update()
        .filter(contact=contact, group=group)
        .first()
    )
    if membership is None:
        return None
    membership.left_at = timezone.now()
    membership.removed_by = user_or_none(actor)
    membership.save(update_fields=["left_at", "removed_by"])
    record_system_event(
        contact,
        _("Removed from group %(group)s") % {"group": group.name},
        actor=actor,
        source=source,
        changes={"groups": [group.slug, None]},
    )
    return membership
