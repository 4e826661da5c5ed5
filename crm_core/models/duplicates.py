from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
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


class DuplicateRuleKind(models.TextChoices):
    EMAIL = "email", _("Same email address")
    PHONE = "phone", _("Same phone number and similar name")
    NAME_POSTCODE = "name_postcode", _("Similar name and same postcode")
    NAME_ADDRESS = "name_address", _("Similar name and similar street address")
    ORGANIZATION_NAME = "organization_name", _("Similar organisation or household name")


class DuplicateRule(models.Model):
    """One rule of the duplicate finder, as staff configured it.

    Similarities are rapidfuzz scores from 0 (nothing alike) to 100 (equal)
    of the accent- and case-folded names (and street addresses). A rule
    that matches a pair gives it ``score``; the pair keeps its best score.
    """

    kind = models.CharField(
        _("rule"), max_length=30, choices=DuplicateRuleKind.choices, unique=True
    )
    is_active = models.BooleanField(_("active"), default=True)
    score = models.PositiveSmallIntegerField(
        _("score"),
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("How sure a match of this rule is, from 1 to 100."),
    )
    name_similarity = models.PositiveSmallIntegerField(
        _("least name similarity"),
        default=0,
        validators=[MaxValueValidator(100)],
        help_text=_("0 compares no names; 100 needs equal names."),
    )
    address_similarity = models.PositiveSmallIntegerField(
        _("least address similarity"),
        default=0,
        validators=[MaxValueValidator(100)],
        help_text=_("For the street address rule."),
    )

    class Meta:
        verbose_name = _("duplicate rule")
        verbose_name_plural = _("duplicate rules")
        ordering = ["-score", "kind"]

    def __str__(self):
        return self.get_kind_display()


class MergeRecord(models.Model):
    """The audit of one merge: who merged which contact into which, when,
    what was chosen field by field, how many records moved, and a snapshot
    of the removed contact as it was. Written only by ``merge_contacts``.
    """

    kept_contact = models.ForeignKey(
        "crm_core.Contact",
        verbose_name=_("kept contact"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="merges_received",
    )
    removed_contact = models.ForeignKey(
        "crm_core.Contact",
        verbose_name=_("merged contact"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="merged_into_records",
    )
    # The ids again: the audit outlives a contact erased for good.
    kept_contact_ref = models.PositiveBigIntegerField(_("kept contact id"))
    removed_contact_ref = models.PositiveBigIntegerField(_("merged contact id"))
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("merged by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    merged_at = models.DateTimeField(_("merged"), default=timezone.now, db_index=True)
    source = models.CharField(_("source"), max_length=100, blank=True)
    field_choices = models.JSONField(_("field choices"), default=dict, blank=True)
    moved = models.JSONField(_("records moved"), default=dict, blank=True)
    notes = models.JSONField(_("notes"), default=list, blank=True)
    removed_snapshot = models.JSONField(_("merged contact as it was"), default=dict)

    class Meta:
        verbose_name = _("merge record")
        verbose_name_plural = _("merge records")
        ordering = ["-merged_at", "-id"]
        permissions = [("merge_contacts", _("Can merge duplicate contacts"))]

    def __str__(self):
        return _("Contact %(removed)s merged into %(kept)s") % {
            "removed": self.removed_contact_ref,
            "kept": self.kept_contact_ref,
        }
