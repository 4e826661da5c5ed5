"""Smart groups: a criteria document compiled into one query over contacts.

Criteria are a JSON object. Every key is optional; an empty object matches
every contact. Contacts in the trash never match. Conditions combine with AND,
or with OR when ``"match": "any"``. Ids refer to rows that must exist.

=========================  ==================================================
key                        matches contacts...
=========================  ==================================================
``match``                  ``"all"`` (default) or ``"any"``: how the other
                           conditions combine
``kinds``                  whose kind is one of these (``individual``,
                           ``organization``, ``household``)
``name_contains``          whose display name contains this text (any case)
``email_contains``         with an email address containing this text
``city``                   with an address in this city (any case)
``postcode``               with a postal code starting with this (spaces and
                           case ignored: ``"sw1"`` finds ``SW1A 1AA``)
``countries``              with an address in one of these ISO 3166 countries
``created_from`` / ``_to`` created on or after / on or before this date
``in_groups``              currently in at least one of these static groups
``not_in_groups``          currently in none of these static groups
``tags``                   with at least one of these tags
``custom_fields``          list of ``{"field": id, "value": v}``: whose value of
                           each field equals ``v`` (checked against the field's
                           type; a multiple choice compares the whole set)
``membership_types``       with a membership of one of these types
``membership_statuses``    with a membership in one of these statuses; with
                           ``membership_types``, the same membership matches both
``events``                 registered for or attended one of these events
``attended_from`` / ``_to`` who attended (checked in at) any event starting
                           in this date range
``giving_from`` / ``_to``  date range of the gifts the next two keys add up
                           (default: all time)
``total_given_min`` /      whose gifts in that range add up to at least / at
``total_given_max``        most this amount, in ``giving_currency`` (required
                           with them: amounts in different currencies are
                           never added); no gifts counts as 0
``last_gift_before``       whose last gift was before this date (and who gave)
``last_gift_after``        who gave on or after this date
``gave_in_year``           who gave in this (reporting) year
``not_gave_in_year``       who did not give in this (reporting) year
=========================  ==================================================

Dates are ``YYYY-MM-DD`` in the site's time zone, ranges include both ends.
A gift is a completed or partially refunded contribution, counted at what
was kept (see ``crm_core.selectors.reports``). Years follow
``CRM["FISCAL_YEAR_START_MONTH"]``, as the LYBUNT report does: ``gave_in_year``
2025 with ``not_gave_in_year`` 2026 is "last year but not this year".

``validate_criteria`` checks a document and returns it normalised (ids
sorted, amounts as text); it raises ``ValidationError`` keyed by criterion
with a message naming what is wrong, never anything else. ``segment_contacts``
validates and returns a ``Contact`` queryset: one SQL query with ``EXISTS``
and scalar subqueries, whatever the number of contacts.
"""

import datetime
import json
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db.models import DecimalField, Exists, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from django.utils.translation import gettext as _
from django_countries import countries

from ..conf import crm_setting
from ..models import (
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    CustomField,
    CustomFieldValue,
    Event,
    Group,
    GroupMembership,
    Membership,
    MembershipStatus,
    MembershipType,
    Participant,
    ParticipantStatus,
    Tag,
)
from ..models.contributions import AMOUNT
from ..money import MAX_AMOUNT, validate_currency
from .contributions import KEPT_AMOUNT
from .reports import _start_of_day, gifts

MATCH_MODES = ("all", "any")
# Bounds that keep a saved search a search, not a denial of service.
MAX_TEXT = 200
MAX_IDS = 100
MAX_CUSTOM_FIELDS = 10
MAX_JSON_LENGTH = 20_000
MIN_YEAR, MAX_YEAR = 1900, 2200
MAX_ID = 2**31 - 1

# Participant statuses that count as having taken part in an event.
TOOK_PART = (ParticipantStatus.REGISTERED, ParticipantStatus.ATTENDED)

