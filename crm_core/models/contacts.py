from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField


class ContactKind(models.TextChoices):
    INDIVIDUAL = "individual", _("Individual")
    ORGANIZATION = "organization", _("Organization")
    HOUSEHOLD = "household", _("Household")


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")
    SMS = "sms", _("SMS")
    POST = "post", _("Post")


class LocationType(models.TextChoices):
    HOME = "home", _("Home")
    WORK = "work", _("Work")
    BILLING = "billing", _("Billing")
    OTHER = "other", _("Other")


class ContactQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_deleted=False)

    def deleted(self):
        return self.filter(is_deleted=True)

    def with_details(self):
        """Everything a listing or the API shows, in a fixed number of queries."""
        from .customfields import CustomFieldValue  # customfields imports this module

        return self.select_related("employer").prefetch_related(
            "emails",
            "phones",
            "addresses",
            "tags",
            models.Prefetch(
                "custom_values", queryset=CustomFieldValue.objects.select_related("field")
            ),
        )


class ActiveContactManager(models.Manager.from_queryset(ContactQuerySet)):
    """Default manager: contacts that are not soft-deleted."""

    def get_queryset(self):
        return super().get_queryset().filter(is_deleted=False)


AllContactManager = models.Manager.from_queryset(ContactQuerySet)


class Contact(models.Model):
    kind = models.CharField(
        _("kind"), max_length=20, choices=ContactKind.choices, default=ContactKind.INDIVIDUAL
    )
    prefix = models.CharField(_("prefix"), max_length=20, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    suffix = models.CharField(_("suffix"), max_length=20, blank=True)
    nickname = models.CharField(_("nickname"), max_length=100, blank=True)
    organization_name = models.CharField(_("organization name"), max_length=255, blank=True)
    household_name = models.CharField(_("household name"), max_length=255, blank=True)
    # Derived from the name fields by the contact services on every write.
    display_name = models.CharField(_("display name"), max_length=255, editable=False)
    sort_name = models.CharField(_("sort name"), max_length=255, editable=False, db_index=True)
    # Accent-, case- and space-folded name that duplicate matching compares.
    name_key = models.CharField(max_length=255, editable=False, db_index=True)

    job_title = models.CharField(_("job title"), max_length=255, blank=True)
    employer = models.ForeignKey(
        "self",
        verbose_name=_("employer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="employees",
        limit_choices_to={"kind": ContactKind.ORGANIZATION},
    )
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, blank=True, choices=settings.LANGUAGES
    )
    preferred_channel = models.CharField(
        _("preferred channel"), max_length=10, blank=True, choices=Channel.choices
    )
    do_not_email = models.BooleanField(_("do not email"), default=False)
    do_not_phone = models.BooleanField(_("do not phone"), default=False)
    do_not_mail = models.BooleanField(_("do not mail"), default=False)
    do_not_sms = models.BooleanField(_("do not SMS"), default=False)
    is_opt_out = models.BooleanField(
        _("opted out of bulk mail"), default=False, help_text=_("No bulk mailings at all.")
    )
    is_deceased = models.BooleanField(_("deceased"), default=False)
    deceased_date = models.DateField(_("date of death"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=255, blank=True)
    external_id = models.CharField(
        _("external identifier"), max_length=64, null=True, blank=True, unique=True
    )
    tags = models.ManyToManyField("crm_core.Tag", blank=True, related_name="contacts")

    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_deleted = models.BooleanField(_("in trash"), default=False, db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ActiveContactManager()
    all_objects = AllContactManager()

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["sort_name", "id"]
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        permissions = [("restore_contact", "Can restore a contact from the trash")]
        indexes = [models.Index(fields=["kind", "sort_name"], name="crm_contact_kind_sort")]

    def __str__(self):
        return self.display_name or f"Contact {self.pk}"

    @property
    def primary_email(self):
        return _primary(self.emails.all())

    @property
    def primary_phone(self):
        return _primary(self.phones.all())

    @property
    def primary_address(self):
        return _primary(self.addresses.all())


def _primary(rows):
    # Works on prefetched rows without another query.
    rows = list(rows)
    for row in rows:
        if row.is_primary:
            return row
    return rows[0] if rows else None


class ContactEmail(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="emails")
    email = models.EmailField(_("email"), max_length=254)
    # Lower-cased copy that matching, search and uniqueness use.
    email_normalized = models.CharField(max_length=254, editable=False, db_index=True)
    location = models.CharField(
        _("location"), max_length=10, choices=LocationType.choices, default=LocationType.HOME
    )
    is_primary = models.BooleanField(_("primary"), default=False)
    on_hold = models.BooleanField(
        _("on hold"), default=False, help_text=_("Bounced or complained; not mailed.")
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("email address")
        verbose_name_plural = _("email addresses")
        ordering = ["-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "email_normalized"], name="crm_email_unique_per_contact"
            ),
            models.UniqueConstraint(
                fields=["contact"], condition=Q(is_primary=True), name="crm_email_one_primary"
            ),
        ]

    def __str__(self):
        return self.email


class PhoneType(models.TextChoices):
    MOBILE = "mobile", _("Mobile")
    LANDLINE = "landline", _("Landline")
    FAX = "fax", _("Fax")
    OTHER = "other", _("Other")


class ContactPhone(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="phones")
    # E.164, as phonenumbers formats it ("+442079460000").
    number = models.CharField(_("number"), max_length=20, db_index=True)
    extension = models.CharField(_("extension"), max_length=10, blank=True)
    phone_type = models.CharField(
        _("type"), max_length=10, choices=PhoneType.choices, default=PhoneType.MOBILE
    )
    location = models.CharField(
        _("location"), max_length=10, choices=LocationType.choices, default=LocationType.HOME
    )
    is_primary = models.BooleanField(_("primary"), default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("phone")
        verbose_name_plural = _("phones")
        ordering = ["-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "number", "extension"], name="crm_phone_unique_per_contact"
            ),
            models.UniqueConstraint(
                fields=["contact"], condition=Q(is_primary=True), name="crm_phone_one_primary"
            ),
        ]

    def __str__(self):
        return f"{self.number} x{self.extension}" if self.extension else self.number


class ContactAddress(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="addresses")
    location = models.CharField(
        _("location"), max_length=10, choices=LocationType.choices, default=LocationType.HOME
    )
    street_address = models.CharField(_("street address"), max_length=255, blank=True)
    supplemental_address = models.CharField(_("address line 2"), max_length=255, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    # Upper case, no spaces: what matching compares.
    postal_code_normalized = models.CharField(max_length=20, editable=False, db_index=True)
    country = CountryField(_("country"), blank=True)
    is_primary = models.BooleanField(_("primary"), default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("address")
        verbose_name_plural = _("addresses")
        ordering = ["-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact"], condition=Q(is_primary=True), name="crm_address_one_primary"
            ),
        ]

    def __str__(self):
        parts = [self.street_address, self.city, self.postal_code, str(self.country.name or "")]
        return ", ".join(p for p in parts if p)
