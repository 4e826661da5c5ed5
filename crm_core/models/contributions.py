import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..money import format_money, parse_amount, validate_currency

# Every amount column: up to 99,999,999,999.999, so three-decimal currencies fit.
AMOUNT = {"max_digits": 14, "decimal_places": 3}


class FinancialType(models.Model):
    """A fund: what money is for (Donation, Membership dues, Event fees, a named appeal)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    is_deductible = models.BooleanField(
        _("tax deductible"), default=False, help_text=_("Shown on receipts and statements.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("financial type")
        verbose_name_plural = _("financial types")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Campaign(models.Model):
    """An appeal or campaign that contributions are attributed to."""

    name = models.CharField(_("name"), max_length=255)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    goal_amount = models.DecimalField(_("goal"), **AMOUNT, null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    starts_on = models.DateField(_("starts"), null=True, blank=True)
    ends_on = models.DateField(_("ends"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-starts_on", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        errors = {}
        if self.currency:
            try:
                self.currency = validate_currency(self.currency)
            except ValidationError as exc:
                errors["currency"] = exc.messages
        if self.goal_amount is not None:
            if not self.currency:
                errors.setdefault("currency", [_("Give the goal's currency.")])
            elif "currency" not in errors:
                try:
                    self.goal_amount = parse_amount(self.goal_amount, self.currency)
                except ValidationError as exc:
                    errors["goal_amount"] = exc.messages
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            errors["ends_on"] = [_("The campaign ends before it starts.")]
        if errors:
            raise ValidationError(errors)


class ContributionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")


class PaymentMethod(models.TextChoices):
    CARD = "card", _("Card")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")
    DIRECT_DEBIT = "direct_debit", _("Direct debit")
    CHEQUE = "cheque", _("Cheque")
    CASH = "cash", _("Cash")
    OTHER = "other", _("Other")


class ReceiptStatus(models.TextChoices):
    NOT_REQUIRED = "not_required", _("Not required")
    PENDING = "pending", _("To send")
    SENT = "sent", _("Sent")


class Contribution(models.Model):
    """Money a contact gives or pays: a donation, dues, event fees, or a mix.

    What it pays for is in its line items. Its status only changes through
    ``crm_core.services.contributions``; payment attempts and refunds at a
    provider are rows of crm_payments that call those services.
    """

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.PROTECT, related_name="contributions"
    )
    total_amount = models.DecimalField(_("total"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    financial_type = models.ForeignKey(
        FinancialType,
        verbose_name=_("financial type"),
        on_delete=models.PROTECT,
        related_name="contributions",
    )
    campaign = models.ForeignKey(
        Campaign,
        verbose_name=_("campaign"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contributions",
    )
    source = models.CharField(_("source"), max_length=255, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=ContributionStatus.choices,
        default=ContributionStatus.PENDING,
        db_index=True,
    )
    received_at = models.DateTimeField(_("received"), null=True, blank=True, db_index=True)
    payment_method = models.CharField(
        _("payment method"), max_length=20, choices=PaymentMethod.choices, blank=True
    )
    transaction_id = models.CharField(
        _("transaction id"),
        max_length=255,
        blank=True,
        help_text=_("The payment provider's or bank's reference."),
    )
    refunded_amount = models.DecimalField(_("refunded"), **AMOUNT, default=0)
    receipt_status = models.CharField(
        _("receipt"),
        max_length=20,
        choices=ReceiptStatus.choices,
        default=ReceiptStatus.PENDING,
    )
    receipt_sent_at = models.DateTimeField(_("receipt sent"), null=True, blank=True)
    recurring = models.ForeignKey(
        "crm_core.RecurringContribution",
        verbose_name=_("recurring contribution"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contributions",
    )
    note = models.TextField(_("note"), blank=True)
    status_reason = models.CharField(
        _("reason"), max_length=255, blank=True, help_text=_("Why it failed or was cancelled.")
    )
    is_disputed = models.BooleanField(_("disputed"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("contribution")
        verbose_name_plural = _("contributions")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("refund_contribution", _("Can refund contributions")),
            ("record_offline_payment", _("Can record offline payments")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["transaction_id"],
                condition=~models.Q(transaction_id=""),
                name="crm_contribution_unique_transaction",
            ),
            models.CheckConstraint(
                condition=models.Q(total_amount__gte=0), name="crm_contribution_total_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0)
                & models.Q(refunded_amount__lte=models.F("total_amount")),
                name="crm_contribution_refund_within_total",
            ),
        ]
        indexes = [
            models.Index(fields=["contact", "-received_at"], name="crm_contribution_contact"),
        ]

    def __str__(self):
        return f"{format_money(self.total_amount, self.currency)} ({self.get_status_display()})"


class LineItemKind(models.TextChoices):
    DONATION = "donation", _("Donation")
    MEMBERSHIP = "membership", _("Membership term")
    EVENT_FEE = "event_fee", _("Event registration")


class LineItem(models.Model):
    """One thing a contribution pays for.

    A membership line pays for a term of ``membership`` (its first term when
    the membership is pending, a renewal otherwise); an event line pays for
    ``participant``'s seat. ``applied_at`` is set when ``complete`` has given
    the contact what was paid for, so completing twice changes nothing.
    """

    contribution = models.ForeignKey(
        Contribution, on_delete=models.CASCADE, related_name="line_items"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=LineItemKind.choices)
    label = models.CharField(_("label"), max_length=255)
    quantity = models.PositiveIntegerField(
        _("quantity"), default=1, validators=[MinValueValidator(1)]
    )
    unit_amount = models.DecimalField(_("unit amount"), **AMOUNT)
    line_total = models.DecimalField(_("line total"), **AMOUNT)
    financial_type = models.ForeignKey(
        FinancialType, verbose_name=_("financial type"), on_delete=models.PROTECT, related_name="+"
    )
    membership = models.ForeignKey(
        "crm_core.Membership",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="line_items",
    )
    participant = models.ForeignKey(
        "crm_core.Participant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="line_items",
    )
    applied_at = models.DateTimeField(_("applied"), null=True, blank=True, editable=False)
    term_start = models.DateField(_("term start"), null=True, blank=True, editable=False)
    term_end = models.DateField(_("term end"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("line item")
        verbose_name_plural = _("line items")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="membership", membership__isnull=False, participant__isnull=True)
                    | models.Q(kind="event_fee", participant__isnull=False, membership__isnull=True)
                    | models.Q(kind="donation", membership__isnull=True, participant__isnull=True)
                ),
                name="crm_lineitem_points_at_what_it_pays_for",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_amount__gte=0, line_total__gte=0),
                name="crm_lineitem_amounts_not_negative",
            ),
        ]

    def __str__(self):
        return self.label


class SoftCreditKind(models.TextChoices):
    IN_HONOUR = "in_honour", _("In honour of")
    IN_MEMORY = "in_memory", _("In memory of")
    PEER_TO_PEER = "peer_to_peer", _("Peer-to-peer fundraiser")


class SoftCredit(models.Model):
    """Credit for a contribution to someone other than the payer."""

    contribution = models.ForeignKey(
        Contribution, on_delete=models.CASCADE, related_name="soft_credits"
    )
    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.PROTECT, related_name="soft_credits"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=SoftCreditKind.choices)
    amount = models.DecimalField(_("amount"), **AMOUNT)

    class Meta:
        verbose_name = _("soft credit")
        verbose_name_plural = _("soft credits")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contribution", "contact", "kind"], name="crm_softcredit_once"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.contact}"


class FrequencyUnit(models.TextChoices):
    MONTH = "month", _("Month")
    YEAR = "year", _("Year")


class RecurringStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    IN_PROGRESS = "in_progress", _("In progress")
    OVERDUE = "overdue", _("Overdue")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    COMPLETED = "completed", _("Completed")


class RecurringContribution(models.Model):
    """A standing order: a monthly or annual gift, or an auto-renewing membership.

    Each instalment is a Contribution pointing here; the provider's
    subscription id is ``processor_id``.
    """

    reference = models.UUIDField(_("reference"), default=uuid.uuid4, unique=True, editable=False)
    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.PROTECT, related_name="recurring_contributions"
    )
    amount = models.DecimalField(_("amount"), **AMOUNT)
    currency = models.CharField(_("currency"), max_length=3)
    frequency_unit = models.CharField(
        _("every"), max_length=10, choices=FrequencyUnit.choices, default=FrequencyUnit.MONTH
    )
    frequency_interval = models.PositiveSmallIntegerField(
        _("interval"), default=1, validators=[MinValueValidator(1)]
    )
    installments = models.PositiveIntegerField(
        _("instalments"), null=True, blank=True, help_text=_("Leave blank for open-ended.")
    )
    financial_type = models.ForeignKey(
        FinancialType, verbose_name=_("financial type"), on_delete=models.PROTECT, related_name="+"
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    membership = models.ForeignKey(
        "crm_core.Membership",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recurring_contributions",
        help_text=_("The membership this renews automatically."),
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=RecurringStatus.choices,
        default=RecurringStatus.PENDING,
        db_index=True,
    )
    start_date = models.DateField(_("start date"), default=timezone.localdate)
    next_date = models.DateField(_("next payment"), null=True, blank=True)
    payment_method = models.CharField(
        _("payment method"), max_length=20, choices=PaymentMethod.choices, blank=True
    )
    processor = models.CharField(_("payment provider"), max_length=50, blank=True)
    processor_id = models.CharField(
        _("provider's subscription id"), max_length=255, blank=True, db_index=True
    )
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancellation reason"), max_length=255, blank=True)
    source = models.CharField(_("source"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("recurring contribution")
        verbose_name_plural = _("recurring contributions")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gt=0), name="crm_recurring_amount_positive"
            ),
        ]

    def __str__(self):
        return f"{format_money(self.amount, self.currency)} / {self.get_frequency_unit_display()}"
