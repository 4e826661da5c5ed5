"""The visitor's side of each form kind: Django forms built from a placement's config.

Choices carry positions, never prices: the amount a visitor picks is looked
up in the server's configuration, and a donor's own amount is checked
against the configured smallest and largest.
"""

import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import forms
from django.core.exceptions import ValidationError
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from crm_core.money import format_money, parse_amount
from crm_payments.providers import available_providers

from .kinds import FREQUENCIES

OTHER = "other"
TRIBUTE_CHOICES = [
    ("", _("No")),
    ("in_honour", _("In honour of someone")),
    ("in_memory", _("In memory of someone")),
]
FREQUENCY_LABELS = {
    "one_off": _("Once"),
    "monthly": _("Every month"),
    "annual": _("Every year"),
}


class VisitorForm(forms.Form):
    """What every CRM form has: a one-time token and a honeypot."""

    token = forms.UUIDField(widget=forms.HiddenInput)
    # Humans never see it (hidden by CSS and from screen readers); bots fill it in.
    website = forms.CharField(
        required=False,
        label=_("Leave this field empty"),
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    # The signed personal link's token, carried from the page to the submission.
    who = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def __init__(self, *args, config, visitor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config
        self.visitor = visitor
        if not self.is_bound:
            self.initial.setdefault("token", uuid.uuid4())
        if visitor is not None:
            self.initial["who"] = visitor.token
            for name in IDENTITY_FIELDS:
                if name in self.fields:
                    self.fields[name].required = False
                    self.fields[name].widget = forms.HiddenInput()

    def clean(self):
        cleaned = super().clean()
        if self.visitor is not None:
            # Who they are comes from the link or login, never from what was posted.
            contact = self.visitor.contact
            cleaned.update(
                contact=contact,
                first_name=contact.first_name,
                last_name=contact.last_name,
                email=self.visitor.email,
            )
        return cleaned

    @property
    def is_bot(self):
        return bool(self.data.get(self.add_prefix("website")))

    def offer_payment_methods(self):
        """Fill ``payment_method`` with the configured methods this site has set up."""
        self.providers = {p.identifier: p for p in available_providers()}
        methods = [m for m in self.config["payment_methods"] if m in self.providers]
        field = self.fields["payment_method"]
        field.choices = [(m, self.providers[m].verbose_name) for m in methods]
        if methods:
            self.initial.setdefault("payment_method", methods[0])

    def consent_fields(self):
        return [self[f"consent_{n}"] for n in range(len(self.config.get("consent") or []))]

    def add_consent_fields(self):
        for n, item in enumerate(self.config.get("consent") or []):
            self.fields[f"consent_{n}"] = forms.BooleanField(
                label=item["wording"], required=item.get("required", False)
            )

    def given_consents(self):
        """[(consent config, granted)] for each consent shown."""
        return [
            (item, bool(self.cleaned_data.get(f"consent_{n}")))
            for n, item in enumerate(self.config.get("consent") or [])
        ]


IDENTITY_FIELDS = ("first_name", "last_name", "email")


class ContactFieldsMixin(forms.Form):
    first_name = forms.CharField(
        label=_("First name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    email = forms.EmailField(
        label=_("Email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


class DonationForm(VisitorForm, ContactFieldsMixin):
    frequency = forms.ChoiceField(label=_("How often"), widget=forms.RadioSelect)
    amount = forms.ChoiceField(label=_("Amount"), widget=forms.RadioSelect)
    other_amount = forms.CharField(
        label=_("Your own amount"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    cover_fees = forms.BooleanField(required=False)
    tribute = forms.ChoiceField(
        label=_("Dedicate this gift"),
        required=False,
        widget=forms.RadioSelect,
        choices=TRIBUTE_CHOICES,
    )
    tribute_first_name = forms.CharField(
        label=_("Their first name"), max_length=100, required=False
    )
    tribute_last_name = forms.CharField(label=_("Their last name"), max_length=100, required=False)
    payment_method = forms.ChoiceField(label=_("How to pay"), widget=forms.RadioSelect)

    def __init__(self, *args, config, **kwargs):
        super().__init__(*args, config=config, **kwargs)
        currency = config["currency"]
        self.fields["frequency"].choices = [(f, FREQUENCY_LABELS[f]) for f in config["frequencies"]]
        self.initial.setdefault("frequency", config["frequencies"][0])
        choices = [
            (str(n), f"{format_money(item['amount'], currency)} {item['label']}".strip())
            for n, item in enumerate(config["amounts"])
        ]
        if config["allow_custom_amount"]:
            choices.append((OTHER, _("Another amount")))
            low, high = config["min_amount"], config["max_amount"]
            self.fields["other_amount"].help_text = _("From %(low)s to %(high)s.") % {
                "low": format_money(low, currency),
                "high": format_money(high, currency),
            }
        else:
            del self.fields["other_amount"]
        self.fields["amount"].choices = choices
        if choices:
            self.initial.setdefault("amount", choices[0][0])
        if config.get("cover_fees_percent"):
            self.fields["cover_fees"].label = _("Add %(percent)s%% to cover the payment fees") % {
                "percent": config["cover_fees_percent"].normalize()
            }
        else:
            del self.fields["cover_fees"]
        if config.get("allow_tribute"):
            self.initial.setdefault("tribute", "")
        else:
            for name in ("tribute", "tribute_first_name", "tribute_last_name"):
                del self.fields[name]
        self.offer_payment_methods()
        self.add_consent_fields()

    def tribute_fields(self):
        if "tribute" not in self.fields:
            return []
        return [self["tribute_first_name"], self["tribute_last_name"]]

    def clean_other_amount(self):
        value = (self.cleaned_data.get("other_amount") or "").strip().replace(",", "")
        if not value:
            return None
        currency = self.config["currency"]
        try:
            amount = parse_amount(value.lstrip("£$€¥ "), currency)
        except ValidationError as error:
            raise ValidationError(error.messages) from None
        except (InvalidOperation, ValueError):
            raise ValidationError(_("Expected an amount such as 12.50.")) from None
        low, high = self.config["min_amount"], self.config["max_amount"]
        if amount < low or amount > high:
            raise ValidationError(
                _("Give an amount from %(low)s to %(high)s.")
                % {"low": format_money(low, currency), "high": format_money(high, currency)}
            )
        return amount

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("amount")
        if choice == OTHER:
            if "other_amount" in self.errors:
                return cleaned
            if cleaned.get("other_amount") is None:
                self.add_error("other_amount", _("Give the amount you would like to give."))
                return cleaned
            base = cleaned["other_amount"]
        elif choice is not None:
            base = self.config["amounts"][int(choice)]["amount"]
        else:
            return cleaned
        extra = Decimal(0)
        if cleaned.get("cover_fees"):
            # Round up at the half: the donor means to cover the whole fee.
            fee = (base * self.config["cover_fees_percent"] / 100).quantize(base, ROUND_HALF_UP)
            extra = parse_amount(
                fee,
                self.config["currency"],
                allow_zero=True,
            )
        cleaned["gift"], cleaned["fees"] = base, extra
        if cleaned.get("tribute"):
            first = cleaned.get("tribute_first_name", "").strip()
            last = cleaned.get("tribute_last_name", "").strip()
            if not (first or last):
                self.add_error("tribute_first_name", _("Give the name of the person."))
        frequency, method = cleaned.get("frequency"), cleaned.get("payment_method")
        recurring = frequency and FREQUENCIES[frequency]
        if recurring and method and not self.providers[method].supports_recurring:
            message = _("Monthly and annual gifts can only be paid by card.")
            self.add_error("payment_method", message)
        return cleaned


class MembershipForm(VisitorForm, ContactFieldsMixin):
    membership_type = forms.ChoiceField(label=_("Membership"), widget=forms.RadioSelect)
    auto_renew = forms.BooleanField(label=_("Renew automatically each time"), required=False)
    on_behalf = forms.BooleanField(
        label=_("I am joining on behalf of an organisation"), required=False
    )
    organisation_name = forms.CharField(
        label=_("Organisation name"),
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    payment_method = forms.ChoiceField(label=_("How to pay"), widget=forms.RadioSelect)

    field_order = ["membership_type", "auto_renew", "first_name", "last_name", "email"]

    def __init__(self, *args, config, **kwargs):
        from crm_core.models import MembershipType

        super().__init__(*args, config=config, **kwargs)
        types = MembershipType.objects.in_bulk(config["membership_types"])
        self.types = {str(pk): types[pk] for pk in config["membership_types"] if pk in types}
        self.renewals = self._renewals(self.visitor)
        self.fields["membership_type"].choices = [
            (key, _membership_label(kind, self.renewals.get(key)))
            for key, kind in self.types.items()
        ]
        if self.types:
            first = next(iter(self.renewals), None) or next(iter(self.types))
            self.initial.setdefault("membership_type", first)
        if all(kind.auto_renew == "no" for kind in self.types.values()):
            del self.fields["auto_renew"]
        if not config.get("organisation_relationship"):
            del self.fields["on_behalf"], self.fields["organisation_name"]
        self.offer_payment_methods()
        self.add_consent_fields()

    def _renewals(self, visitor):
        """{type key: membership} for what an identified visitor may renew here."""
        from crm_core.models import Membership
        from crm_core.services.memberships import paid_term_refusal

        if visitor is None:
            return {}
        held = (
            Membership.objects.filter(
                contact=visitor.contact,
                membership_type__in=[kind.pk for kind in self.types.values()],
                membership_type__is_renewable_online=True,
                inherited_from__isnull=True,
            )
            .exclude(status="pending")
            .select_related("membership_type", "contact")
            .order_by("-end_date", "-pk")
        )
        renewals = {}
        for membership in held:
            key = str(membership.membership_type_id)
            if key not in renewals and not paid_term_refusal(membership):
                renewals[key] = membership
        return renewals

    def clean(self):
        cleaned = super().clean()
        kind = self.types.get(cleaned.get("membership_type") or "")
        if kind is None:
            return cleaned
        cleaned["type"] = kind
        cleaned["renewing"] = self.renewals.get(cleaned["membership_type"])
        cleaned["organisation_name"] = (cleaned.get("organisation_name") or "").strip()
        if cleaned.get("on_behalf"):
            cleaned["renewing"] = None  # the organisation joins; the person's own stays as it is
            if not cleaned["organisation_name"]:
                self.add_error("organisation_name", _("Give the organisation's name."))
        auto = bool(cleaned.get("auto_renew"))
        if kind.auto_renew == "required":
            auto = True
        elif kind.auto_renew == "no":
            auto = False
        cleaned["auto_renew"] = auto
        method = cleaned.get("payment_method")
        if auto and kind.fee and method and not self.providers[method].supports_recurring:
            self.add_error("payment_method", _("Automatic renewal can only be paid by card."))
        return cleaned


def _membership_label(kind, renewing=None):
    price = format_money(kind.fee, kind.currency) if kind.fee else _("free")
    if renewing is not None:
        return _("Renew %(type)s: %(price)s (yours ends on %(end)s)") % {
            "type": kind.name,
            "price": price,
            "end": date_format(renewing.end_date),
        }
    if not kind.fee:
        return f"{kind.name} ({price})"
    return f"{kind.name}: {price}"


class EventRegistrationForm(VisitorForm, ContactFieldsMixin):
    """The registrant (who takes the first seat) and up to ``max_attendees - 1`` guests."""

    fee_level = forms.ChoiceField(label=_("Ticket"), widget=forms.RadioSelect)
    seats = forms.TypedChoiceField(label=_("Number of people"), coerce=int)
    payment_method = forms.ChoiceField(label=_("How to pay"), widget=forms.RadioSelect)

    def __init__(self, *args, config, **kwargs):
        from crm_core.models import Event

        super().__init__(*args, config=config, **kwargs)
        from crm_core.selectors.events import seats_left
        from crm_core.services.events import registration_closed_message

        self.event = Event.objects.get(pk=config["event"])
        self.closed_message = registration_closed_message(self.event)
        self.seats_left = None if self.event.capacity is None else seats_left(self.event)
        levels = [level for level in self.event.fee_levels.all() if level.is_active]
        levels.sort(key=lambda level: (level.weight, level.pk))
        self.levels = {str(level.pk): level for level in levels}
        self.fields["fee_level"].choices = [
            (key, _fee_label(level, self.event.currency)) for key, level in self.levels.items()
        ]
        default = next((k for k, level in self.levels.items() if level.is_default), None)
        if self.levels:
            self.initial.setdefault("fee_level", default or next(iter(self.levels)))
        if not self.levels:
            del self.fields["fee_level"]
        most = config["max_attendees"]
        self.fields["seats"].choices = [(n, str(n)) for n in range(1, most + 1)]
        if most == 1:
            self.fields["seats"].widget = forms.HiddenInput()
        self.initial.setdefault("seats", 1)
        self.guest_numbers = list(range(2, most + 1))
        for n in self.guest_numbers:
            self.fields[f"guest_{n}_first_name"] = forms.CharField(
                label=_("Person %(n)d: first name") % {"n": n}, max_length=100, required=False
            )
            self.fields[f"guest_{n}_last_name"] = forms.CharField(
                label=_("Person %(n)d: last name") % {"n": n}, max_length=100, required=False
            )
            self.fields[f"guest_{n}_email"] = forms.EmailField(
                label=_("Person %(n)d: email (optional)") % {"n": n}, max_length=254, required=False
            )
        self.questions = [q for q in self.event.questions.all() if q.field.is_active]
        for question in self.questions:
            self.fields[f"q_{question.field.name}"] = question_field(question, required=True)
        for n in self.guest_numbers:
            for question in self.questions:
                field = question_field(question, required=False)
                field.label = _("Person %(n)d: %(label)s") % {"n": n, "label": field.label}
                self.fields[f"guest_{n}_q_{question.field.name}"] = field
        self.offer_payment_methods()
        if not any(level.amount for level in self.levels.values()):
            del self.fields["payment_method"]  # nothing to pay
        self.add_consent_fields()

    def question_fields(self):
        return [self[f"q_{q.field.name}"] for q in self.questions]

    def guest_rows(self):
        return [
            [
                self[f"guest_{n}_first_name"],
                self[f"guest_{n}_last_name"],
                self[f"guest_{n}_email"],
                *(self[f"guest_{n}_q_{q.field.name}"] for q in self.questions),
            ]
            for n in self.guest_numbers
        ]

    def _answers(self, cleaned, prefix):
        answers = {}
        for question in self.questions:
            name = f"{prefix}q_{question.field.name}"
            value = cleaned.get(name)
            if value in (None, "", []):
                if prefix and question.is_required:
                    self.add_error(name, _("This question must be answered."))
                continue
            answers[question.field.name] = value
        return answers

    def clean(self):
        cleaned = super().clean()
        level = self.levels.get(cleaned.get("fee_level") or "") if self.levels else None
        cleaned["level"] = level
        seats = cleaned.get("seats") or 1
        cleaned["answers"] = self._answers(cleaned, "")
        guests = []
        # One email is one contact, who can hold one seat: say so here, on the
        # field, rather than have the booking refused as a whole.
        emails = {(cleaned.get("email") or "").lower()}
        for n in self.guest_numbers:
            first = cleaned.get(f"guest_{n}_first_name", "")
            last = cleaned.get(f"guest_{n}_last_name", "")
            email = cleaned.get(f"guest_{n}_email", "")
            if n <= seats:
                if not (first or last):
                    self.add_error(f"guest_{n}_first_name", _("Give this person's name."))
                if email and email.lower() in emails:
                    self.add_error(
                        f"guest_{n}_email",
                        _("Give each person their own email address, or leave it empty."),
                    )
                emails.add(email.lower())
                guests.append(
                    {
                        "first_name": first,
                        "last_name": last,
                        "email": email,
                        "answers": self._answers(cleaned, f"guest_{n}_"),
                    }
                )
        cleaned["guests"] = guests
        return cleaned


def question_field(question, *, required):
    """The form field asking an event's custom question; the core validates the answer."""
    from crm_core.models import FieldType

    custom = question.field
    required = required and question.is_required
    options = {"label": custom.label, "required": required, "help_text": custom.help_text}
    kind = custom.field_type
    if kind in (FieldType.NUMBER, FieldType.MONEY):
        return forms.DecimalField(
            max_digits=18, decimal_places=2 if kind == FieldType.MONEY else 4, **options
        )
    if kind == FieldType.DATE:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **options)
    if kind == FieldType.BOOLEAN:
        return forms.BooleanField(**options)
    if kind == FieldType.CHOICE:
        choices = [("", _("Choose…")), *((c, c) for c in custom.choices)]
        return forms.ChoiceField(choices=choices, **options)
    if kind == FieldType.MULTI_CHOICE:
        return forms.MultipleChoiceField(
            choices=[(c, c) for c in custom.choices], widget=forms.CheckboxSelectMultiple, **options
        )
    return forms.CharField(max_length=2000, **options)


def _fee_label(level, currency):
    if not level.amount:
        free = str(_("free"))
        return level.label if level.label.lower() == free else f"{level.label} ({free})"
    return f"{level.label}: {format_money(level.amount, currency)}"


class SignupForm(VisitorForm):
    email = forms.EmailField(
        label=_("Email address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    first_name = forms.CharField(
        label=_("First name (optional)"),
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    groups = forms.MultipleChoiceField(
        label=_("What would you like to hear about?"), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, config, **kwargs):
        from crm_core.models import Group

        super().__init__(*args, config=config, **kwargs)
        groups = Group.objects.in_bulk(config["groups"])
        self.fields["groups"].choices = [
            (str(pk), groups[pk].name) for pk in config["groups"] if pk in groups
        ]
        if len(self.fields["groups"].choices) == 1:
            self.initial.setdefault("groups", [self.fields["groups"].choices[0][0]])
        self.add_consent_fields()


class ContactMessageForm(VisitorForm, ContactFieldsMixin):
    message = forms.CharField(
        label=_("Your message"), max_length=5000, widget=forms.Textarea(attrs={"rows": 6})
    )

    field_order = ["first_name", "last_name", "email", "message"]

    def __init__(self, *args, config, **kwargs):
        super().__init__(*args, config=config, **kwargs)
        self.add_consent_fields()