TEXT_KEYS = ("name_contains", "email_contains", "city", "postcode")
DATE_KEYS = (
    "created_from",
    "created_to",
    "attended_from",
    "attended_to",
    "giving_from",
    "giving_to",
    "last_gift_before",
    "last_gift_after",
)
YEAR_KEYS = ("gave_in_year", "not_gave_in_year")
AMOUNT_KEYS = ("total_given_min", "total_given_max")
# Lists of ids, with the model the ids are of.
ID_KEYS = {
    "in_groups": Group,
    "not_in_groups": Group,
    "tags": Tag,
    "membership_types": MembershipType,
    "events": Event,
}
CHOICE_KEYS = {
    "kinds": ContactKind,
    "membership_statuses": MembershipStatus,
}
KNOWN_KEYS = frozenset(
    {
        "match",
        "countries",
        "custom_fields",
        "giving_currency",
        *TEXT_KEYS,
        *DATE_KEYS,
        *YEAR_KEYS,
        *AMOUNT_KEYS,
        *ID_KEYS,
        *CHOICE_KEYS,
    }
)


class _Errors:
    """Collects messages per criterion so one response lists every problem."""

    def __init__(self):
        self.by_key = {}

    def add(self, key, message):
        self.by_key.setdefault(key, []).append(message)

    def raise_if_any(self):
        if self.by_key:
            raise ValidationError(self.by_key)


def _text(value, key, errors):
    if not isinstance(value, str):
        errors.add(key, _("Expected text."))
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_TEXT or "\x00" in value:
        errors.add(key, _("At most %(n)d characters of text.") % {"n": MAX_TEXT})
        return None
    return value


def _date(value, key, errors):
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        day = value
    elif isinstance(value, str):
        try:
            day = datetime.date.fromisoformat(value.strip())
        except ValueError:
            errors.add(key, _("Expected a date as YYYY-MM-DD."))
            return None
    else:
        errors.add(key, _("Expected a date as YYYY-MM-DD."))
        return None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        errors.add(key, _("Give a date between %(a)d and %(b)d.") % {"a": MIN_YEAR, "b": MAX_YEAR})
        return None
    return day


def _year(value, key, errors):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(key, _("Expected a year such as 2025."))
        return None
    if not MIN_YEAR <= value <= MAX_YEAR:
        errors.add(key, _("Give a year between %(a)d and %(b)d.") % {"a": MIN_YEAR, "b": MAX_YEAR})
        return None
    return value


def _amount(value, key, errors):
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        errors.add(key, _("Expected an amount such as 100.00."))
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        errors.add(key, _("Expected an amount such as 100.00."))
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        errors.add(key, _("Give an amount between 0 and %(max)s.") % {"max": MAX_AMOUNT})
        return None
    if amount != amount.quantize(Decimal("0.001")):
        errors.add(key, _("At most three decimal places."))
        return None
    return amount


def _list(value, key, errors, limit=MAX_IDS):
    if not isinstance(value, (list, tuple)):
        errors.add(key, _("Expected a list."))
        return None
    if len(value) > limit:
        errors.add(key, _("At most %(n)d items.") % {"n": limit})
        return None
    return list(value)


def _ids(value, key, errors):
    items = _list(value, key, errors)
    if items is None:
        return None
    ids = set()
    for item in items:
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item.strip())
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= MAX_ID:
            errors.add(key, _("Expected a list of ids (whole numbers)."))
            return None
        ids.add(item)
    return sorted(ids) or None


def _choices(value, key, choices, errors):
    items = _list(value, key, errors)
    if items is None:
        return None
    allowed = set(choices.values)
    unknown = [str(item)[:50] for item in items if not isinstance(item, str) or item not in allowed]
    if unknown:
        errors.add(
            key,
            _("Unknown value %(value)s; choose from: %(choices)s.")
            % {"value": ", ".join(unknown[:5]), "choices": ", ".join(sorted(allowed))},
        )
        return None
    return sorted(set(items)) or None


def _countries(value, key, errors):
    items = _list(value, key, errors)
    if items is None:
        return None
    codes = set()
    for item in items:
        code = item.strip().upper() if isinstance(item, str) else None
        if not code or code not in countries:
            errors.add(key, _("%(value)s is not a country code.") % {"value": str(item)[:20]})
            return None
        codes.add(code)
    return sorted(codes) or None


