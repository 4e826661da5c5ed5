"""Form kinds: a registry keyed by slug.

A kind knows how to check what an editor configured (``clean_config``, used
by the Wagtail blocks so editors cannot save what the core would refuse), how
to build its Django form for a visitor, and which service takes a valid
submission: donation, membership (join), event registration, newsletter
signup and contact message.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from crm_core.models import Campaign, FinancialType
from crm_core.money import parse_amount, validate_currency
from crm_core.sanitize import has_markup, rich_text
from crm_payments.providers import all_providers

FREQUENCIES = {"one_off": None, "monthly": "month", "annual": "year"}
MAX_COVER_FEES_PERCENT = Decimal("10")
MAX_SUGGESTED_AMOUNTS = 8


class FormKind:
    """A kind of form. Subclasses give ``slug``, ``label``, ``clean_config`` and
    the dotted paths of their Django form class and submission service."""

    slug = ""
    label = ""
    form_class = ""  # e.g. "crm_forms.forms.DonationForm"
    service = ""  # e.g. "crm_forms.services.donations.submit_donation"

    def clean_config(self, config):
        raise NotImplementedError

    def build_form(self, request, config, *, data=None):
        from .identity import identify, stranger_prefill

        visitor = identify(request)
        initial = {} if visitor else stranger_prefill(request)
        form_class = import_string(self.form_class)
        return form_class(data=data, config=config, visitor=visitor, initial=initial)

    def submit(self, request, form, placement, config):
        return import_string(self.service)(request, form, placement, config)


def _check_is_dict(config):
    if not isinstance(config, dict):
        raise ValidationError(_("The form's settings are missing."))


def _provider_ids():
    return {provider.identifier: provider for provider in all_providers()}


def _refuse_markup(errors, name):
    # Labels are shown as typed (escaped) but stored as plain text: a consent
    # record or contribution line would not hold the words the visitor read.
    errors.setdefault(name, []).append(
        _("Write plain text: what looks like HTML (<b>, <your name>) is not allowed.")
    )


def _clean_common(config, errors):
    if has_markup(config.get("title")):
        _refuse_markup(errors, "title")
    cleaned = {
        "title": str(config.get("title") or "")[:255],
        "intro": rich_text(str(config.get("intro") or "")),
        "thank_you": rich_text(str(config.get("thank_you") or "")),
        "consent": [],
    }
    for item in config.get("consent") or []:
        if not isinstance(item, dict) or not str(item.get("wording") or "").strip():
            errors.setdefault("consent", []).append(_("Each consent needs its wording."))
            continue
        if has_markup(item["wording"]):
            _refuse_markup(errors, "consent")
            continue
        cleaned["consent"].append(
            {
                "purpose": str(item.get("purpose") or "newsletter")[:64],
                "channel": str(item.get("channel") or "email")[:10],
                "wording": str(item["wording"]).strip()[:2000],
                "required": bool(item.get("required")),
            }
        )
    providers = _provider_ids()
    methods = [m for m in config.get("payment_methods") or [] if isinstance(m, str)]
    unknown = [m for m in methods if m not in providers]
    if not methods:
        errors.setdefault("payment_methods", []).append(_("Offer at least one way to pay."))
    elif unknown:
        errors.setdefault("payment_methods", []).append(
            _("Unknown payment method: %(names)s.") % {"names": ", ".join(unknown)[:100]}
        )
    cleaned["payment_methods"] = [m for m in methods if m in providers]
    return cleaned


class DonationKind(FormKind):
    slug = "donation"
    label = _("Donation")
    form_class = "crm_forms.forms.DonationForm"
    service = "crm_forms.services.donations.submit_donation"

    def clean_config(self, config):
        _check_is_dict(config)
        errors = {}
        cleaned = _clean_common(config, errors)
        try:
            currency = validate_currency(config.get("currency") or "")
        except ValidationError as error:
            raise ValidationError({"currency": error.messages}) from None
        cleaned["currency"] = currency

        def amount(name, value, *, required=True):
            if value in (None, "") and not required:
                return None
            try:
                return parse_amount(value if value is not None else "", currency)
            except ValidationError as error:
                errors.setdefault(name, []).extend(error.messages)
                return None

        low = amount("min_amount", config.get("min_amount"))
        high = amount("max_amount", config.get("max_amount"))
        if low is not None and high is not None and low > high:
            errors.setdefault("max_amount", []).append(
                _("The largest amount must not be below the smallest.")
            )
        cleaned["min_amount"], cleaned["max_amount"] = low, high
        suggested = []
        raw_amounts = config.get("amounts") or []
        if len(raw_amounts) > MAX_SUGGESTED_AMOUNTS:
            errors.setdefault("amounts", []).append(
                _("Suggest at most %(n)d amounts.") % {"n": MAX_SUGGESTED_AMOUNTS}
            )
        for item in raw_amounts[:MAX_SUGGESTED_AMOUNTS]:
            item = item if isinstance(item, dict) else {"amount": item}
            value = amount("amounts", item.get("amount"))
            if value is None:
                continue
            if has_markup(item.get("label")):
                _refuse_markup(errors, "amounts")
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                errors.setdefault("amounts", []).append(
                    _("Suggested amount %(amount)s is outside the smallest and largest amounts.")
                    % {"amount": value}
                )
                continue
            suggested.append({"amount": value, "label": str(item.get("label") or "")[:100]})
        cleaned["amounts"] = suggested
        cleaned["allow_custom_amount"] = bool(config.get("allow_custom_amount"))
        if not suggested and not cleaned["allow_custom_amount"]:
            errors.setdefault("amounts", []).append(
                _("Suggest at least one amount or let donors choose their own.")
            )
        fund = FinancialType.objects.filter(pk=_int(config.get("financial_type")), is_active=True)
        cleaned["financial_type"] = fund.values_list("pk", flat=True).first()
        if cleaned["financial_type"] is None:
            errors.setdefault("financial_type", []).append(_("Choose an active fund."))
        campaign = config.get("campaign")
        cleaned["campaign"] = None
        if campaign not in (None, ""):
            cleaned["campaign"] = (
                Campaign.objects.filter(pk=_int(campaign)).values_list("pk", flat=True).first()
            )
            if cleaned["campaign"] is None:
                errors.setdefault("campaign", []).append(_("This campaign does not exist."))
        frequencies = [f for f in config.get("frequencies") or [] if f in FREQUENCIES]
        if not frequencies:
            errors.setdefault("frequencies", []).append(_("Offer at least one frequency."))
        cleaned["frequencies"] = frequencies
        providers = _provider_ids()
        recurring = [f for f in frequencies if FREQUENCIES[f]]
        if recurring and not any(
            providers[m].supports_recurring for m in cleaned["payment_methods"]
        ):
            errors.setdefault("frequencies", []).append(
                _("Monthly and annual gifts need a payment method that takes standing orders.")
            )
        cleaned["allow_tribute"] = bool(config.get("allow_tribute"))
        cover = config.get("cover_fees_percent")
        cleaned["cover_fees_percent"] = None
        if cover not in (None, ""):
            try:
                cover = Decimal(str(cover))
                if not (cover.is_finite() and 0 < cover <= MAX_COVER_FEES_PERCENT):
                    raise ValueError
                cleaned["cover_fees_percent"] = cover
            except (ValueError, ArithmeticError):
                errors.setdefault("cover_fees_percent", []).append(
                    _("Give a percentage above 0 and at most %(max)s.")
                    % {"max": MAX_COVER_FEES_PERCENT}
                )
        if errors:
            raise ValidationError(errors)
        return cleaned


class MembershipKind(FormKind):
    """Joining as a member (renewals come through the signed renewal link)."""

    slug = "membership"
    label = _("Membership")
    form_class = "crm_forms.forms.MembershipForm"
    service = "crm_forms.services.memberships.submit_membership"

    def clean_config(self, config):
        from crm_core.models import MembershipType

        _check_is_dict(config)
        errors = {}
        cleaned = _clean_common(config, errors)
        wanted = [_int(pk) for pk in config.get("membership_types") or []]
        offered = MembershipType.objects.filter(
            pk__in=[pk for pk in wanted if pk is not None], is_active=True
        ).in_bulk()
        # A type deactivated since the page was published is no longer
        # offered; the form keeps working with the others.
        cleaned["membership_types"] = [pk for pk in wanted if pk in offered]
        if not cleaned["membership_types"]:
            errors.setdefault("membership_types", []).append(
                _("Offer at least one active membership type.")
            )
        cleaned["organisation_relationship"] = None
        if config.get("allow_organisation"):
            cleaned["organisation_relationship"] = _organisation_relationship(
                config.get("organisation_relationship"), errors
            )
        providers = _provider_ids()
        auto = [t for t in offered.values() if t.auto_renew == "required"]
        if auto and not any(providers[m].supports_recurring for m in cleaned["payment_methods"]):
            errors.setdefault("payment_methods", []).append(
                _("%(type)s must renew automatically: offer a payment method that does.")
                % {"type": auto[0].name}
            )
        if errors:
            raise ValidationError(errors)
        return cleaned


class EventRegistrationKind(FormKind):
    """Registering one or several people for an event (waitlist when full)."""

    slug = "event_registration"
    label = _("Event registration")
    form_class = "crm_forms.forms.EventRegistrationForm"
    service = "crm_forms.services.events.submit_registration"

    def clean_config(self, config):
        from crm_core.models import Event

        _check_is_dict(config)
        errors = {}
        cleaned = _clean_common(config, errors)
        event = Event.objects.filter(pk=_int(config.get("event"))).first()
        cleaned["event"] = event.pk if event else None
        if event is None:
            errors.setdefault("event", []).append(_("Choose an event."))
        most = _int(config.get("max_attendees")) or 1
        if most < 1 or (event and most > event.max_seats_per_registration):
            errors.setdefault("max_attendees", []).append(
                _("From 1 to the event's %(n)s seats per registration.")
                % {"n": event.max_seats_per_registration if event else 1}
            )
        cleaned["max_attendees"] = most
        if errors:
            raise ValidationError(errors)
        return cleaned


class SignupKind(FormKind):
    """Newsletter signup: the groups a visitor chooses, joined after an email link."""

    slug = "signup"
    label = _("Newsletter signup")
    form_class = "crm_forms.forms.SignupForm"
    service = "crm_forms.services.signups.submit_signup"

    def clean_config(self, config):
        from crm_core.models import Group

        _check_is_dict(config)
        errors = {}
        cleaned = _clean_common({**config, "payment_methods": ["offline"]}, errors)
        cleaned.pop("payment_methods")
        wanted = [_int(pk) for pk in config.get("groups") or []]
        # A group deactivated since the page was published is no longer
        # offered (joining it would be refused); the others still are.
        found = set(
            Group.objects.filter(pk__in=[pk for pk in wanted if pk], is_active=True).values_list(
                "pk", flat=True
            )
        )
        cleaned["groups"] = [pk for pk in wanted if pk in found]
        if not cleaned["groups"]:
            errors.setdefault("groups", []).append(_("Offer at least one active group."))
        cleaned["double_opt_in"] = bool(config.get("double_opt_in", True))
        if errors:
            raise ValidationError(errors)
        return cleaned


class ContactKind(FormKind):
    """Contact us / lead capture: a message on the contact's timeline for a staff member."""

    slug = "contact"
    label = _("Contact form")
    form_class = "crm_forms.forms.ContactMessageForm"
    service = "crm_forms.services.leads.submit_message"

    def clean_config(self, config):
        from django.contrib.auth import get_user_model

        _check_is_dict(config)
        errors = {}
        cleaned = _clean_common({**config, "payment_methods": ["offline"]}, errors)
        cleaned.pop("payment_methods")
        assignee = _int(config.get("assignee"))
        cleaned["assignee"] = None
        if assignee is not None:
            user = get_user_model().objects.filter(pk=assignee, is_active=True, is_staff=True)
            cleaned["assignee"] = user.values_list("pk", flat=True).first()
            if cleaned["assignee"] is None:
                errors.setdefault("assignee", []).append(_("Choose an active staff member."))
        emails = [str(e).strip() for e in config.get("notify_emails") or [] if str(e).strip()]
        from django.core.validators import validate_email

        for email in emails:
            try:
                validate_email(email)
            except ValidationError:
                errors.setdefault("notify_emails", []).append(
                    _("%(email)s is not an email address.") % {"email": email[:100]}
                )
        cleaned["notify_emails"] = emails[:10]
        cleaned["subject"] = str(config.get("subject") or _("Message from the website"))[:200]
        if has_markup(cleaned["subject"]):
            _refuse_markup(errors, "subject")
        if errors:
            raise ValidationError(errors)
        return cleaned


def _organisation_relationship(pk, errors):
    """The relationship type (person to organisation) of someone joining for one."""
    from crm_core.models import RelationshipType

    kind = RelationshipType.objects.filter(pk=_int(pk), is_active=True).first()
    if kind is None or (kind.contact_kind_a, kind.contact_kind_b) not in (
        ("individual", "organization"),
        ("", "organization"),
        ("individual", ""),
        ("", ""),
    ):
        errors.setdefault("organisation_relationship", []).append(
            _("Choose how the person joining is related to the organisation (e.g. Employee of).")
        )
        return None
    return kind.pk


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


KINDS = {
    kind.slug: kind
    for kind in (
        DonationKind(),
        MembershipKind(),
        EventRegistrationKind(),
        SignupKind(),
        ContactKind(),
    )
}


def get_kind(slug):
    try:
        return KINDS[slug]
    except KeyError:
        raise ValidationError(_("Unknown form kind.")) from None
