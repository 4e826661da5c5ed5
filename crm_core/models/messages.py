from django.db import models
from django.utils.translation import gettext_lazy as _


class SentMessage(models.Model):
    """A transactional email that went out, keyed so that it goes out once.

    The key names the message and what it is about, e.g. ``receipt:42`` or
    ``registration:<uuid>``; sending the same key again does nothing.
    """

    key = models.CharField(_("key"), max_length=200, unique=True)
    contact = models.ForeignKey(
        "crm_core.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sent_messages",
    )
    to = models.CharField(_("sent to"), max_length=254)
    subject = models.CharField(_("subject"), max_length=255)
    sent_at = models.DateTimeField(_("sent"), auto_now_add=True)

    class Meta:
        verbose_name = _("sent message")
        verbose_name_plural = _("sent messages")
        ordering = ["-sent_at"]

    def __str__(self):
        return f"{self.subject} -> {self.to}"


class MessageKind(models.TextChoices):
    """The transactional messages the CRM sends; each one's wording is editable."""

    RECEIPT = "receipt", _("Receipt for a payment")
    REGISTRATION = "registration", _("Event registration confirmation")
    MEMBERSHIP = "membership", _("Membership welcome or renewal confirmation")
    RENEWAL_REMINDER = "renewal_reminder", _("Membership renewal reminder (before the end)")
    GRACE_REMINDER = "grace_reminder", _("Membership renewal reminder (after the end, in grace)")
    WAITLIST_OFFER = "waitlist_offer", _("Waiting list: a place is offered")
    ANNUAL_STATEMENT = "annual_statement", _("Annual giving statement")


class MessageWording(models.Model):
    """An editor's wording of one transactional message, replacing the shipped one.

    ``subject`` and ``body`` are templates with ``{{ token }}`` values (see
    ``crm_core.services.messages.TOKENS``); blank means the shipped wording
    (``crm_core/email/<kind>.txt`` and ``<kind>_subject.txt``, translated).
    """

    kind = models.CharField(_("message"), max_length=40, choices=MessageKind.choices, unique=True)
    subject = models.CharField(
        _("subject"),
        max_length=255,
        blank=True,
        help_text=_("Leave subject and text blank to use the shipped, translated wording."),
    )
    body = models.TextField(_("text"), blank=True, max_length=20000)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message wording")
        verbose_name_plural = _("message wording")
        ordering = ["kind"]

    def __str__(self):
        return str(self.get_kind_display())

    @property
    def is_custom(self):
        return bool(self.subject.strip() or self.body.strip())