def _check_exist(parsed, errors):
    """One query per kind of row named: every id must be of an existing row."""
    for key, model in ID_KEYS.items():
        ids = parsed.get(key)
        if not ids:
            continue
        found = set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
        missing = [str(pk) for pk in ids if pk not in found]
        if missing:
            errors.add(
                key,
                _("No %(model)s with id %(ids)s.")
                % {"model": model._meta.verbose_name, "ids": ", ".join(missing[:10])},
            )


def _custom_fields(value, errors):
    key = "custom_fields"
    items = _list(value, key, errors, limit=MAX_CUSTOM_FIELDS)
    if items is None:
        return None
    wanted = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"field", "value"} or "field" not in item:
            errors.add(key, _('Each condition is {"field": id, "value": value}.'))
            return None
        field_id = item["field"]
        if (
            isinstance(field_id, bool)
            or not isinstance(field_id, int)
            or not 0 < field_id <= MAX_ID
        ):
            errors.add(key, _("Expected the id of a custom field."))
            return None
        wanted.append((field_id, item.get("value")))
    if not wanted:
        return None
    fields = CustomField.objects.in_bulk([field_id for field_id, _value in wanted])
    conditions = []
    for field_id, raw in wanted:
        field = fields.get(field_id)
        if field is None:
            errors.add(key, _("No custom field with id %(id)s.") % {"id": field_id})
            continue
        if raw is None or raw == "" or raw == []:
            errors.add(key, _("Give a value for %(label)s.") % {"label": field.label})
            continue
        try:
            # A search value is never "required"; to_python only checks the type.
            field.is_required = False
            value = field.to_python(raw)
        except ValidationError as exc:
            errors.add(key, f"{field.label}: {' '.join(exc.messages)}")
            continue
        conditions.append((field, value))
    return conditions or None


def _parse(criteria):
    """Check ``criteria``; return the values in Python types, keyed by criterion."""
    errors = _Errors()
    if criteria is None:
        criteria = {}
    if not isinstance(criteria, dict):
        raise ValidationError({"criteria": [_("Criteria must be a JSON object.")]})
    try:
        size = len(json.dumps(criteria, default=str))
    except (TypeError, ValueError, RecursionError):
        raise ValidationError({"criteria": [_("Criteria must be plain JSON.")]}) from None
    if size > MAX_JSON_LENGTH:
        raise ValidationError({"criteria": [_("These criteria are too long.")]})
    unknown = sorted(str(key)[:50] for key in criteria if key not in KNOWN_KEYS)
    if unknown:
        raise ValidationError(
            {"criteria": [_("Unknown criteria: %(keys)s.") % {"keys": ", ".join(unknown)}]}
        )

    parsed = {}
    for key, value in criteria.items():
        if value is None:
            continue
        if key == "match":
            if value not in MATCH_MODES:
                errors.add(key, _('Expected "all" or "any".'))
            else:
                parsed[key] = value
            continue
        if key in TEXT_KEYS:
            result = _text(value, key, errors)
        elif key in DATE_KEYS:
            result = _date(value, key, errors)
        elif key in YEAR_KEYS:
            result = _year(value, key, errors)
        elif key in AMOUNT_KEYS:
            result = _amount(value, key, errors)
        elif key in ID_KEYS:
            result = _ids(value, key, errors)
        elif key in CHOICE_KEYS:
            result = _choices(value, key, CHOICE_KEYS[key], errors)
        elif key == "countries":
            result = _countries(value, key, errors)
        elif key == "giving_currency":
            if value == "":
                continue
            try:
                result = validate_currency(value)
            except ValidationError as exc:
                errors.add(key, " ".join(exc.messages))
                continue
        else:  # custom_fields: needs the fields' types, checked below
            continue
        if result is not None:
            parsed[key] = result

    for start, end in (
        ("created_from", "created_to"),
        ("attended_from", "attended_to"),
        ("giving_from", "giving_to"),
    ):
        if start in parsed and end in parsed and parsed[end] < parsed[start]:
            errors.add(end, _("This date is before the start of the range."))
    if (
        "total_given_min" in parsed
        and "total_given_max" in parsed
        and parsed["total_given_max"] < parsed["total_given_min"]
    ):
        errors.add("total_given_max", _("The most is less than the least."))
    if any(key in parsed for key in AMOUNT_KEYS) and "giving_currency" not in parsed:
        errors.add(
            "giving_currency", _("Give the currency: amounts in different currencies differ.")
        )
    if "gave_in_year" in parsed and parsed.get("not_gave_in_year") == parsed["gave_in_year"]:
        errors.add("not_gave_in_year", _("Choose a different year from the year given."))

    if criteria.get("custom_fields") is not None:
        conditions = _custom_fields(criteria["custom_fields"], errors)
        if conditions:
            parsed["custom_fields"] = conditions
    _check_exist(parsed, errors)
    errors.raise_if_any()
    return parsed


