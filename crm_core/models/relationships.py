from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .contacts import ContactKind


class RelationshipType(models.Model):
    """A directional relationship: A "Employee of" B, B "Employer of" A."""

    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    label_a_to_b = models.CharField(_("label from A to B"), max_length=100)
    label_b_to_a = models.CharField(_("label from B to A"), max_length=100)
    contact_kind_a = models.CharField(
        _("kind of contact A"), max_length=20, choices=ContactKind.choices, blank=True
    )
    contact_kind_b = models.CharField(
        _("kind of contact B"), max_length=20, choices=ContactKind.choices, blank=True
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("relationship type")
        verbose_name_plural = _("relationship types")
        ordering = ["label_a_to_b"]

    def __str__(self):
        return f"{self.label_a_to_b} / {self.label_b_to_a}"


class Relationship(models.Model):
    relationship_type = models.ForeignKey(
        RelationshipType, on_delete=models.PROTECT, related_name="relationships"
    )
    contact_a = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="relationships_as_a"
    )
    contact_b = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="relationships_as_b"
    )
    start_date = models.DateField(_("start date"), null=True, blank=True)
    end_date = models.DateField(_("end date"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("relationship")
        verbose_name_plural = _("relationships")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(contact_a=models.F("contact_b")),
                name="crm_relationship_not_self",
            ),
        ]

    def __str__(self):
        return f"{self.contact_a} {self.relationship_type.label_a_to_b} {self.contact_b}"
