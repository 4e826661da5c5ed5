from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..money import parse_amount, validate_currency
from .contributions import AMOUNT


class DurationUnit(models.TextChoices):
    DAY = "day", _("Days")
    MONTH = "month", _("Months")
    YEAR = "year", _("Years")
    LIFETIME = "lifetime", _("Lifetime")


class PeriodType(models.TextChoices):
    ROLLING = "rolling", _("Rolling: from the day of joining")
    FIXED = "fixed", _("Fixed: everyone's period starts on the same day")


class AutoRenew(models.TextChoices):
    NO = "no", _("Not offered")
    OPTIONAL = "optional", _("Offered")
    REQUIRED = "required", _("Required")


class MembershipType(models.Model):
    """A kind of membership: what it costs, how long a term lasts, who owns it."""

    name = models.CharField(_("name"), max_length=255)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(
        "crm_core.Contact",
        verbose_name=_("owner organisation"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_membership_types",
    )
    fee = models.DecimalField(_("fee"), **AMOUNT, default=0)
    currency = models.CharField(_("currency"), max_length=3)
    financial_type = models.ForeignKey(
        "crm_core.FinancialType",
        verbose_name=_("financial type"),
        on_delete=models.PROTECT,
        related_name="membership_types",
    )
    duration_unit = models.CharField(
        _("duration unit"), max_length=10, choices=DurationUnit.choices, default=DurationUnit.YEAR
    )
    duration_interval = models.PositiveSmallIntegerField(
        _("duration"), default=1, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    period_type = models.CharField(
        _("period"), max_length=10, choices=PeriodType.choices, default=PeriodType.ROLLING
    )
    fixed_period_start_month = models.PositiveSmallIntegerField(
        _("period starts (month)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(12)],
    )
    fixed_period_start_day = models.PositiveSmallIntegerField(
        _("period starts (day)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(31)],
    )
    fixed_period_rollover_month = models.PositiveSmallIntegerField(
        _("rollover (month)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(12)],
        help_text=_("Joining on or after this day covers the next period as well."),
    )
    fixed_period_rollover_day = models.PositiveSmallIntegerField(
        _("rollover (day)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(31)],
    )
    grace_period_days = models.PositiveSmallIntegerField(
        _("grace period (days)"),
        default=30,
        validators=[MaxValueValidator(3650)],
        help_text=_("Days after the end date during which a membership still counts."),
    )
    is_renewable_online = models.BooleanField(_("renewable online"), default=True)
    auto_renew = models.CharField(
        _("auto-renew"), max_length=10, choices=AutoRenew.choices, default=AutoRenew.NO
    )
    inherit_relationship_types = models.ManyToManyField(
        "crm_core.RelationshipType",
        verbose_name=_("inherited through"),
        blank=True,
        related_name="+",
        help_text=_(
            "Contacts related to an organisation member through these relationships "
            "get an inherited membership that follows the organisation's."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    weight = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("membership type")
        verbose_name_plural = _("membership types")
        ordering = ["weight", "name"]

    def __str__(self):
        return self.name

    def _currency_is_fixed(self):
        if self.pk is None:
            return False
        saved = MembershipType.objects.filter(pk=self.pk).values_list("currency", flat=True).first()
        return saved not in (None, self.currency) and self.memberships.exists()

    def clean(self):
        errors = {}
        try:
            self.currency = validate_currency(self.currency)
        except ValidationError as exc:
            errors["currency"] = exc.messages
        else:
            try:
                self.fee = parse_amount(self.fee, self.currency, allow_zero=True)
            except ValidationError as exc:
                errors["fee"] = exc.messages
            if self._currency_is_fixed():
                # Their dues were asked for in the old currency (and change_type
                # never moves a membership to another currency): make a new type.
                errors["currency"] = [_("This type has memberships: its currency cannot change.")]
        fixed = (self.fixed_period_start_month, self.fixed_period_start_day)
        rollover = (self.fixed_period_rollover_month, self.fixed_period_rollover_day)
        if self.period_type == PeriodType.FIXED:
            if self.duration_unit not in (DurationUnit.MONTH, DurationUnit.YEAR):
                errors["period_type"] = [_("A fixed period lasts months or years.")]
            if None in fixed:
                errors["fixed_period_start_month"] = [_("Give the day the period starts.")]
            elif not _valid_month_day(*fixed):
                errors["fixed_period_start_day"] = [_("That day does not exist in that month.")]
            if (rollover[0] is None) != (rollover[1] is None):
                errors["fixed_period_rollover_month"] = [_("Give both month and day, or neither.")]
            elif rollover[0] is not None and not _valid_month_day(*rollover):
                errors["fixed_period_rollover_day"] = [_("That day does not exist in that month.")]
        elif any(v is not None for v in fixed + rollover):
            errors["period_type"] = [_("Only fixed periods have a start and rollover day.")]
        if self.duration_unit == DurationUnit.LIFETIME and self.auto_renew != AutoRenew.NO:
            errors["auto_renew"] = [_("A lifetime membership does not renew.")]
        if errors:
            raise ValidationError(errors)


def _valid_month_day(month, day):
    # 29 February is refused: a period starting on it would drift every year.
    days_in_month = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= month <= 12 and 1 <= day <= days_in_month[month - 1]


class MembershipStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    NEW = "new", _("New")
    CURRENT = "current", _("Current")
    GRACE = "grace", _("Grace")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")
    DECEASED = "deceased", _("Deceased")


# Set by services, never by the date rules: pending (not paid yet),
# cancelled and deceased stay until a service changes them.
MANUAL_STATUSES = (MembershipStatus.PENDING, MembershipStatus.CANCELLED, MembershipStatus.DECEASED)
RULE_STATUSES = (
    MembershipStatus.NEW,
    MembershipStatus.CURRENT,
    MembershipStatus.GRACE,
    MembershipStatus.EXPIRED,
)


class DateEvent(models.TextChoices):
    JOIN = "join", _("Join date")
    START = "start", _("Start date")
    END = "end", _("End date")
    GRACE_END = "grace_end", _("End of grace period")


class OffsetUnit(models.TextChoices):
    DAY = "day", _("Days")
    MONTH = "month", _("Months")
    YEAR = "year", _("Years")


class MembershipStatusRule(models.Model):
    """When a membership has a date-driven status (new, current, grace, expired).

    A rule's window runs from ``start_event`` + offset to ``end_event`` + offset
    (both days included; no end event means open-ended). The first active rule
    by ``weight`` whose window holds the day decides the status.
    """

    status = models.CharField(
        _("status"), max_length=20, choices=MembershipStatus.choices, unique=True
    )
    start_event = models.CharField(_("from"), max_length=10, choices=DateEvent.choices)
    start_offset_unit = models.CharField(
        _("offset unit"), max_length=10, choices=OffsetUnit.choices, default=OffsetUnit.DAY
    )
    start_offset_interval = models.SmallIntegerField(
        _("offset"), default=0, validators=[MinValueValidator(-1000), MaxValueValidator(1000)]
    )
    end_event = models.CharField(_("until"), max_length=10, choices=DateEvent.choices, blank=True)
    end_offset_unit = models.CharField(
        _("offset unit"), max_length=10, choices=OffsetUnit.choices, default=OffsetUnit.DAY
    )
    end_offset_interval = models.SmallIntegerField(
        _("offset"), default=0, validators=[MinValueValidator(-1000), MaxValueValidator(1000)]
    )
    is_current_member = models.BooleanField(
        _("counts as a member"),
        default=True,
        help_text=_("Members in this status get member benefits and count in reports."),
    )
    weight = models.IntegerField(_("order"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("membership status rule")
        verbose_name_plural = _("membership status rules")
        ordering = ["weight", "id"]

    def __str__(self):
        return self.get_status_display()

    def clean(self):
        if self.status in MANUAL_STATUSES:
            raise ValidationError(
                {"status": _("This status is set by staff or payments, not by dates.")}
            )


class Membership(models.Model):
    """A contact's membership of one type, with its current term's dates.

    ``end_date`` is the last day covered (None for lifetime). Dates and status
    change only through ``crm_core.services.memberships``; each change is in
    the contact's history.
    """

    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="memberships"
    )
    membership_type = models.ForeignKey(
        MembershipType,
        verbose_name=_("membership type"),
        on_delete=models.PROTECT,
        related_name="memberships",
    )
    join_date = models.DateField(_("member since"))
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(_("end date"), null=True, blank=True, db_index=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=MembershipStatus.choices,
        default=MembershipStatus.PENDING,
        db_index=True,
    )
    source = models.CharField(_("source"), max_length=255, blank=True)
    auto_renew = models.BooleanField(_("auto-renew"), default=False)
    inherited_from = models.ForeignKey(
        "self",
        verbose_name=_("inherited from"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="inherited_memberships",
    )
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancellation reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["-start_date", "-id"]
        permissions = [("renew_membership", _("Can renew memberships"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True)
                | models.Q(end_date__gte=models.F("start_date")),
                name="crm_membership_end_after_start",
            ),
            models.CheckConstraint(
                condition=~models.Q(inherited_from=models.F("id")),
                name="crm_membership_not_inherited_from_itself",
            ),
        ]

    def __str__(self):
        return f"{self.membership_type} ({self.get_status_display()})"
