"""What crm_forms stores of its own: one row per accepted submission.

The row's unique ``token`` (put in the form when it is shown) makes a
replayed submission (double click, back button, a captured request sent
again) land on the first one's thank-you page instead of paying twice.
"""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class Submission(models.Model):
    token = models.UUIDField(_("form token"), unique=True)
    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(_("form kind"), max_length=40)
    placement = models.CharField(
        _("placed at"), max_length=255, help_text=_("Page, revision and block.")
    )
    contact = models.ForeignKey(
        "crm_core.Contact", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    contribution = models.ForeignKey(
        "crm_core.Contribution", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    membership = models.ForeignKey(
        "crm_core.Membership", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    next_url = models.CharField(_("where the visitor was sent"), max_length=2000, blank=True)
    thank_you = models.TextField(_("thank-you text shown"), blank=True)
    instructions = models.TextField(_("payment instructions shown"), blank=True)
    #: What a confirmation link completes later (newsletter signup: the groups),
    #: and facts the thank-you page needs (membership: whether it was a renewal).
    pending = models.JSONField(_("waiting for confirmation"), default=dict, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    created_at = models.DateTimeField(_("submitted"), auto_now_add=True)

    class Meta:
        verbose_name = _("form submission")
        verbose_name_plural = _("form submissions")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.reference}"
