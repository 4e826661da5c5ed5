import functools
import uuid
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..dates import EARLIEST_DATE, LATEST_DATE
from ..money import format_money, validate_currency
from .contributions import AMOUNT

# Most seats an event may have: more is a typo, not a venue.
MAX_CAPACITY = 1_000_000
# Times that are checked against EARLIEST_DATE..LATEST_DATE.
DATETIME_FIELDS = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")


@functools.cache
def _time_zone_names():
    # available_timezones() reads the zone files from disk on every call.
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(name):
    if not isinstance(name, str) or name not in _time_zone_names():
        raise ValidationError(_("%(name)s is not a time zone name.") % {"name": str(name)[:64]})


class ParticipantRole(models.Model):
    """Attendee, speaker, volunteer, host... Roles that do not take a seat are allowed."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    counts_towards_capacity = models.BooleanField(_("takes a seat"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    weight = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("participant role")
        verbose_name_plural = _("participant roles")
        ordering = ["weight", "name"]

    def __str__(self):
        return self.name


class Event(models.Model):
    """Something people register for: a talk, a gala, a course, an AGM."""

    title = models.CharField(_("title"), max_length=255)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    summary = models.CharField(_("summary"), max_length=500, blank=True)
    description = models.TextField(_("description"), blank=True)
    starts_at = models.DateTimeField(_("starts"), db_index=True)
    ends_at = models.DateTimeField(_("ends"))
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default="Europe/London",
        validators=[validate_timezone],
        help_text=_("Where the event happens; times are shown in it."),
    )
    location = models.CharField(_("place"), max_length=255, blank=True)
    address = models.TextField(_("address"), blank=True)
    online_url = models.URLField(_("online link"), blank=True)
    capacity = models.PositiveIntegerField(
        _("capacity"), null=True, blank=True, help_text=_("Seats; leave blank for no limit.")
    )
    registration_opens_at = models.DateTimeField(_("registration opens"), null=True, blank=True)
    registration_closes_at = models.DateTimeField(
        _("registration closes"),
        null=True,
        blank=True,
        help_text=_("Leave blank to close when the event starts."),
    )
    max_seats_per_registration = models.PositiveSmallIntegerField(
        _("most seats per registration"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    waitlist_enabled = models.BooleanField(_("waitlist when full"), default=True)
    waitlist_offer_hours = models.PositiveSmallIntegerField(
        _("hours to take up a freed seat"),
        default=48,
        validators=[MinValueValidator(1), MaxValueValidator(720)],
    )
    currency = models.CharField(_("currency"), max_length=3, default="GBP")
    financial_type = models.ForeignKey(
        "crm_core.FinancialType",
        verbose_name=_("financial type"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
    )
    roles = models.ManyToManyField(
        ParticipantRole,
        verbose_name=_("roles offered"),
        blank=True,
        related_name="events",
        help_text=_("Leave empty to offer every active role."),
    )
    is_public = models.BooleanField(_("public"), default=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["starts_at", "id"]
        permissions = [("check_in_participant", _("Can check participants in"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gte=models.F("starts_at")),
                name="crm_event_ends_after_start",
            ),
        ]

    def __str__(self):
        return self.title

    @property
    def zone(self):
        return zoneinfo.ZoneInfo(self.time_zone)

    def clean(self):
        errors = self._out_of_range_times()
        if errors:
            # Fix the range first: the rules below would only add noise.
            raise ValidationError(errors)
        if self.starts_at and self.ends_at and self.ends_at < self.starts_at:
            errors["ends_at"] = [_("The event must end after it starts.")]
        opens, closes = self.registration_opens_at, self.registration_closes_at
        if opens and closes and closes <= opens:
            errors["registration_closes_at"] = [_("Registration must close after it opens.")]
        if closes and self.ends_at and closes > self.ends_at:
            errors["registration_closes_at"] = [_("Registration must close by the end.")]
        if self.capacity is not None and self.capacity > MAX_CAPACITY:
            errors["capacity"] = [_("At most %(count)s seats.") % {"count": f"{MAX_CAPACITY:,}"}]
        try:
            self.currency = validate_currency(self.currency)
        except ValidationError as exc:
            errors["currency"] = exc.messages
        else:
            if self._currency_is_fixed():
                errors["currency"] = [
                    _("This event has prices or fees in its currency: it cannot change.")
                ]
        if errors:
            raise ValidationError(errors)

    def _currency_is_fixed(self):
        """Whether a new currency would misread amounts already set in the old one."""
        if self.pk is None:
            return False
        saved = Event.objects.filter(pk=self.pk).values_list("currency", flat=True).first()
        if saved in (None, self.currency):
            return False
        return (
            self.fee_levels.filter(amount__gt=0).exists()
            or self.participants.filter(fee_amount__gt=0).exists()
        )

    def _out_of_range_times(self):
        """Errors for times outside EARLIEST_DATE..LATEST_DATE.

        A time near year 1 or 9999 saves, but converting it to the event's
        time zone (for pages, calendar files, messages) overflows.
        """
        message = _("Give a date between %(earliest)s and %(latest)s.") % {
            "earliest": EARLIEST_DATE.isoformat(),
            "latest": LATEST_DATE.isoformat(),
        }
        return {
            name: [message]
            for name in DATETIME_FIELDS
            if getattr(self, name)
            and not EARLIEST_DATE <= getattr(self, name).date() <= LATEST_DATE
        }


class EventFeeLevel(models.Model):
    """A price for a seat: "Standard 25.00", "Concession 10.00", "Free"."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="fee_levels")
    label = models.CharField(_("label"), max_length=255)
    amount = models.DecimalField(_("amount"), **AMOUNT, default=0)
    is_default = models.BooleanField(_("default"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    weight = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("fee level")
        verbose_name_plural = _("fee levels")
        ordering = ["weight", "amount", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="crm_feelevel_amount_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.label} ({format_money(self.amount, self.event.currency)})"


class EventQuestion(models.Model):
    """A custom field asked of each participant at registration."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="questions")
    field = models.ForeignKey(
        "crm_core.CustomField", on_delete=models.PROTECT, related_name="event_questions"
    )
    is_required = models.BooleanField(_("required"), default=False)
    weight = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("question")
        verbose_name_plural = _("questions")
        ordering = ["weight", "id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "field"], name="crm_eventquestion_once"),
        ]

    def __str__(self):
        return self.field.label


class ParticipantStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("Pending payment")
    REGISTERED = "registered", _("Registered")
    WAITLISTED = "waitlisted", _("Waitlisted")
    ATTENDED = "attended", _("Attended")
    NO_SHOW = "no_show", _("No-show")
    CANCELLED = "cancelled", _("Cancelled")


# Statuses that hold a seat. A waitlisted participant holds one only while
# an offer to them is open (offer_expires_at in the future).
SEAT_STATUSES = (
    ParticipantStatus.PENDING_PAYMENT,
    ParticipantStatus.REGISTERED,
    ParticipantStatus.ATTENDED,
    ParticipantStatus.NO_SHOW,
)


class Participant(models.Model):
    """A contact's place at an event (or on its waitlist).

    ``registration`` groups the seats booked together by ``registered_by``.
    Status changes only through ``crm_core.services.events``.
    """

    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="participants")
    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="participations"
    )
    role = models.ForeignKey(
        ParticipantRole, verbose_name=_("role"), on_delete=models.PROTECT, related_name="+"
    )
    fee_level = models.ForeignKey(
        EventFeeLevel,
        verbose_name=_("fee level"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="participants",
    )
    fee_amount = models.DecimalField(_("fee"), **AMOUNT, default=0)
    status = models.CharField(
        _("status"), max_length=20, choices=ParticipantStatus.choices, db_index=True
    )
    registration = models.UUIDField(_("registration"), default=uuid.uuid4, db_index=True)
    registered_by = models.ForeignKey(
        "crm_core.Contact",
        verbose_name=_("registered by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="registrations_made",
    )
    registered_at = models.DateTimeField(_("registered"), default=timezone.now)
    answers = models.JSONField(_("answers"), default=dict, blank=True)
    waitlisted_at = models.DateTimeField(_("waitlisted"), null=True, blank=True)
    offer_expires_at = models.DateTimeField(_("seat offered until"), null=True, blank=True)
    checked_in_at = models.DateTimeField(_("checked in"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancellation reason"), max_length=255, blank=True)
    source = models.CharField(_("source"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("participant")
        verbose_name_plural = _("participants")
        ordering = ["registered_at", "id"]
        constraints = [
            # One live place per person per event; cancelled ones are history.
            models.UniqueConstraint(
                fields=["event", "contact"],
                condition=~models.Q(status="cancelled"),
                name="crm_participant_once_per_event",
            ),
        ]
        indexes = [models.Index(fields=["event", "status"], name="crm_participant_event_status")]

    def __str__(self):
        return f"{self.contact} @ {self.event}"
