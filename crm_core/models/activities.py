from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ActivityType(models.TextChoices):
    NOTE = "note", _("Note")
    CALL = "call", _("Phone call")
    MEETING = "meeting", _("Meeting")
    EMAIL = "email", _("Email")
    TASK = "task", _("Task")
    VOLUNTEER = "volunteer", _("Volunteer hours")
    FORM_SUBMISSION = "form_submission", _("Form submission")
    SYSTEM = "system", _("System event")


# Types staff and integrations may create; the others are written by services.
USER_ACTIVITY_TYPES = [
    ActivityType.NOTE,
    ActivityType.CALL,
    ActivityType.MEETING,
    ActivityType.EMAIL,
    ActivityType.TASK,
    ActivityType.VOLUNTEER,
]


class ActivityStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class Activity(models.Model):
    """An entry in a contact's timeline.

    Staff log notes, calls, meetings, tasks and volunteer hours; every write
    service also records a ``system`` activity naming who changed what
    (``changes`` maps a field to ``[old, new]``), which is the contact's history.
    """

    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="activities"
    )
    activity_type = models.CharField(_("type"), max_length=20, choices=ActivityType.choices)
    subject = models.CharField(_("subject"), max_length=255)
    details = models.TextField(_("details"), blank=True)
    occurred_at = models.DateTimeField(_("when"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=10, choices=ActivityStatus.choices, default=ActivityStatus.COMPLETED
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned to"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="crm_assigned_activities",
    )
    due_date = models.DateField(_("due"), null=True, blank=True)
    duration = models.DurationField(_("duration"), null=True, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    source = models.CharField(_("source"), max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("activity")
        verbose_name_plural = _("activities")
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["contact", "-occurred_at"], name="crm_activity_timeline")]

    def __str__(self):
        return self.subject