def _json_value(value):
    if isinstance(value, (datetime.date, Decimal)):
        return str(value)
    return value


def validate_criteria(criteria, *, field_name=None):
    """Check ``criteria`` and return them normalised, ready to store as JSON.

    Raises ``ValidationError`` keyed by criterion (``"criteria"`` for the
    document as a whole); with ``field_name``, every message is under that
    one key instead, prefixed with the criterion it is about.
    """
    try:
        parsed = _parse(criteria)
    except ValidationError as exc:
        if field_name is None:
            raise
        messages = [
            message if key == "criteria" else f"{key}: {message}"
            for key, key_messages in exc.message_dict.items()
            for message in key_messages
        ]
        raise ValidationError({field_name: messages}) from None
    normalised = {}
    for key, value in parsed.items():
        if key == "custom_fields":
            value = [{"field": field.pk, "value": _json_value(v)} for field, v in value]
        normalised[key] = _json_value(value)
    return normalised


def _day_range(start, end):
    """Aware bounds (start inclusive, end exclusive) of dates both included."""
    bounds = {}
    if start:
        bounds["gte"] = _start_of_day(start)
    if end:
        bounds["lt"] = _start_of_day(end + datetime.timedelta(days=1))
    return bounds


def _year_bounds(year):
    month = crm_setting("FISCAL_YEAR_START_MONTH")
    return {
        "received_at__gte": _start_of_day(datetime.date(year, month, 1)),
        "received_at__lt": _start_of_day(datetime.date(year + 1, month, 1)),
    }


def _custom_field_condition(field, value):
    column = CustomFieldValue.COLUMN_BY_TYPE[field.field_type]
    # A multiple choice is stored sorted in the field's choice order, as
    # to_python returns it, so equal sets are equal JSON.
    rows = CustomFieldValue.objects.filter(contact=OuterRef("pk"), field=field)
    return Exists(rows.filter(**{column: value}))


