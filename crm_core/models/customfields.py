import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .contacts import ContactKind

# Largest magnitude a number or money value may have (fits DECIMAL(18, 4)).
MAX_DECIMAL = Decimal("99999999999999.9999")


class FieldType(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    MONEY = "money", _("Money")
    DATE = "date", _("Date")
    BOOLEAN = "boolean", _("Yes / no")
    CHOICE = "choice", _("Choice")
    MULTI_CHOICE = "multi_choice", _("Multiple choice")


class CustomField(models.Model):
    """A typed field staff define for contacts, usable in forms, import and filters."""

    name = models.SlugField(
        _("name"),
        max_length=64,
        unique=True,
        help_text=_("Machine name used in the API, imports and filters."),
    )
    label = models.CharField(_("label"), max_length=255)
    field_type = models.CharField(_("type"), max_length=20, choices=FieldType.choices)
    choices = models.JSONField(
        _("choices"),
        default=list,
        blank=True,
        help_text=_("For choice fields: the allowed values, as a list of strings."),
    )
    currency = models.CharField(
        _("currency"), max_length=3, blank=True, help_text=_("ISO 4217 code, for money fields.")
    )
    applies_to = models.CharField(
        _("applies to"),
        max_length=20,
        choices=ContactKind.choices,
        blank=True,
        help_text=_("Leave blank for every kind of contact."),
    )
    is_required = models.BooleanField(_("required"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    help_text = models.CharField(_("help text"), max_length=255, blank=True)
    weight = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")
        ordering = ["weight", "label"]

    def __str__(self):
        return self.label

    def clean(self):
        if self.field_type in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
            if not isinstance(self.choices, list) or not self.choices:
                raise ValidationError({"choices": _("List the allowed values.")})
            if not all(isinstance(c, str) and c.strip() for c in self.choices):
                raise ValidationError({"choices": _("Each choice must be a non-empty text.")})
            if len(set(self.choices)) != len(self.choices):
                raise ValidationError({"choices": _("Choices must be unique.")})
        elif self.choices:
            raise ValidationError({"choices": _("Only choice fields have choices.")})
        if self.field_type == FieldType.MONEY:
            if len(self.currency or "") != 3 or not self.currency.isalpha():
                raise ValidationError({"currency": _("Give a three-letter ISO 4217 code.")})
            self.currency = self.currency.upper()
        elif self.currency:
            raise ValidationError({"currency": _("Only money fields have a currency.")})

    def to_python(self, value):
        """Validate ``value`` for this field and return it in its stored type.

        Raises ``ValidationError`` with a message naming what is expected.
        ``None`` and "" mean "no value" and are returned as ``None``.
        """
        if value is None or value == "" or value == []:
            if self.is_required:
                raise ValidationError(_("%(label)s is required.") % {"label": self.label})
            return None
        kind = self.field_type
        if kind == FieldType.TEXT:
            if not isinstance(value, str):
                raise ValidationError(_("Expected text."))
            if len(value) > 2000:
                raise ValidationError(_("At most 2000 characters."))
            return value
        if kind in (FieldType.NUMBER, FieldType.MONEY):
            if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
                raise ValidationError(_("Expected a number."))
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                raise ValidationError(_("Expected a number.")) from None
            if not number.is_finite() or abs(number) > MAX_DECIMAL:
                raise ValidationError(_("Number out of range."))
            if kind == FieldType.MONEY and number.as_tuple().exponent < -2:
                raise ValidationError(_("At most two decimal places."))
            return number.quantize(Decimal("0.0001"))
        if kind == FieldType.DATE:
            if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
                return value
            if isinstance(value, str):
                try:
                    return datetime.date.fromisoformat(value.strip())
                except ValueError:
                    pass
            raise ValidationError(_("Expected a date as YYYY-MM-DD."))
        if kind == FieldType.BOOLEAN:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1"}:
                return True
            if isinstance(value, str) and value.strip().lower() in {"false", "no", "0"}:
                return False
            raise ValidationError(_("Expected true or false."))
        if kind == FieldType.CHOICE:
            if value not in self.choices:
                raise ValidationError(
                    _("Choose one of: %(choices)s.") % {"choices": ", ".join(self.choices)}
                )
            return value
        if kind == FieldType.MULTI_CHOICE:
            if not isinstance(value, (list, tuple)):
                raise ValidationError(_("Expected a list of choices."))
            unknown = [v for v in value if v not in self.choices]
            if unknown:
                raise ValidationError(
                    _("Choose from: %(choices)s.") % {"choices": ", ".join(self.choices)}
                )
            return sorted(set(value), key=self.choices.index)
        raise ValidationError(_("Unknown field type."))


class CustomFieldValue(models.Model):
    """The value of one custom field for one contact, in a column of its type.

    Typed columns (not one JSON blob) let filters and reports compare numbers
    and dates in the database on SQLite and PostgreSQL alike.
    """

    contact = models.ForeignKey(
        "crm_core.Contact", on_delete=models.CASCADE, related_name="custom_values"
    )
    field = models.ForeignKey(CustomField, on_delete=models.CASCADE, related_name="values")
    value_text = models.TextField(blank=True, null=True)
    value_decimal = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    value_date = models.DateField(null=True, blank=True)
    value_bool = models.BooleanField(null=True, blank=True)
    value_list = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = _("custom field value")
        verbose_name_plural = _("custom field values")
        constraints = [
            models.UniqueConstraint(fields=["contact", "field"], name="crm_custom_value_unique"),
        ]

    COLUMN_BY_TYPE = {
        FieldType.TEXT: "value_text",
        FieldType.CHOICE: "value_text",
        FieldType.NUMBER: "value_decimal",
        FieldType.MONEY: "value_decimal",
        FieldType.DATE: "value_date",
        FieldType.BOOLEAN: "value_bool",
        FieldType.MULTI_CHOICE: "value_list",
    }

    def __str__(self):
        return f"{self.field.name}={self.value!r}"

    @property
    def value(self):
        return getattr(self, self.COLUMN_BY_TYPE[self.field.field_type])

    @value.setter
    def value(self, python_value):
        for column in set(self.COLUMN_BY_TYPE.values()):
            setattr(self, column, None)
        setattr(self, self.COLUMN_BY_TYPE[self.field.field_type], python_value)
