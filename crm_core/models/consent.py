from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..exceptions import ConsentRecordImmutable
from .contacts import Channel


class ConsentQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ConsentRecordImmutable(_("Consent records are never edited."))

    def delete(self):
        raise ConsentRecordImmutable(_("Consent records are never deleted."))

    def reassign_contact(self, contact):
        """Attribute these records to ``contact``; returns how many.

        Only ``crm_core.services.merge`` calls this, when two contacts turn
        out to be one person: what each record says (purpose, channel,
        granted, when, source, wording) never changes.
        """
        return super().update(contact=contact)


class ConsentRecord(models.Model):
    """One statement of consent given or withdrawn; only ever appended.

    The current state for a purpose and channel is the latest record.
    ``wording`` is the exact text shown when it was given, and ``source`` /
    ``source_reference`` say where (which form, page and revision).
    """

    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.PROTECT, related_name="consent_records"
    )
    purpose = models.SlugField(
        _("purpose"), max_length=64, help_text=_("For example newsletter, fundraising, events.")
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    granted = models.BooleanField(_("granted"))
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now, db_index=True)
    source = models.CharField(_("source"), max_length=100, blank=True)
    source_reference = models.CharField(
        _("source reference"),
        max_length=255,
        blank=True,
        help_text=_("Where it was given: form, page and revision."),
    )
    wording = models.TextField(_("wording shown"), blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ConsentQuerySet.as_manager()

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(
                fields=["contact", "purpose", "channel", "-recorded_at"], name="crm_consent_latest"
            )
        ]

    def __str__(self):
        state = _("granted") if self.granted else _("withdrawn")
        return f"{self.purpose}/{self.channel} {state}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ConsentRecordImmutable(_("Consent records are never edited."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ConsentRecordImmutable(_("Consent records are never deleted."))
