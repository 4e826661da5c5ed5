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
