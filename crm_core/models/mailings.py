"""Bulk mailings: reusable message templates, mailings and one row per recipient.

The services in ``crm_core.services.mailings`` are the only writers of
recipients and of a mailing's status and counts.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.template import Engine, TemplateSyntaxError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Templates are compiled by a bare engine: Django's built-in tags and filters,
# no template loaders (so no {% include %} or {% extends %} of site files).
TEMPLATE_ENGINE = Engine(autoescape=True)


def _check_template(value, field, errors):
    try:
        TEMPLATE_ENGINE.from_string(value or "")
    except TemplateSyntaxError as exc:
        errors[field] = [_("This template has an error: %(error)s") % {"error": exc}]


class MessageTemplate(models.Model):
    """Subject and bodies that mailings reuse; ``{{ first_name }}``-style tokens allowed."""

    name = models.CharField(_("name"), max_length=150, unique=True)
    subject = models.CharField(_("subject"), max_length=255)
    body_html = models.TextField(_("HTML body"))
    body_text = models.TextField(
        _("plain text body"),
        blank=True,
        help_text=_("Leave blank to send a plain text version made from the HTML body."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        for field in ("subject", "body_html", "body_text"):
            _check_template(getattr(self, field), field, errors)
        if errors:
            raise ValidationError(errors)


class MailingStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")


class Mailing(models.Model):
    """One bulk email to the contacts of some groups, minus other groups.

    The subject and bodies are the mailing's own when given, otherwise its
    template's. Smart groups will add their own "include" and "exclude"
    relations; ``crm_core.services.mailings.audience`` is where they join.
    """

    name = models.CharField(_("name"), max_length=255)
    template = models.ForeignKey(
        MessageTemplate,
        verbose_name=_("template"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mailings",
    )
    subject = models.CharField(
        _("subject"), max_length=255, blank=True, help_text=_("Blank: the template's subject.")
    )
    body_html = models.TextField(
        _("HTML body"), blank=True, help_text=_("Blank: the template's bodies.")
    )
    body_text = models.TextField(
        _("plain text body"),
        blank=True,
        help_text=_("Blank: made from the HTML body."),
    )
    from_email = models.CharField(
        _("from"),
        max_length=254,
        blank=True,
        help_text=_('Such as "Riverside Trust <news@example.org>". Blank: the site\'s address.'),
    )
    reply_to = models.EmailField(_("reply to"), blank=True)
    include_groups = models.ManyToManyField(
        "crm_core.Group",
        verbose_name=_("send to the groups"),
        blank=True,
        related_name="mailings_included_in",
    )
    exclude_groups = models.ManyToManyField(
        "crm_core.Group",
        verbose_name=_("except the groups"),
        blank=True,
        related_name="mailings_excluded_from",
    )
    include_smart_groups = models.ManyToManyField(
        "crm_core.SmartGroup",
        verbose_name=_("send to the smart groups"),
        blank=True,
        related_name="mailings_included_in",
        help_text=_("Whoever matches the smart group's search when the mailing is sent."),
    )
    exclude_smart_groups = models.ManyToManyField(
        "crm_core.SmartGroup",
        verbose_name=_("except the smart groups"),
        blank=True,
        related_name="mailings_excluded_from",
    )
    consent_purpose = models.SlugField(
        _("consent required"),
        max_length=64,
        blank=True,
        help_text=_(
            "A consent purpose such as newsletter: only contacts whose latest email consent "
            "for it is granted receive the mailing. Blank: everyone in the groups who has "
            "not unsubscribed from mailings."
        ),
    )
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=MailingStatus.choices,
        default=MailingStatus.DRAFT,
        editable=False,
    )
    recipients_count = models.PositiveIntegerField(_("recipients"), default=0, editable=False)
    sent_count = models.PositiveIntegerField(_("sent"), default=0, editable=False)
    failed_count = models.PositiveIntegerField(_("failed"), default=0, editable=False)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    started_at = models.DateTimeField(_("sending started"), null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(_("sending finished"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("mailing")
        verbose_name_plural = _("mailings")
        ordering = ["-created_at", "-id"]
        permissions = [("send_mailing", "Can send a mailing")]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        for field in ("subject", "body_html", "body_text"):
            _check_template(getattr(self, field), field, errors)
        if not self.template_id and not self.body_html.strip():
            errors["body_html"] = [_("Write the message or choose a template.")]
        if not self.template_id and not self.subject.strip():
            errors["subject"] = [_("Give a subject or choose a template.")]
        if errors:
            raise ValidationError(errors)

    @property
    def effective_subject(self):
        if self.subject.strip() or self.template is None:
            return self.subject
        return self.template.subject

    @property
    def effective_bodies(self):
        """``(html, text)``: the mailing's own when it has an HTML body, else the template's."""
        if self.body_html.strip() or self.template is None:
            return self.body_html, self.body_text
        return self.template.body_html, self.template.body_text

    @property
    def is_editable(self):
        return self.status in (MailingStatus.DRAFT, MailingStatus.SCHEDULED)


class RecipientStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    # Claimed by a worker that is sending it now (see services.mailings).
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class MailingRecipient(models.Model):
    """One address a mailing goes to, at most once per mailing (case-insensitive)."""

    mailing = models.ForeignKey(Mailing, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey(
        "crm_core.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mailing_recipients",
    )
    email = models.CharField(_("email"), max_length=254)
    email_lower = models.CharField(max_length=254, editable=False)
    status = models.CharField(
        _("status"), max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.PENDING
    )
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("mailing recipient")
        verbose_name_plural = _("mailing recipients")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailing", "email_lower"], name="crm_mailing_one_per_address"
            )
        ]
        indexes = [
            models.Index(fields=["mailing", "status"], name="crm_mailing_recipient_status"),
            models.Index(fields=["claim_token"], name="crm_mailing_recipient_claim"),
        ]

    def __str__(self):
        return f"{self.email} ({self.get_status_display()})"
