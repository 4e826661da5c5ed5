"""Payment attempts, refunds, disputes and provider bookkeeping.

A Contribution (crm_core) says what is owed; the rows here say how the money
moved. One contribution may have several payments (a declined card, then a
good one). Only ``crm_payments.services`` writes them.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm_core.money import format_money

AMOUNT = {"max_digits": 14, "decimal_places": 3}


class PaymentStatus(models.TextChoices):
    CREATED = "created", _("Created")
    PENDING = "pending", _("Waiting for the provider")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Payment(models.Model):
    """One attempt to pay a contribution through a provider."""

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    contribution = models.ForeignKey(
        "crm_core.Contribution",
        verbose_name=_("contribution"),
        on_delete=models.PROTECT,
        related_name="payments",
    )
    provider = models.CharField(_("provider"), max_length=50)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=PaymentStatus.choices,
        default=PaymentStatus.CREATED,
        db_index=True,
    )
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    provider_id = models.CharField(
        _("provider's id"),
        max_length=255,
        blank=True,
        help_text=_("The Stripe Checkout Session id, for example."),
    )
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    redirect_url = models.URLField(max_length=2000, blank=True)
    email = models.EmailField(_("payer's email"), blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    failure_reason = models.CharField(_("reason"), max_length=255, blank=True)
    needs_attention = models.CharField(
        _("needs attention"),
        max_length=255,
        blank=True,
        help_text=_("Set when money arrived that the contribution could not take."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_id"],
                condition=~Q(provider_id=""),
                name="crm_payment_unique_provider_id",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="crm_payment_amount_positive"),
        ]

    def __str__(self):
        return f"{format_money(self.amount, self.currency)} {self.provider} ({self.status})"

    @property
    def idempotency_key(self):
        """Stripe's Idempotency-Key for creating this attempt: the same after a restart."""
        return f"crm-payment-{self.reference}"


class RefundStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class Refund(models.Model):
    """Money given back for a payment, started by staff or reported by the provider."""

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    payment = models.ForeignKey(
        Payment,
        verbose_name=_("payment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refunds",
        help_text=_("Empty for a contribution that was paid without a provider."),
    )
    provider = models.CharField(_("provider"), max_length=50)
    contribution = models.ForeignKey(
        "crm_core.Contribution",
        verbose_name=_("contribution"),
        on_delete=models.PROTECT,
        related_name="provider_refunds",
    )
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(
        _("status"), max_length=20, choices=RefundStatus.choices, default=RefundStatus.PENDING
    )
    provider_id = models.CharField(_("provider's id"), max_length=255, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    failure_reason = models.CharField(_("why it failed"), max_length=255, blank=True)
    applied_at = models.DateTimeField(
        _("recorded on the contribution"),
        null=True,
        blank=True,
        help_text=_("When the contribution's refunded amount was updated (once)."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_id"],
                condition=~Q(provider_id=""),
                name="crm_refund_unique_provider_id",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="crm_refund_amount_positive"),
        ]

    def __str__(self):
        return f"{format_money(self.amount, self.currency)} ({self.status})"

    @property
    def idempotency_key(self):
        return f"crm-refund-{self.reference}"


class Dispute(models.Model):
    """A chargeback opened by the payer's bank; staff answer it at the provider."""

    payment = models.ForeignKey(
        Payment, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="disputes"
    )
    provider_id = models.CharField(_("provider's id"), max_length=255, unique=True)
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=50, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.provider_id} ({self.status})"


class ProviderCustomer(models.Model):
    """The provider's customer record for a contact, reused for every payment."""

    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="provider_customers"
    )
    provider = models.CharField(max_length=50)
    customer_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "contact"], name="crm_provider_customer_per_contact"
            ),
            models.UniqueConstraint(
                fields=["provider", "customer_id"], name="crm_provider_customer_unique_id"
            ),
        ]

    def __str__(self):
        return f"{self.provider} {self.customer_id}"


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed (will be retried)")


class WebhookEvent(models.Model):
    """Each provider event id, stored once: the guard against double counting."""

    provider = models.CharField(_("provider"), max_length=50)
    event_id = models.CharField(_("event id"), max_length=255)
    event_type = models.CharField(_("type"), max_length=100)
    object_id = models.CharField(_("object"), max_length=255, blank=True)
    livemode = models.BooleanField(default=False)
    status = models.CharField(
        _("status"), max_length=20, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED
    )
    attempts = models.PositiveIntegerField(_("deliveries"), default=1)
    error = models.TextField(_("error"), blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="crm_webhook_event_once"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"


class VelocityKind(models.TextChoices):
    START = "start", _("Payment started")
    DECLINE = "decline", _("Payment declined")
    FRAUD = "fraud", _("Fraud signal")


class VelocityEvent(models.Model):
    """What the card-testing defence counts: starts, declines and fraud signals."""

    kind = models.CharField(max_length=10, choices=VelocityKind.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["ip", "kind", "created_at"], name="crm_velocity_ip"),
            models.Index(fields=["email", "kind", "created_at"], name="crm_velocity_email"),
        ]

    def __str__(self):
        return f"{self.kind} {self.ip or self.email}"


class BlockKind(models.TextChoices):
    IP = "ip", _("IP address")
    EMAIL = "email", _("Email address")


class PaymentBlock(models.Model):
    """An IP or email address refused new payments until ``expires_at``."""

    kind = models.CharField(_("blocked"), max_length=10, choices=BlockKind.choices)
    value = models.CharField(_("address"), max_length=254)
    reason = models.CharField(_("reason"), max_length=255)
    created_at = models.DateTimeField(_("blocked at"), default=timezone.now)
    expires_at = models.DateTimeField(_("until"), db_index=True)
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("payment block")
        verbose_name_plural = _("payment blocks")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "value"], name="crm_payment_block_value")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.value}"

    @property
    def is_active(self):
        return self.lifted_at is None and self.expires_at > timezone.now()
