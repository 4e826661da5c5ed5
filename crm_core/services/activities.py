"""Writing a contact's timeline."""

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import crm_setting
from ..models import USER_ACTIVITY_TYPES, Activity, ActivityStatus, ActivityType
from ..sanitize import plain_text, rich_text


def user_or_none(actor):
    """Services take ``actor`` as a user, AnonymousUser or None; store a user or None."""
    if actor is None or isinstance(actor, AnonymousUser) or not getattr(actor, "pk", None):
        return None
    return actor


def system_event(contact, subject, *, actor=None, source="", changes=None, details=""):
    """The unsaved system activity ``record_system_event`` saves (for bulk writes).

    ``contact`` is a Contact or its id.
    """
    return Activity(
        **{"contact_id" if isinstance(contact, int) else "contact": contact},
        activity_type=ActivityType.SYSTEM,
        subject=plain_text(subject)[:255],
        details=plain_text(details, multiline=True),
        changes=changes or {},
        source=source[:100],
        created_by=user_or_none(actor),
    )


def record_system_event(contact, subject, *, actor=None, source="", changes=None, details=""):
    """Append a system activity (the contact's history). Never raises for its input."""
    event = system_event(
        contact, subject, actor=actor, source=source, changes=changes, details=details
    )
    event.save(force_insert=True)
    return event


def _clean_activity_fields(fields):
    errors = {}
    if "subject" in fields:
        fields["subject"] = plain_text(fields["subject"])
        if not fields["subject"]:
            errors["subject"] = [_("Give the activity a subject.")]
        elif len(fields["subject"]) > 255:
            errors["subject"] = [_("At most 255 characters.")]
    if "details" in fields:
        if len(fields["details"] or "") > crm_setting("MAX_TEXT_LENGTH"):
            errors["details"] = [_("The details are too long.")]
        else:
            fields["details"] = rich_text(fields["details"])
    if fields.get("duration") is not None and fields["duration"].total_seconds() <= 0:
        errors["duration"] = [_("The duration must be positive.")]
    if errors:
        raise ValidationError(errors)
    return fields


@transaction.atomic
def log_activity(
    contact,
    *,
    activity_type,
    subject,
    details="",
    occurred_at=None,
    status=ActivityStatus.COMPLETED,
    assignee=None,
    due_date=None,
    duration=None,
    actor=None,
    source="",
):
    """Add a note, call, meeting, email, task or volunteer hours to a contact's timeline.

    Only the user types are accepted here; system events and form submissions
    are written by the services that cause them.
    """
    if activity_type not in USER_ACTIVITY_TYPES:
        raise ValidationError({"activity_type": [_("This type of activity cannot be logged.")]})
    if activity_type == ActivityType.VOLUNTEER and duration is None:
        raise ValidationError({"duration": [_("Volunteer hours need a duration.")]})
    fields = _clean_activity_fields({"subject": subject, "details": details, "duration": duration})
    activity = Activity(
        contact=contact,
        activity_type=activity_type,
        occurred_at=occurred_at or timezone.now(),
        status=status,
        assignee=assignee,
        due_date=due_date,
        source=source[:100],
        created_by=user_or_none(actor),
        **fields,
    )
    activity.full_clean(exclude=["contact", "assignee", "created_by", "changes"])
    activity.save()
    return activity


def record_form_submission(contact, *, subject, details="", assignee=None, source=""):
    """Add what a visitor sent through a form to the contact's timeline.

    With an ``assignee`` it is a scheduled follow-up for that staff member.
    Text is cleaned as ``log_activity`` cleans it (tags stripped, length capped).
    """
    fields = _clean_activity_fields({"subject": subject[:255], "details": details})
    return Activity.objects.create(
        contact=contact,
        activity_type=ActivityType.FORM_SUBMISSION,
        occurred_at=timezone.now(),
        status=ActivityStatus.SCHEDULED if assignee else ActivityStatus.COMPLETED,
        assignee=assignee,
        source=source[:100],
        **fields,
    )


EDITABLE_ACTIVITY_FIELDS = {
    "subject",
    "details",
    "occurred_at",
    "status",
    "assignee",
    "due_date",
    "duration",
}


@transaction.atomic
def update_activity(activity, *, actor=None, source="", **fields):
    """Edit a logged activity; system events are history and cannot be edited."""
    if activity.activity_type not in USER_ACTIVITY_TYPES:
        raise ValidationError(_("System events cannot be edited."))
    unknown = set(fields) - EDITABLE_ACTIVITY_FIELDS
    if unknown:
        raise ValidationError({name: [_("This field cannot be changed.")] for name in unknown})
    fields = _clean_activity_fields(fields)
    for name, value in fields.items():
        setattr(activity, name, value)
    activity.full_clean(exclude=["contact", "assignee", "created_by", "changes"])
    activity.save()
    return activity


@transaction.atomic
def delete_activity(activity, *, actor=None, source=""):
    """Delete a logged activity and record that it was deleted."""
    if activity.activity_type not in USER_ACTIVITY_TYPES:
        raise ValidationError(_("System events cannot be deleted."))
    record_system_event(
        activity.contact,
        _("Activity deleted: %(subject)s") % {"subject": activity.subject},
        actor=actor,
        source=source,
    )
    activity.delete()
