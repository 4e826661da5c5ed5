from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DuplicateStatus(models.TextChoices):
    OPEN = "open", _("To review")
    NOT_DUPLICATE = "not_duplicate", _("Not a duplicate")
    MERGED = "merged", _("Merged")


class PossibleDuplicate(models.Model):
    """A pair of contacts that may be the same person, waiting for review.

    ``contact_a`` is always the older (lower id) contact, so a pair is stored once.
    """

    contact_a = models.ForeignKey("crm_core.Contact", on_delete=models.CASCADE, related_name="+")
    contact_b = models.ForeignKey("crm_core.Contact", on_delete=models.CASCADE, related_name="+")
    score = models.PositiveSmallIntegerField(_("score"))
    reasons = models.JSONField(_("reasons"), default=list)
    status = models.CharField(
        _("status"), max_length=20, choices=DuplicateStatus.choices, default=DuplicateStatus.OPEN
    )
    found_by = models.CharField(_("found by"), max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("possible duplicate")
        verbose_name_plural = _("possible duplicates")
        ordering = ["-score", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["contact_a", "contact_b"], name="crm_duplicate_pair"),
            models.CheckConstraint(
                condition=models.Q(contact_a__lt=models.F("contact_b")),
                name="crm_duplicate_ordered_pair",
            ),
        ]

    def __str__(self):
        return f"{self.contact_a} ~ {self.contact_b} ({self.score})"
