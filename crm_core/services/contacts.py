"""Creating, changing, matching and trashing contacts.

These functions are the only writers of contacts and their emails, phones,
addresses, tags and custom values. Each runs in one transaction, validates
everything before writing anything, and appends a system activity naming
the actor, the source and the fields that changed.
"""

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_countries import countries

from ..bulk import bulk_insert, bulk_update
from ..conf import crm_setting
from ..models import (
    Activity,
    ActivityType,
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    ContactPhone,
    CustomField,
    CustomFieldValue,
    DuplicateStatus,
    LocationType,
    PhoneType,
    PossibleDuplicate,
    Tag,
)
from ..names import contact_names
from ..phones import normalize_phone
from ..sanitize import plain_text
from .activities import record_system_event, user_or_none

# Scalar contact fields the services accept, in the order forms show them.
CONTACT_FIELDS = (
    "kind",
    "prefix",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "nickname",
    "organization_name",
    "household_name",
    "job_title",
    "employer",
    "birth_date",
    "preferred_language",
    "preferred_channel",
    "do_not_email",
    "do_not_phone",
    "do_not_mail",
    "do_not_sms",
    "is_opt_out",
    "is_deceased",
    "deceased_date",
    "source",
    "external_id",
)
# Those that are plain text, with their longest length.
TEXT_FIELDS = {
    "prefix": 20,
    "first_name": 100,
    "middle_name": 100,
    "last_name": 100,
    "suffix": 20,
    "nickname": 100,
    "organization_name": 255,
    "household_name": 255,
    "job_title": 255,
    "source": 255,
}