def _conditions(parsed):
    """One ``Q`` per criterion, each over the outer contact."""
    conditions = []
    contact = OuterRef("pk")

    if "kinds" in parsed:
        conditions.append(Q(kind__in=parsed["kinds"]))
    if "name_contains" in parsed:
        conditions.append(Q(display_name__icontains=parsed["name_contains"]))
    if "email_contains" in parsed:
        conditions.append(
            Q(
                Exists(
                    ContactEmail.objects.filter(
                        contact=contact,
                        email_normalized__contains=parsed["email_contains"].lower(),
                    )
                )
            )
        )
    if "city" in parsed:
        conditions.append(
            Q(Exists(ContactAddress.objects.filter(contact=contact, city__iexact=parsed["city"])))
        )
    if "postcode" in parsed:
        prefix = "".join(parsed["postcode"].split()).upper()
        conditions.append(
            Q(
                Exists(
                    ContactAddress.objects.filter(
                        contact=contact, postal_code_normalized__startswith=prefix
                    )
                )
            )
        )
    if "countries" in parsed:
        conditions.append(
            Q(
                Exists(
                    ContactAddress.objects.filter(contact=contact, country__in=parsed["countries"])
                )
            )
        )
    created = _day_range(parsed.get("created_from"), parsed.get("created_to"))
    if created:
        conditions.append(Q(**{f"created_at__{op}": bound for op, bound in created.items()}))

    current_members = GroupMembership.objects.filter(contact=contact, left_at__isnull=True)
    if "in_groups" in parsed:
        conditions.append(Q(Exists(current_members.filter(group_id__in=parsed["in_groups"]))))
    if "not_in_groups" in parsed:
        conditions.append(~Q(Exists(current_members.filter(group_id__in=parsed["not_in_groups"]))))
    if "tags" in parsed:
        tagged = Contact.tags.through.objects.filter(contact_id=contact, tag_id__in=parsed["tags"])
        conditions.append(Q(Exists(tagged)))
    for field, value in parsed.get("custom_fields", ()):
        conditions.append(Q(_custom_field_condition(field, value)))

    if "membership_types" in parsed or "membership_statuses" in parsed:
        memberships = Membership.objects.filter(contact=contact)
        if "membership_types" in parsed:
            memberships = memberships.filter(membership_type_id__in=parsed["membership_types"])
        if "membership_statuses" in parsed:
            memberships = memberships.filter(status__in=parsed["membership_statuses"])
        conditions.append(Q(Exists(memberships)))

    if "events" in parsed:
        took_part = Participant.objects.filter(
            contact=contact, event_id__in=parsed["events"], status__in=TOOK_PART
        )
        conditions.append(Q(Exists(took_part)))
    attended = _day_range(parsed.get("attended_from"), parsed.get("attended_to"))
    if attended:
        conditions.append(
            Q(
                Exists(
                    Participant.objects.filter(
                        contact=contact,
                        status=ParticipantStatus.ATTENDED,
                        **{f"event__starts_at__{op}": bound for op, bound in attended.items()},
                    )
                )
            )
        )

    given = gifts().filter(contact=contact)
    if any(key in parsed for key in AMOUNT_KEYS):
        in_range = gifts(
            date_from=parsed.get("giving_from"),
            date_to=parsed.get("giving_to"),
            currency=parsed["giving_currency"],
        ).filter(contact=contact)
        total = Coalesce(
            Subquery(
                in_range.order_by()
                .values("contact")
                .annotate(total=Sum(KEPT_AMOUNT, output_field=DecimalField(**AMOUNT)))
                .values("total")[:1]
            ),
            Value(Decimal(0)),
            output_field=DecimalField(**AMOUNT),
        )
        amount = DecimalField(**AMOUNT)
        if "total_given_min" in parsed:
            least = Value(parsed["total_given_min"], output_field=amount)
            conditions.append(Q(GreaterThanOrEqual(total, least)))
        if "total_given_max" in parsed:
            most = Value(parsed["total_given_max"], output_field=amount)
            conditions.append(Q(LessThanOrEqual(total, most)))
    if "last_gift_before" in parsed:
        since = _start_of_day(parsed["last_gift_before"])
        conditions.append(Q(Exists(given)) & ~Q(Exists(given.filter(received_at__gte=since))))
    if "last_gift_after" in parsed:
        since = _start_of_day(parsed["last_gift_after"])
        conditions.append(Q(Exists(given.filter(received_at__gte=since))))
    if "gave_in_year" in parsed:
        conditions.append(Q(Exists(given.filter(**_year_bounds(parsed["gave_in_year"])))))
    if "not_gave_in_year" in parsed:
        conditions.append(~Q(Exists(given.filter(**_year_bounds(parsed["not_gave_in_year"])))))
    return conditions


def segment_contacts(criteria):
    """Contacts (never those in the trash) matching ``criteria``, as one queryset.

    Raises ``ValidationError`` for criteria that ``validate_criteria`` refuses,
    such as ids of rows deleted since the criteria were saved. Checking runs a
    few small queries (one per kind of row named); the contacts themselves
    come from a single query, built from ``EXISTS`` and scalar subqueries.
    """
    parsed = _parse(criteria)
    conditions = _conditions(parsed)
    queryset = Contact.objects.all()
    if not conditions:
        return queryset
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = (combined | condition) if parsed.get("match") == "any" else combined & condition
    return queryset.filter(combined)
