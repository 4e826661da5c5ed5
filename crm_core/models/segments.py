from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SmartGroup(models.Model):
    """A saved search over contacts: its members are whoever matches ``criteria`` now.

    ``criteria`` follows the schema of ``crm_core.selectors.segments``; it is
    checked with ``validate_criteria`` before saving (see ``clean``), and
    ``contacts()`` compiles it into one SQL query.
    """

    name = models.CharField(_("name"), max_length=150, unique=True)
    slug = models.SlugField(_("slug"), max_length=150, unique=True)
    description = models.TextField(_("description"), blank=True)
    criteria = models.JSONField(_("criteria"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("smart group")
        verbose_name_plural = _("smart groups")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        from ..selectors.segments import validate_criteria

        self.criteria = validate_criteria(self.criteria, field_name="criteria")

    def contacts(self):
        """The contacts (never soft-deleted ones) that match the criteria, as a queryset."""
        from ..selectors.segments import segment_contacts

        return segment_contacts(self.criteria)