def _clean_scalar_fields(fields):
    unknown = set(fields) - set(CONTACT_FIELDS)
    if unknown:
        raise ValidationError({name: [_("Unknown field.")] for name in sorted(unknown)})
    cleaned = {}
    errors = {}
    for name, value in fields.items():
        if name in TEXT_FIELDS:
            if value is not None and not isinstance(value, str):
                errors[name] = [_("Expected text.")]
                continue
            value = plain_text(value)
            if len(value) > TEXT_FIELDS[name]:
                errors[name] = [_("At most %(max)d characters.") % {"max": TEXT_FIELDS[name]}]
                continue
        elif name == "external_id":
            value = plain_text(value) or None
        cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def _validate_contact(contact, *, email_fallback="", check_external_id=True):
    """Full model validation plus the rules that span fields.

    ``check_external_id=False`` leaves out the query for another contact with
    the same external id, for callers that checked a whole batch at once.
    """
    errors = {}
    try:
        contact.full_clean(exclude=["employer", "created_by", "tags", "external_id"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if contact.kind == ContactKind.ORGANIZATION and not contact.organization_name:
        errors.setdefault("organization_name", []).append(_("An organization needs a name."))
    if contact.kind == ContactKind.HOUSEHOLD and not contact.household_name:
        errors.setdefault("household_name", []).append(_("A household needs a name."))
    if (
        contact.kind == ContactKind.INDIVIDUAL
        and not (contact.first_name or contact.last_name)
        and not email_fallback
    ):
        errors.setdefault("last_name", []).append(
            _("Give a first name, a last name or an email address.")
        )
    if contact.employer_id is not None:
        if contact.employer.kind != ContactKind.ORGANIZATION:
            errors.setdefault("employer", []).append(_("The employer must be an organization."))
        elif contact.employer.is_deleted:
            errors.setdefault("employer", []).append(_("The employer is in the trash."))
        elif contact.pk and contact.employer_id == contact.pk:
            errors.setdefault("employer", []).append(_("A contact cannot employ itself."))
    today = timezone.localdate()
    if contact.birth_date and not (date(1880, 1, 1) <= contact.birth_date <= today):
        errors.setdefault("birth_date", []).append(_("The birth date is out of range."))
    if contact.deceased_date:
        if contact.deceased_date > today:
            errors.setdefault("deceased_date", []).append(_("The date of death is in the future."))
        elif contact.birth_date and contact.deceased_date < contact.birth_date:
            errors.setdefault("deceased_date", []).append(_("The date of death is before birth."))
    if contact.external_id and check_external_id:
        clash = Contact.all_objects.filter(external_id=contact.external_id)
        if contact.pk:
            clash = clash.exclude(pk=contact.pk)
        if clash.exists():
            errors.setdefault("external_id", []).append(
                _("Another contact has this external identifier.")
            )
    if errors:
        raise ValidationError(errors)


def _derive_names(contact, *, email_fallback=""):
    contact.display_name, contact.sort_name, contact.name_key = contact_names(
        kind=contact.kind,
        first_name=contact.first_name,
        last_name=contact.last_name,
        organization_name=contact.organization_name,
        household_name=contact.household_name,
        fallback=email_fallback,
    )


# -- emails, phones, addresses ------------------------------------------------


def _row_error(kind, index, messages):
    return {kind: [_("Row %(n)d: %(msg)s") % {"n": index + 1, "msg": m} for m in messages]}


def _pick_primary(rows, kind):
    primaries = [row for row in rows if row.get("is_primary")]
    if len(primaries) > 1:
        raise ValidationError({kind: [_("Only one can be primary.")]})
    if rows and not primaries:
        rows[0]["is_primary"] = True
    return rows


def _as_row_dicts(items, kind, key):
    if items is None:
        return None
    if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
        raise ValidationError({kind: [_("Expected a list.")]})
    rows = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            item = {key: item}
        if not isinstance(item, dict):
            raise ValidationError(_row_error(kind, index, [_("Expected an object.")]))
        rows.append(dict(item))
    return rows


# Worked out once: ``Choices.values`` builds a new list on every access.
_LOCATIONS = tuple(LocationType.values)
_PHONE_TYPES = tuple(PhoneType.values)


def _clean_choice(row, name, choices, default, kind, index):
    value = row.get(name) or default
    if value not in choices:
        raise ValidationError(
            _row_error(
                kind,
                index,
                [
                    _("%(name)s must be one of %(choices)s.")
                    % {"name": name, "choices": ", ".join(choices)}
                ],
            )
        )
    return value


def clean_emails(items):
    """Validate a list of emails ("a@b.org" or {"email", "location", "is_primary",
    "on_hold"}) and return row dicts; duplicates (any case) are folded."""
    rows = _as_row_dicts(items, "emails", "email")
    if rows is None:
        return None
    cleaned, seen = [], set()
    for index, row in enumerate(rows):
        email = row.get("email")
        if not isinstance(email, str) or not email.strip():
            raise ValidationError(_row_error("emails", index, [_("Enter an email address.")]))
        email = email.strip()
        try:
            if len(email) > 254:
                raise ValidationError(_("At most 254 characters."))
            validate_email(email)
        except ValidationError as exc:
            raise ValidationError(_row_error("emails", index, exc.messages)) from None
        normalized = email.lower()
        if normalized in seen:
            continue
        seen.add(normalized)
        email_row = {
            "email": email,
            "email_normalized": normalized,
            "location": _clean_choice(
                row, "location", _LOCATIONS, LocationType.HOME, "emails", index
            ),
            "is_primary": bool(row.get("is_primary")),
        }
        if "on_hold" in row:
            # Left out, an existing address keeps its hold (set by bounces).
            email_row["on_hold"] = bool(row["on_hold"])
        cleaned.append(email_row)
    return _pick_primary(cleaned, "emails")


def clean_phones(items):
    """Validate phones ("020 7946 0000" or {"number", "extension", "phone_type",
    "location", "is_primary"}); numbers are stored in E.164."""
    rows = _as_row_dicts(items, "phones", "number")
    if rows is None:
        return None
    cleaned, seen = [], set()
    for index, row in enumerate(rows):
        try:
            number = normalize_phone(row.get("number"))
        except ValidationError as exc:
            raise ValidationError(_row_error("phones", index, exc.messages)) from None
        extension = plain_text(row.get("extension") or "")
        if len(extension) > 10 or not all(ch.isdigit() for ch in extension):
            raise ValidationError(
                _row_error("phones", index, [_("An extension is up to 10 digits.")])
            )
        if (number, extension) in seen:
            continue
        seen.add((number, extension))
        cleaned.append(
            {
                "number": number,
                "extension": extension,
                "phone_type": _clean_choice(
                    row, "phone_type", _PHONE_TYPES, PhoneType.MOBILE, "phones", index
                ),
                "location": _clean_choice(
                    row, "location", _LOCATIONS, LocationType.HOME, "phones", index
                ),
                "is_primary": bool(row.get("is_primary")),
            }
        )
    return _pick_primary(cleaned, "phones")


ADDRESS_TEXT_FIELDS = {
    "street_address": 255,
    "supplemental_address": 255,
    "city": 100,
    "region": 100,
    "postal_code": 20,
}


def normalize_postal_code(value):
    return "".join((value or "").split()).upper()


def clean_addresses(items):
    """Validate addresses; country is an ISO 3166-1 alpha-2 code."""
    rows = _as_row_dicts(items, "addresses", "street_address")
    if rows is None:
        return None
    cleaned = []
    for index, row in enumerate(rows):
        address = {}
        messages = []
        for name, limit in ADDRESS_TEXT_FIELDS.items():
            value = row.get(name)
            if value is not None and not isinstance(value, str):
                messages.append(_("%(name)s must be text.") % {"name": name})
                continue
            value = plain_text(value)
            if len(value) > limit:
                messages.append(
                    _("%(name)s has at most %(max)d characters.") % {"name": name, "max": limit}
                )
            address[name] = value
        country = row.get("country") or ""
        if not isinstance(country, str) or (country and country.upper() not in countries):
            messages.append(_("Country must be an ISO 3166 two-letter code."))
        else:
            address["country"] = country.upper()
        if messages:
            raise ValidationError(_row_error("addresses", index, messages))
        if not any(address.get(name) for name in ADDRESS_TEXT_FIELDS):
            raise ValidationError(_row_error("addresses", index, [_("The address is empty.")]))
        address["postal_code_normalized"] = normalize_postal_code(address["postal_code"])
        address["location"] = _clean_choice(
            row, "location", _LOCATIONS, LocationType.HOME, "addresses", index
        )
        address["is_primary"] = bool(row.get("is_primary"))
        cleaned.append(address)
    return _pick_primary(cleaned, "addresses")


def _email_summary(rows):
    return [row["email"] for row in rows]


def _replace_rows(contact, model, related_name, rows, identity):
    """Make ``contact``'s rows of ``model`` equal to ``rows``, keeping the ids
    (and fields not given, like on_hold) of rows whose identity is unchanged."""
    manager = getattr(contact, related_name)
    existing = {identity(obj): obj for obj in manager.all()}
    wanted = {}
    for row in rows:
        wanted[identity(row)] = row
    to_delete = [obj.pk for key, obj in existing.items() if key not in wanted]
    if to_delete:
        model.objects.filter(pk__in=to_delete).delete()
    # Clear the primary flag first so the one-primary constraint holds at every step.
    manager.filter(is_primary=True).exclude(pk__in=to_delete).update(is_primary=False)
    for key, row in wanted.items():
        obj = existing.get(key)
        if obj is None:
            model.objects.create(contact=contact, **row)
        else:
            for name, value in row.items():
                setattr(obj, name, value)
            obj.save()


def _email_identity(row):
    return row["email_normalized"] if isinstance(row, dict) else row.email_normalized


def _phone_identity(row):
    if isinstance(row, dict):
        return (row["number"], row["extension"])
    return (row.number, row.extension)


def _address_identity(row):
    names = (*ADDRESS_TEXT_FIELDS, "country")
    if isinstance(row, dict):
        return tuple(str(row.get(n, "")) for n in names)
    return tuple(str(getattr(row, n)) for n in names)


def _describe_rows(rows, kind):
    if kind == "emails":
        return sorted(r["email"] if isinstance(r, dict) else r.email for r in rows)
    if kind == "phones":
        return sorted(r["number"] if isinstance(r, dict) else r.number for r in rows)
    return sorted(", ".join(str(v) for v in _address_identity(r) if v) for r in rows)


# -- tags and custom fields ----------------------------------------------------


def _resolve_tags(tags):
    if tags is None:
        return None
    if isinstance(tags, (str, bytes)) or not hasattr(tags, "__iter__"):
        raise ValidationError({"tags": [_("Expected a list of tags.")]})
    resolved, wanted_slugs = [], []
    for tag in tags:
        if isinstance(tag, Tag):
            resolved.append(tag)
        elif isinstance(tag, str):
            wanted_slugs.append(tag)
        else:
            raise ValidationError({"tags": [_("Name tags by their slug.")]})
    found = {t.slug: t for t in Tag.objects.filter(slug__in=wanted_slugs)}
    missing = [slug for slug in wanted_slugs if slug not in found]
    if missing:
        raise ValidationError(
            {"tags": [_("Unknown tag: %(tags)s.") % {"tags": ", ".join(missing)}]}
        )
    return resolved + list(found.values())


def clean_custom_values(values, *, kind):
    """Validate ``{field name: value}`` against the active custom fields.

    Returns ``[(CustomField, python value or None)]``; errors are keyed
    ``custom_fields`` and name the field.
    """
    if values is None:
        return None
    if not isinstance(values, dict):
        raise ValidationError({"custom_fields": [_("Expected an object of field: value.")]})
    fields = {f.name: f for f in CustomField.objects.filter(name__in=list(values), is_active=True)}
    errors, cleaned = [], []
    for name, value in values.items():
        definition = fields.get(name)
        if definition is None:
            errors.append(_("%(name)s: unknown custom field.") % {"name": name})
            continue
        if definition.applies_to and definition.applies_to != kind:
            errors.append(_("%(name)s: does not apply to this kind of contact.") % {"name": name})
            continue
        if isinstance(value, str) and definition.field_type == "text":
            value = plain_text(value, multiline=True)
        try:
            cleaned.append((definition, definition.to_python(value)))
        except ValidationError as exc:
            errors.extend(f"{name}: {message}" for message in exc.messages)
    if errors:
        raise ValidationError({"custom_fields": errors})
    return cleaned


def _jsonable(value):
    if isinstance(value, (date,)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, str, list)):
        return value
    return str(value)


def _apply_custom_values(contact, cleaned):
    """Write validated custom values; return {name: [old, new]} for those that changed."""
    changes = {}
    current = {
        v.field_id: v
        for v in contact.custom_values.select_related("field").filter(
            field__in=[d for d, _ in cleaned]
        )
    }
    for definition, value in cleaned:
        row = current.get(definition.pk)
        old = row.value if row else None
        if old == value:
            continue
        if value is None:
            row.delete()
        else:
            row = row or CustomFieldValue(contact=contact, field=definition)
            row.value = value
            row.save()
        changes[f"custom:{definition.name}"] = [_jsonable(old), _jsonable(value)]
    return changes


# -- contacts ----------------------------------------------------------------


def _field_change(old, new):
    return [_jsonable(getattr(old, "pk", old)), _jsonable(getattr(new, "pk", new))]


@transaction.atomic
def create_contact(**data):
    """Create a contact with its emails, phones, addresses, tags and custom values.

    Takes ``actor``, ``source``, ``emails``, ``phones``, ``addresses``,
    ``tags``, ``custom_fields`` and the contact's own fields, by keyword.
    Validates everything first and raises ``ValidationError`` (keyed by field)
    before writing anything. Records a "Contact created" system activity.
    """
    return _insert_contact(**data)


def _insert_contact(
    *,
    actor=None,
    source="",
    emails=(),
    phones=(),
    addresses=(),
    tags=None,
    custom_fields=None,
    **fields,
):
    # create_contact without its transaction, for services already in one of
    # their own (a savepoint inside theirs would only cost two round trips).
    fields = _clean_scalar_fields(fields)
    email_rows = clean_emails(emails or [])
    phone_rows = clean_phones(phones or [])
    address_rows = clean_addresses(addresses or [])
    tag_objects = _resolve_tags(tags)
    contact = Contact(created_by=user_or_none(actor), **fields)
    if not contact.source:
        contact.source = source[:255]
    fallback = email_rows[0]["email"] if email_rows else ""
    _validate_contact(contact, email_fallback=fallback)
    custom = clean_custom_values(custom_fields, kind=contact.kind)
    _derive_names(contact, email_fallback=fallback)
    contact.save()
    for row in email_rows:
        ContactEmail.objects.create(contact=contact, **row)
    for row in phone_rows:
        ContactPhone.objects.create(contact=contact, **row)
    for row in address_rows:
        ContactAddress.objects.create(contact=contact, **row)
    if tag_objects:
        contact.tags.set(tag_objects)
    if custom:
        _apply_custom_values(contact, custom)
    record_system_event(
        contact,
        _("Contact created"),
        actor=actor,
        source=source,
        changes={
            name: [None, _jsonable(getattr(contact, name + "_id", getattr(contact, name)))]
            for name in fields
        },
    )
    return contact


@transaction.atomic
def update_contact(
    contact,
    *,
    actor=None,
    source="",
    emails=None,
    phones=None,
    addresses=None,
    tags=None,
    custom_fields=None,
    **fields,
):
    """Change the given fields of ``contact``; lists given replace the current ones.

    Arguments left out (or None for the lists) are not touched. Raises
    ``ValidationError`` before writing anything. Records one system activity
    with the changed fields, or none when nothing changed.
    """
    contact = Contact.all_objects.select_for_update().get(pk=contact.pk)
    if contact.is_deleted:
        raise ValidationError(_("This contact is in the trash; restore it first."))
    fields = _clean_scalar_fields(fields)
    email_rows = clean_emails(emails)
    phone_rows = clean_phones(phones)
    address_rows = clean_addresses(addresses)
    tag_objects = _resolve_tags(tags)

    before = {name: getattr(contact, name) for name in fields}
    for name, value in fields.items():
        setattr(contact, name, value)
    if email_rows is not None:
        fallback = email_rows[0]["email"] if email_rows else ""
    else:
        first = contact.emails.order_by("-is_primary", "id").first()
        fallback = first.email if first else ""
    _validate_contact(contact, email_fallback=fallback)
    custom = clean_custom_values(custom_fields, kind=contact.kind)
    _derive_names(contact, email_fallback=fallback)

    changes = {
        name: _field_change(before[name], getattr(contact, name))
        for name in fields
        if before[name] != getattr(contact, name)
    }
    contact.save()
    for kind, model, rows, identity in (
        ("emails", ContactEmail, email_rows, _email_identity),
        ("phones", ContactPhone, phone_rows, _phone_identity),
        ("addresses", ContactAddress, address_rows, _address_identity),
    ):
        if rows is None:
            continue
        old = _describe_rows(getattr(contact, kind).all(), kind)
        _replace_rows(contact, model, kind, rows, identity)
        new = _describe_rows(rows, kind)
        if old != new:
            changes[kind] = [old, new]
    if tag_objects is not None:
        old = sorted(contact.tags.values_list("slug", flat=True))
        contact.tags.set(tag_objects)
        new = sorted(t.slug for t in tag_objects)
        if old != new:
            changes["tags"] = [old, new]
    if custom:
        changes.update(_apply_custom_values(contact, custom))
    if changes:
        record_system_event(
            contact, _("Contact updated"), actor=actor, source=source, changes=changes
        )
    return contact


@transaction.atomic
def set_custom_values(contact, values, *, actor=None, source=""):
    """Set custom field values (``{name: value}``; None clears one)."""
    cleaned = clean_custom_values(values, kind=contact.kind)
    changes = _apply_custom_values(contact, cleaned)
    if changes:
        record_system_event(
            contact, _("Custom fields updated"), actor=actor, source=source, changes=changes
        )
    return changes


@transaction.atomic
def trash_contact(contact, *, actor=None, source=""):
    """Soft-delete: the contact disappears from lists and search but keeps
    all its records, and ``restore_contact`` brings it back. Idempotent."""
    given, contact = contact, Contact.all_objects.select_for_update().get(pk=contact.pk)
    if contact.is_deleted:
        return contact
    contact.is_deleted = given.is_deleted = True
    contact.deleted_at = given.deleted_at = timezone.now()
    contact.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    record_system_event(
        contact,
        _("Moved to trash"),
        actor=actor,
        source=source,
        changes={"is_deleted": [False, True]},
    )
    return contact


@transaction.atomic
def restore_contact(contact, *, actor=None, source=""):
    """Bring a contact back from the trash. Idempotent."""
    given, contact = contact, Contact.all_objects.select_for_update().get(pk=contact.pk)
    if not contact.is_deleted:
        return contact
    contact.is_deleted = given.is_deleted = False
    contact.deleted_at = given.deleted_at = None
    contact.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    record_system_event(
        contact,
        _("Restored from trash"),
        actor=actor,
        source=source,
        changes={"is_deleted": [True, False]},
    )
    return contact


# -- matching and upsert -----------------------------------------------------


@dataclass
class MatchCandidate:
    contact: Contact
    score: int
    reasons: list = field(default_factory=list)


MATCH_SCORES = {"email": 100, "name+phone": 85, "name+postcode": 85, "name": 40}


def _match_name_key(data):
    kind = data.get("kind") or ContactKind.INDIVIDUAL
    _, _, key = contact_names(
        kind=kind,
        first_name=plain_text(data.get("first_name") or ""),
        last_name=plain_text(data.get("last_name") or ""),
        organization_name=plain_text(data.get("organization_name") or ""),
        household_name=plain_text(data.get("household_name") or ""),
    )
    return key


def _match_by_name(key, phones, postcodes, add):
    named = Contact.objects.filter(name_key=key)
    # Rows only compared when the data has some to compare with.
    if phones:
        named = named.prefetch_related("phones")
    if postcodes:
        named = named.prefetch_related("addresses")
    for contact in named[:50]:
        if phones and any(p.number in phones for p in contact.phones.all()):
            add(contact, "name+phone")
        if postcodes and any(
            a.postal_code_normalized in postcodes for a in contact.addresses.all()
        ):
            add(contact, "name+postcode")
        add(contact, "name")


def match_contact(data, *, min_score=None):
    """Find existing contacts that ``data`` (the fields create_contact takes)
    may describe, best first.

    Rules: same email (100); same normalized name and phone (85); same
    normalized name and postcode (85); same name alone (40). Invalid emails
    and phones in ``data`` are ignored here. Runs at most four queries.
    """
    min_score = crm_setting("MATCH_MIN_SCORE") if min_score is None else min_score
    found = {}

    def add(contact, reason):
        candidate = found.setdefault(contact.pk, MatchCandidate(contact, 0))
        if reason not in candidate.reasons:
            candidate.reasons.append(reason)
            candidate.score = max(candidate.score, MATCH_SCORES[reason])

    def valid_rows(cleaner, items):
        rows = []
        for item in items or []:
            with suppress(ValidationError):
                rows.extend(cleaner([item]))
        return rows

    emails = [row["email_normalized"] for row in valid_rows(clean_emails, data.get("emails"))]
    if emails:
        for contact in Contact.objects.filter(
            pk__in=ContactEmail.objects.filter(email_normalized__in=emails).values("contact_id")
        ):
            add(contact, "email")
    key = _match_name_key(data)
    if key:
        phones = [row["number"] for row in valid_rows(clean_phones, data.get("phones"))]
        postcodes = [
            normalize_postal_code(item.get("postal_code"))
            for item in data.get("addresses") or []
            if isinstance(item, dict)
            and isinstance(item.get("postal_code"), str)
            and item.get("postal_code").strip()
        ]
        # With no phone or postcode, a name alone scores too little to be
        # returned: the name can only add its reason to contacts the email
        # found, so without one of those bearing it there is nothing to look up.
        if (
            phones
            or postcodes
            or MATCH_SCORES["name"] >= min_score
            or any(c.contact.name_key == key for c in found.values())
        ):
            _match_by_name(key, phones, postcodes, add)
    candidates = [c for c in found.values() if c.score >= min_score]
    candidates.sort(key=lambda c: (-c.score, c.contact.pk))
    return candidates


@dataclass
class UpsertResult:
    contact: Contact
    created: bool
    candidates: list = field(default_factory=list)


def _is_blank(value):
    return value is None or value == "" or value == [] or value is False


@transaction.atomic
def upsert_contact(data, *, actor=None, source="", update_mode="update"):
    """Update the contact ``data`` clearly describes, or create a new one.

    A single candidate scoring at least MATCH_UPDATE_SCORE is updated;
    otherwise a new contact is created and, when weaker candidates exist,
    each pair is queued as a ``PossibleDuplicate`` for staff to review.

    Never overwrites good data with blanks: blank values in ``data`` are
    ignored. ``update_mode="fill_blanks"`` also keeps every non-blank value
    already stored. Emails, phones and addresses are only ever added.
    """
    data = dict(data)
    candidates = match_contact(data)
    strong = [c for c in candidates if c.score >= crm_setting("MATCH_UPDATE_SCORE")]
    if len(strong) == 1:
        contact = strong[0].contact
        update_matched_contact(contact, data, actor=actor, source=source, update_mode=update_mode)
        contact.refresh_from_db()
        return UpsertResult(contact, False, candidates)
    contact = _insert_contact(actor=actor, source=source, **data)
    for candidate in candidates:
        flag_possible_duplicate(
            contact,
            candidate.contact,
            candidate.score,
            candidate.reasons,
            found_by=source or "upsert",
        )
    return UpsertResult(contact, True, candidates)


def update_matched_contact(contact, data, *, actor=None, source="", update_mode="update"):
    """Update a contact that matched ``data`` as ``upsert_contact`` does (blanks
    ignored; ``"fill_blanks"`` keeps stored values; rows only ever added)."""
    scalar = {}
    for name, value in data.items():
        if name not in CONTACT_FIELDS or name == "kind" or _is_blank(value):
            continue
        if update_mode == "fill_blanks" and not _is_blank(getattr(contact, name)):
            continue
        scalar[name] = value
    lists = {}
    for kind, cleaner, identity in (
        ("emails", clean_emails, _email_identity),
        ("phones", clean_phones, _phone_identity),
        ("addresses", clean_addresses, _address_identity),
    ):
        new_rows = cleaner(data.get(kind) or [])
        if not new_rows:
            continue
        current = list(getattr(contact, kind).all())
        known = {identity(obj) for obj in current}
        additions = [row for row in new_rows if identity(row) not in known]
        if additions:
            rows = [_row_from_object(obj, kind) for obj in current]
            for row in additions:
                row["is_primary"] = False
            lists[kind] = _pick_primary(rows + additions, kind)
    tags = data.get("tags")
    if tags:
        lists["tags"] = list(contact.tags.all()) + list(_resolve_tags(tags))
    custom = {k: v for k, v in (data.get("custom_fields") or {}).items() if not _is_blank(v)}
    if custom:
        lists["custom_fields"] = custom
    update_contact(contact, actor=actor, source=source, **scalar, **lists)


class NeedsOneByOne(Exception):  # noqa: N818 - a signal to the caller, not an error
    """``plan_update_from_data`` cannot plan this update for a bulk write."""


@dataclass
class PlannedUpdate:
    """What ``update_matched_contact`` would write for one contact, not yet written."""

    contact: Contact
    fields: list  # names of the Contact columns to write
    rows: list  # new ContactEmail / ContactPhone / ContactAddress instances
    changes: dict  # for the "Contact updated" activity


DERIVED_NAME_FIELDS = ("display_name", "sort_name", "name_key")


def plan_update_from_data(
    contact, data, *, update_mode="update", cleaned_rows=None, external_id_checked=False
):
    """Plan the update ``upsert_contact`` makes to a matched contact, saving nothing.

    Same rules as ``upsert_contact``'s update: blanks in ``data`` are ignored,
    ``update_mode="fill_blanks"`` keeps every stored value, emails, phones and
    addresses are only ever added. ``contact`` must come with its emails,
    phones and addresses prefetched (``apply_planned_updates`` writes many
    plans at once). Returns None when nothing would change. Raises
    ``ValidationError`` for bad data, and ``NeedsOneByOne`` for what only the
    one-contact path handles (tags, custom fields, a contact whose rows have
    no primary).

    A caller that has already cleaned ``data``'s emails, phones and addresses
    passes them as ``cleaned_rows`` ({"emails": [row dict, ...], ...}, as
    ``clean_emails`` and the others return them), and one that has made sure
    no other contact holds ``data``'s external id says ``external_id_checked``.
    """
    if contact.is_deleted:
        raise ValidationError(_("This contact is in the trash; restore it first."))
    if data.get("tags") or any(
        not _is_blank(v) for v in (data.get("custom_fields") or {}).values()
    ):
        raise NeedsOneByOne
    scalar = {}
    for name, value in data.items():
        if name not in CONTACT_FIELDS or name == "kind" or _is_blank(value):
            continue
        if update_mode == "fill_blanks" and not _is_blank(getattr(contact, name)):
            continue
        scalar[name] = value
    fields = _clean_scalar_fields(scalar)
    rows, changes = [], {}
    first_email = None
    for kind, model, cleaner, identity in (
        ("emails", ContactEmail, clean_emails, _email_identity),
        ("phones", ContactPhone, clean_phones, _phone_identity),
        ("addresses", ContactAddress, clean_addresses, _address_identity),
    ):
        current = list(getattr(contact, kind).all())
        if kind == "emails" and current:
            first_email = sorted(current, key=lambda e: (not e.is_primary, e.pk))[0].email
        if cleaned_rows is not None:
            new_rows = [dict(row) for row in cleaned_rows[kind]]
        else:
            new_rows = cleaner(data.get(kind) or [])
        known = {identity(obj) for obj in current}
        additions = [row for row in new_rows if identity(row) not in known]
        if not additions:
            continue
        has_primary = any(obj.is_primary for obj in current)
        if current and not has_primary:
            raise NeedsOneByOne
        for position, row in enumerate(additions):
            row["is_primary"] = not current and position == 0
            rows.append(model(contact=contact, **row))
        changes[kind] = [
            _describe_rows(current, kind),
            _describe_rows([*current, *additions], kind),
        ]
        if kind == "emails" and first_email is None:
            first_email = additions[0]["email"]
    before = {name: getattr(contact, name) for name in (*fields, *DERIVED_NAME_FIELDS)}
    for name, value in fields.items():
        setattr(contact, name, value)
    fallback = first_email or ""
    _validate_contact(
        contact,
        email_fallback=fallback,
        check_external_id="external_id" in fields and not external_id_checked,
    )
    _derive_names(contact, email_fallback=fallback)
    changed = [
        name for name in (*fields, *DERIVED_NAME_FIELDS) if before[name] != getattr(contact, name)
    ]
    for name in fields:
        if name in changed:
            changes[name] = _field_change(before[name], getattr(contact, name))
    if not changed and not rows:
        return None
    return PlannedUpdate(contact, changed, rows, changes)


@transaction.atomic
def apply_planned_updates(plans, *, actor=None, source=""):
    """Write many ``plan_update_from_data`` plans: one UPDATE per column set,
    one INSERT per kind of row, one "Contact updated" activity per contact.

    The caller holds the contacts locked (``select_for_update``) from planning
    to here, as ``update_contact`` does for one.
    """
    now = timezone.now()
    by_fields = {}
    for plan in plans:
        plan.contact.updated_at = now
        by_fields.setdefault(tuple(sorted(plan.fields)), []).append(plan.contact)
    for names, contacts in by_fields.items():
        bulk_update(Contact, contacts, [*names, "updated_at"])
    for model in (ContactEmail, ContactPhone, ContactAddress):
        rows = [row for plan in plans for row in plan.rows if type(row) is model]
        bulk_insert(model, rows)
    created_by = user_or_none(actor)
    bulk_insert(
        Activity,
        [
            Activity(
                contact=plan.contact,
                activity_type=ActivityType.SYSTEM,
                subject=_("Contact updated"),
                changes=plan.changes,
                source=source[:100],
                created_by=created_by,
            )
            for plan in plans
            if plan.changes
        ],
    )


def _row_from_object(obj, kind):
    if kind == "emails":
        names = ("email", "email_normalized", "location", "is_primary", "on_hold")
    elif kind == "phones":
        names = ("number", "extension", "phone_type", "location", "is_primary")
    else:
        names = (
            *ADDRESS_TEXT_FIELDS,
            "postal_code_normalized",
            "country",
            "location",
            "is_primary",
        )
    row = {name: getattr(obj, name) for name in names}
    if "country" in row:
        row["country"] = str(row["country"] or "")
    # _replace_rows feeds these rows back through identity, which needs plain values.
    return row


def flag_possible_duplicate(contact, other, score, reasons, *, found_by=""):
    """Queue a pair for review unless it is already known. Returns the pair."""
    first, second = sorted([contact, other], key=lambda c: c.pk)
    try:
        with transaction.atomic():
            pair, _created = PossibleDuplicate.objects.get_or_create(
                contact_a=first,
                contact_b=second,
                defaults={
                    "score": score,
                    "reasons": reasons,
                    "found_by": found_by[:100],
                    "status": DuplicateStatus.OPEN,
                },
            )
    except IntegrityError:
        pair = PossibleDuplicate.objects.get(contact_a=first, contact_b=second)
    return pair
