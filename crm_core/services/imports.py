"""Importing contacts, contributions and memberships from CSV and XLSX files.

The file is read once when it is uploaded (``inspect_file``): anything that
makes it unreadable (not a spreadsheet, empty, a cell of megabytes) is an
``ImportFileError`` with a message for staff, never a crash later on.

Every row goes through the same cleaning and validation as the contact,
contribution and membership services; there is no second validator. New
contacts are written in bulk, a batch at a time, with their emails, phones,
addresses, tags, custom values and "Contact created" history entry, so an
import of 100,000 rows does not make 100,000 round trips. Matches against
existing contacts are looked up once per batch (external id, email, name and
phone, name and postcode, the rules of ``contacts.match_contact``).

A real run commits each batch together with the job's checkpoint
(``ImportJob.rows_done``): a crash loses at most the batch in flight, and
running the job again continues after the checkpoint, so each row is
imported once. A dry run goes through exactly the same code inside a
transaction that is rolled back: it saves nothing but the job's counts and
row errors.
"""

import csv
import datetime
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django_countries import countries

from ..bulk import bulk_insert
from ..conf import crm_setting
from ..exceptions import CRMError
from ..models import (
    Activity,
    ActivityType,
    Contact,
    ContactAddress,
    ContactEmail,
    ContactPhone,
    CustomField,
    CustomFieldValue,
    FieldType,
    FinancialType,
    ImportJob,
    ImportKind,
    ImportRowError,
    ImportStatus,
    MatchAction,
    MembershipType,
)
from ..sanitize import plain_text
from . import contacts as contact_services
from . import contributions as contribution_services
from . import memberships as membership_services
from .activities import user_or_none

# Largest file accepted (bytes); the admin refuses bigger uploads up front.
MAX_FILE_BYTES = 50 * 1024 * 1024
# A cell longer than this is refused (csv's own default limit, left as it is:
# raising it is process-wide).
MAX_CELL_CHARS = 131072
MAX_COLUMNS = 200
BATCH_SIZE = 500
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class ImportFileError(CRMError):
    """The file cannot be read as a spreadsheet; the message says why."""


# -- reading files ------------------------------------------------------------------------


@dataclass
class Spreadsheet:
    headers: list
    rows: object  # iterator of (data row index from 1, [cell text])
    file_format: str
    encoding: str = ""


def _decode(data):
    """Text of a CSV file and the encoding it was read in.

    UTF-8 with or without a byte order mark, UTF-16 with one, then Windows-1252
    (what Excel writes on Western European Windows), then Latin-1, which reads
    any byte: a file in yet another encoding shows wrong accents in the dry run
    rather than failing.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            raise ImportFileError(
                _("The file starts like UTF-8 text but is not valid UTF-8.")
            ) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise ImportFileError(_("The file is not valid UTF-16 text.")) from None
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ImportFileError(_("The file's text encoding is not recognised."))  # pragma: no cover


def _check_not_other_binary(data):
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(
            _("Old Excel .xls files cannot be read: save the sheet as .xlsx or CSV.")
        )
    head = data[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return
    if b"\x00" in head or head.startswith((b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8")):
        raise ImportFileError(
            _("This is not a spreadsheet: upload a CSV file or an Excel .xlsx workbook.")
        )


def _cell_text(value):
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        # Excel keeps phone numbers and ids typed as numbers as floats.
        return str(int(value))
    return str(value)


def _csv_rows(text):
    # csv reads \r\n, \n and \r line ends alike, mixed in one file too.
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise ImportFileError(
                _(
                    "Line %(line)d has a cell longer than %(limit)s characters; "
                    "check the file is a spreadsheet of records (a missing closing "
                    "quote makes the rest of the file one cell)."
                )
                % {"line": reader.line_num, "limit": f"{MAX_CELL_CHARS:,}"}
            ) from None
        raise ImportFileError(
            _("Line %(line)d cannot be read as CSV: %(error)s")
            % {"line": reader.line_num, "error": exc}
        ) from None


def _xlsx_rows(data):
    import openpyxl  # only imports pay for it
    from openpyxl.utils.exceptions import InvalidFileException

    not_valid = _("This file is not a valid Excel .xlsx workbook: save it again as .xlsx or CSV.")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        rows = workbook.worksheets[0].iter_rows(values_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, IndexError, ValueError, OSError):
        raise ImportFileError(not_valid) from None
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise ImportFileError(not_valid) from None
    try:
        while True:
            # The sheet's XML is parsed as it is read: damage may show on any row.
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception:  # noqa: BLE001 - as above
                raise ImportFileError(not_valid) from None
            cells = [_cell_text(value) for value in row]
            if any(len(cell) > MAX_CELL_CHARS for cell in cells):
                raise ImportFileError(
                    _("A cell is longer than %(limit)s characters.")
                    % {"limit": f"{MAX_CELL_CHARS:,}"}
                )
            yield cells
    finally:
        workbook.close()


def _clean_headers(raw):
    headers = []
    for index, header in enumerate(raw, start=1):
        header = plain_text(header).strip() or _("Column %(n)d") % {"n": index}
        if header in headers:
            raise ImportFileError(
                _("Two columns are both called “%(name)s”: rename one.") % {"name": header}
            )
        headers.append(header)
    while headers and headers[-1].startswith(_("Column ")) and not raw[len(headers) - 1].strip():
        headers.pop()
    return headers


def open_spreadsheet(data, name=""):
    """Read ``data`` (bytes) as CSV or XLSX; returns a ``Spreadsheet``.

    Raises ``ImportFileError`` for an empty file, a file that is not a
    spreadsheet, a header row wider than ``MAX_COLUMNS``, duplicate column
    names; cells over ``MAX_CELL_CHARS`` raise it while the rows are read.
    """
    if not data or not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise ImportFileError(_("The file is empty."))
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(
            _("The file is larger than %(mb)d MB: split it into smaller files.")
            % {"mb": MAX_FILE_BYTES // (1024 * 1024)}
        )
    if data.startswith(b"PK\x03\x04"):
        rows, file_format, encoding = _xlsx_rows(data), "xlsx", ""
    else:
        if name.lower().endswith((".xlsx", ".xlsm")):
            raise ImportFileError(
                _("This file is not a valid Excel .xlsx workbook: save it again as .xlsx or CSV.")
            )
        _check_not_other_binary(data)
        text, encoding = _decode(data)
        rows, file_format = _csv_rows(text), "csv"
    raw_headers = None
    for raw in rows:
        if any(cell.strip() for cell in raw):
            raw_headers = raw
            break
    if raw_headers is None:
        raise ImportFileError(_("The file is empty."))
    if len(raw_headers) > MAX_COLUMNS:
        raise ImportFileError(
            _("The file has %(n)d columns; at most %(max)d are read.")
            % {"n": len(raw_headers), "max": MAX_COLUMNS}
        )
    headers = _clean_headers(raw_headers)

    def data_rows():
        for index, raw in enumerate(rows, start=1):
            # A NUL character is no text (PostgreSQL refuses it): dropped.
            cells = [cell.replace("\x00", "").strip() for cell in raw[: len(headers)]]
            cells += [""] * (len(headers) - len(cells))
            yield index, cells

    return Spreadsheet(headers, data_rows(), file_format, encoding)


@dataclass
class FileSummary:
    headers: list
    rows_total: int
    file_format: str
    encoding: str
    sha256: str


def inspect_file(data, name=""):
    """Read the whole file once: its headers and number of data rows.

    Raises ``ImportFileError`` for every problem that would stop an import,
    so a file that passes here can be imported (its rows may still have errors).
    """
    sheet = open_spreadsheet(data, name)
    total = 0
    for _index, cells in sheet.rows:
        total += 1
        del cells
    if total == 0:
        raise ImportFileError(_("The file has a header row but no data rows."))
    return FileSummary(
        sheet.headers, total, sheet.file_format, sheet.encoding, hashlib.sha256(data).hexdigest()
    )


def neutralise_formula(value):
    """Prefix values a spreadsheet would run as a formula with an apostrophe."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def looks_like_formula(value):
    """ "=SUM(A1)", "@cmd", "+A1" and "-2+3" style cells; "+44 20 7946 0000" and "-5" are not."""
    if not value:
        return False
    if value[0] in "=@":
        return True
    return value[0] in "+-" and bool(re.search(r"[A-Za-z=!(]", value[1:].split(" ", 1)[0]))


# -- targets and mapping ------------------------------------------------------------------

ADDRESS_TARGETS = ("street_address", "supplemental_address", "city", "region", "postal_code")
CONTACT_LIST_TARGETS = (
    "email",
    "email_2",
    "phone",
    "phone_2",
    *ADDRESS_TARGETS,
    "country",
    "tags",
)
CONTACT_SCALAR_TARGETS = tuple(n for n in contact_services.CONTACT_FIELDS if n != "employer")
CONTRIBUTION_TARGETS = (
    "contact_external_id",
    "contact_email",
    "amount",
    "currency",
    "financial_type",
    "received_date",
    "payment_method",
    "transaction_id",
    "status",
    "source",
    "note",
)
MEMBERSHIP_TARGETS = (
    "contact_external_id",
    "contact_email",
    "membership_type",
    "join_date",
    "start_date",
    "source",
)
BOOLEAN_FIELDS = {
    "do_not_email",
    "do_not_phone",
    "do_not_mail",
    "do_not_sms",
    "is_opt_out",
    "is_deceased",
}
SYNONYMS = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "forename": "first_name",
    "given_name": "first_name",
    "first": "first_name",
    "firstname": "first_name",
    "surname": "last_name",
    "family_name": "last_name",
    "last": "last_name",
    "lastname": "last_name",
    "telephone": "phone",
    "tel": "phone",
    "mobile": "phone",
    "phone_number": "phone",
    "postcode": "postal_code",
    "post_code": "postal_code",
    "zip": "postal_code",
    "zip_code": "postal_code",
    "street": "street_address",
    "address": "street_address",
    "town": "city",
    "county": "region",
    "state": "region",
    "organisation": "organization_name",
    "organization": "organization_name",
    "company": "organization_name",
    "id": "external_id",
    "date_of_birth": "birth_date",
    "dob": "birth_date",
    "fund": "financial_type",
    "date": "received_date",
    "type": "membership_type",
}


def import_targets(kind):
    """[(target, label)] a column of a ``kind`` file may be mapped to."""
    if kind == ImportKind.CONTRIBUTIONS:
        return [(name, name.replace("_", " ")) for name in CONTRIBUTION_TARGETS]
    if kind == ImportKind.MEMBERSHIPS:
        return [(name, name.replace("_", " ")) for name in MEMBERSHIP_TARGETS]
    targets = []
    for name in CONTACT_SCALAR_TARGETS:
        verbose = Contact._meta.get_field(name).verbose_name
        targets.append((name, str(verbose)))
    targets += [(name, name.replace("_", " ")) for name in CONTACT_LIST_TARGETS]
    for definition in CustomField.objects.filter(is_active=True).order_by("weight", "label"):
        targets.append(
            (
                f"custom:{definition.name}",
                _("%(label)s (custom field)") % {"label": definition.label},
            )
        )
    return targets


def _header_key(text):
    return re.sub(r"[^0-9a-z]+", "_", (text or "").lower()).strip("_")


def guess_columns(headers, kind):
    """{header: target} for headers whose name says what they are."""
    targets = dict(import_targets(kind))
    by_key = {_header_key(name): name for name in targets}
    by_key.update({_header_key(label): name for name, label in targets.items()})
    guessed = {}
    for header in headers:
        key = _header_key(header)
        target = by_key.get(key) or SYNONYMS.get(key)
        if target in targets and target not in guessed.values():
            guessed[header] = target
    return guessed


def validate_columns(columns, kind):
    """Check a {header: target} map; raises ``ValidationError`` naming the problem."""
    allowed = dict(import_targets(kind))
    errors = []
    seen = {}
    for header, target in columns.items():
        if target not in allowed:
            errors.append(
                _("%(header)s: unknown field %(target)s.") % {"header": header, "target": target}
            )
        elif target in seen:
            errors.append(
                _("%(a)s and %(b)s are both mapped to %(target)s.")
                % {"a": seen[target], "b": header, "target": allowed[target]}
            )
        seen[target] = header
    targets = set(columns.values())
    if kind != ImportKind.CONTACTS and not targets & {"contact_external_id", "contact_email"}:
        errors.append(_("Map a column to the contact's external id or email."))
    if kind == ImportKind.CONTRIBUTIONS and not {"amount", "currency"} <= targets:
        errors.append(_("Map the amount and the currency."))
    if kind == ImportKind.MEMBERSHIPS and "membership_type" not in targets:
        errors.append(_("Map the membership type."))
    if kind == ImportKind.CONTACTS and not targets:
        errors.append(_("Map at least one column."))
    if errors:
        raise ValidationError(errors)


# -- rows -> service arguments ------------------------------------------------------------


MESSAGE_LABELS = {
    "__all__": "",
    "custom_fields": "",
    "emails": "email",
    "phones": "phone",
    "addresses": "address",
}


def _messages(error):
    if isinstance(error, CRMError):
        return [str(error.message)]
    if hasattr(error, "error_dict"):
        out = []
        for name, messages in error.message_dict.items():
            label = MESSAGE_LABELS.get(name, name)
            for message in messages:
                # "Row 1:" in the services' list errors is the position in the
                # row's list of emails or phones, not a spreadsheet row.
                message = re.sub(r"^Row \d+: ", "", message)
                out.append(f"{label}: {message}" if label else message)
        return out
    return list(error.messages)


def _parse_bool(value, name):
    lowered = value.strip().lower()
    if lowered in {"1", "yes", "y", "true", "t", "x", "oui", "ja"}:
        return True
    if lowered in {"0", "no", "n", "false", "f", "non", "nein"}:
        return False
    raise ValidationError({name: [_("Expected yes or no.")]})


def _parse_date(value, name):
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        raise ValidationError({name: [_("Expected a date as YYYY-MM-DD.")]}) from None


def _country_code(value):
    if len(value) == 2:
        return value.upper()
    return countries.by_name(value) or value


def _row_cells(columns, headers, cells):
    """{target: cell text} for mapped, non-blank cells; refuses formula cells."""
    values = {}
    for header, cell in zip(headers, cells, strict=True):
        target = columns.get(header)
        if not target or not cell:
            continue
        if looks_like_formula(cell):
            raise ValidationError(
                {
                    header: [
                        _(
                            "looks like a spreadsheet formula; it was not imported. "
                            "Type the value itself."
                        )
                    ]
                }
            )
        values[target] = cell
    return values


def contact_data_from_cells(values, custom_definitions):
    """The keyword arguments of ``create_contact`` for one row's mapped cells."""
    data = {}
    for name in CONTACT_SCALAR_TARGETS:
        if name not in values:
            continue
        value = values[name]
        if name in BOOLEAN_FIELDS:
            value = _parse_bool(value, name)
        elif name == "kind":
            value = {"organisation": "organization"}.get(value.lower(), value.lower())
        data[name] = value
    emails = [values[n] for n in ("email", "email_2") if n in values]
    if emails:
        data["emails"] = emails
    phones = [values[n] for n in ("phone", "phone_2") if n in values]
    if phones:
        data["phones"] = phones
    address = {n: values[n] for n in ADDRESS_TARGETS if n in values}
    if "country" in values:
        address["country"] = _country_code(values["country"])
    if address:
        data["addresses"] = [address]
    if "tags" in values:
        data["tags"] = [t.strip() for t in re.split(r"[,;]", values["tags"]) if t.strip()]
    custom = {}
    for target, value in values.items():
        if target.startswith("custom:"):
            name = target.removeprefix("custom:")
            definition = custom_definitions.get(name)
            if definition is not None and definition.field_type == FieldType.MULTI_CHOICE:
                value = [v.strip() for v in re.split(r"[;,]", value) if v.strip()]
            custom[name] = value
    if custom:
        data["custom_fields"] = custom
    return data


@dataclass
class PreparedContact:
    """A validated, unsaved contact and its rows, as ``create_contact`` would save them."""

    data: dict
    contact: Contact
    fields: dict
    emails: list
    phones: list
    addresses: list
    tags: list
    custom: list
    keys: set = field(default_factory=set)


def prepare_contact(data, *, actor=None, source=""):
    """Clean and validate ``data`` exactly as ``create_contact`` does, saving nothing.

    The one check left out is the external id's uniqueness, which the import
    checks for a whole batch at once. Raises ``ValidationError``.
    """
    scalar = {k: v for k, v in data.items() if k in contact_services.CONTACT_FIELDS}
    fields = contact_services._clean_scalar_fields(scalar)
    emails = contact_services.clean_emails(data.get("emails") or [])
    phones = contact_services.clean_phones(data.get("phones") or [])
    addresses = contact_services.clean_addresses(data.get("addresses") or [])
    tags = contact_services._resolve_tags(data.get("tags")) or []
    contact = Contact(created_by=user_or_none(actor), **fields)
    if not contact.source:
        contact.source = source[:255]
    fallback = emails[0]["email"] if emails else ""
    external_id, contact.external_id = contact.external_id, None
    contact_services._validate_contact(contact, email_fallback=fallback)
    contact.external_id = external_id
    custom = contact_services.clean_custom_values(data.get("custom_fields"), kind=contact.kind)
    contact_services._derive_names(contact, email_fallback=fallback)
    prepared = PreparedContact(data, contact, fields, emails, phones, addresses, tags, custom or [])
    prepared.keys = _match_keys(prepared)
    return prepared


def _match_keys(prepared):
    """The keys by which this contact would be matched, with the rule of each."""
    keys = set()
    if prepared.contact.external_id:
        keys.add(("external_id", prepared.contact.external_id))
    for row in prepared.emails:
        keys.add(("email", row["email_normalized"]))
    name_key = prepared.contact.name_key
    if name_key:
        for row in prepared.phones:
            keys.add(("name+phone", (name_key, row["number"])))
        for row in prepared.addresses:
            if row["postal_code_normalized"]:
                keys.add(("name+postcode", (name_key, row["postal_code_normalized"])))
    return keys


MATCH_SCORES = {"external_id": 100, **contact_services.MATCH_SCORES}


def _lookup_existing(prepared_rows):
    """{match key: {contact id}} for the batch, in four queries; trashed
    contacts holding an external id are reported as ``-id``."""
    wanted = {}
    for prepared in prepared_rows:
        for rule, value in prepared.keys:
            wanted.setdefault(rule, set()).add(value)
    found = {}

    def add(key, contact_id):
        found.setdefault(key, set()).add(contact_id)

    if wanted.get("external_id"):
        for external_id, pk, deleted in Contact.all_objects.filter(
            external_id__in=wanted["external_id"]
        ).values_list("external_id", "pk", "is_deleted"):
            add(("external_id", external_id), -pk if deleted else pk)
    if wanted.get("email"):
        for email, pk in ContactEmail.objects.filter(
            email_normalized__in=wanted["email"], contact__is_deleted=False
        ).values_list("email_normalized", "contact_id"):
            add(("email", email), pk)
    for rule, model, column in (
        ("name+phone", ContactPhone, "number"),
        ("name+postcode", ContactAddress, "postal_code_normalized"),
    ):
        pairs = wanted.get(rule)
        if not pairs:
            continue
        names = {name for name, _value in pairs}
        values = {value for _name, value in pairs}
        for value, name, pk in model.objects.filter(
            **{f"{column}__in": values},
            contact__name_key__in=names,
            contact__is_deleted=False,
        ).values_list(column, "contact__name_key", "contact_id"):
            if (name, value) in pairs:
                add((rule, (name, value)), pk)
    return found


@dataclass
class BatchOutcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    duplicates: int = 0
    errors: list = field(default_factory=list)  # [(row index, cells, messages)]
    contact_ids: list = field(default_factory=list)


class ContactBatch:
    """Writes a batch of new contacts in bulk, as ``create_contact`` writes one."""

    def __init__(self, *, actor, source):
        self.actor, self.source = actor, source
        self.pending = []  # [(PreparedContact, [(candidate id, score, reasons)])]

    def add(self, prepared, candidates):
        self.pending.append((prepared, candidates))

    def flush(self, found, outcome):
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        new_contacts = bulk_insert(Contact, [p.contact for p, _c in pending])
        emails, phones, addresses, tag_links, values, events = [], [], [], [], [], []
        created_by = user_or_none(self.actor)
        for (prepared, _candidates), contact in zip(pending, new_contacts, strict=True):
            emails += [ContactEmail(contact=contact, **row) for row in prepared.emails]
            phones += [ContactPhone(contact=contact, **row) for row in prepared.phones]
            addresses += [ContactAddress(contact=contact, **row) for row in prepared.addresses]
            tag_links += [
                Contact.tags.through(contact_id=contact.pk, tag_id=tag.pk) for tag in prepared.tags
            ]
            for definition, value in prepared.custom:
                if value is not None:
                    row = CustomFieldValue(contact=contact, field=definition)
                    row.value = value
                    values.append(row)
            events.append(
                Activity(
                    contact=contact,
                    activity_type=ActivityType.SYSTEM,
                    subject=_("Contact created"),
                    changes={
                        name: [None, contact_services._jsonable(getattr(contact, name))]
                        for name in prepared.fields
                    },
                    source=self.source[:100],
                    created_by=created_by,
                )
            )
            for key in prepared.keys:
                found.setdefault(key, set()).add(contact.pk)
            outcome.contact_ids.append(contact.pk)
        bulk_insert(ContactEmail, emails)
        bulk_insert(ContactPhone, phones)
        bulk_insert(ContactAddress, addresses)
        bulk_insert(Contact.tags.through, tag_links)
        bulk_insert(CustomFieldValue, values)
        bulk_insert(Activity, events)
        outcome.created += len(new_contacts)
        for (_prepared, candidates), contact in zip(pending, new_contacts, strict=True):
            for other_id, score, reasons in candidates:
                contact_services.flag_possible_duplicate(
                    contact,
                    Contact.all_objects.get(pk=other_id),
                    score,
                    reasons,
                    found_by=self.source,
                )
                outcome.duplicates += 1


class UpdateBatch:
    """Writes a batch of updates to matched contacts in bulk, as ``upsert_contact``
    updates one; rows that only the one-by-one path handles take it."""

    def __init__(self, *, actor, source, update_mode):
        self.actor, self.source, self.update_mode = actor, source, update_mode
        self.pending = []  # [(row index, cells, contact id, PreparedContact)]

    def add(self, index, cells, contact_id, prepared):
        self.pending.append((index, cells, contact_id, prepared))

    def flush(self, outcome):
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        contacts = Contact.all_objects.select_for_update().prefetch_related(
            "emails", "phones", "addresses"
        )
        contacts = contacts.in_bulk([contact_id for _i, _c, contact_id, _p in pending])
        plans, one_by_one = [], []
        for index, cells, contact_id, prepared in pending:
            try:
                plan = contact_services.plan_update_from_data(
                    contacts[contact_id],
                    prepared.data,
                    update_mode=self.update_mode,
                    cleaned_rows={
                        "emails": prepared.emails,
                        "phones": prepared.phones,
                        "addresses": prepared.addresses,
                    },
                    # _import_contact_rows gives an external id to one contact only.
                    external_id_checked=True,
                )
            except contact_services.NeedsOneByOne:
                one_by_one.append((index, cells, contact_id, prepared))
                continue
            except (ValidationError, CRMError) as error:
                outcome.errors.append((index, cells, _messages(error)))
                continue
            if plan is not None:
                plans.append(plan)
            outcome.updated += 1
        contact_services.apply_planned_updates(plans, actor=self.actor, source=self.source)
        for index, cells, contact_id, prepared in one_by_one:
            try:
                with transaction.atomic():
                    contact_services.update_matched_contact(
                        Contact.objects.get(pk=contact_id),
                        prepared.data,
                        actor=self.actor,
                        source=self.source,
                        update_mode=self.update_mode,
                    )
            except (ValidationError, CRMError) as error:
                outcome.errors.append((index, cells, _messages(error)))
            else:
                outcome.updated += 1


def _refresh_keys(prepared, found):
    """Look ``prepared``'s match keys up again, replacing what ``found`` holds for them."""
    fresh = _lookup_existing([prepared])
    for key in prepared.keys:
        found[key] = fresh.get(key, set())


def _candidates(prepared, found):
    """[(contact id, score, reasons)] best first, as match_contact scores them."""
    scores = {}
    for key in prepared.keys:
        for pk in found.get(key, ()):
            score, reasons = scores.get(pk, (0, []))
            reasons.append(key[0])
            scores[pk] = (max(score, MATCH_SCORES[key[0]]), reasons)
    listed = [(pk, score, sorted(set(r))) for pk, (score, r) in scores.items()]
    listed.sort(key=lambda item: (-item[1], item[0]))
    return listed


def _import_contact_rows(rows, context, outcome):
    actor, source, action = context.actor, context.source, context.match_action
    prepared_rows = []
    for index, cells in rows:
        try:
            values = _row_cells(context.columns, context.headers, cells)
            if not values:
                continue
            data = contact_data_from_cells(values, context.custom_definitions)
            prepared_rows.append((index, cells, prepare_contact(data, actor=actor, source=source)))
        except (ValidationError, CRMError) as error:
            outcome.errors.append((index, cells, _messages(error)))
    found = _lookup_existing([p for _i, _c, p in prepared_rows])
    batch = ContactBatch(actor=actor, source=source)
    mode = "fill_blanks" if action == MatchAction.UPDATE_BLANKS else "update"
    updates = UpdateBatch(actor=actor, source=source, update_mode=mode)
    pending_keys = set()
    # What this batch's updates may have changed: the match keys their rows
    # give (an email, a phone, an external id) and the contacts they change
    # (a new name changes the name keys). ``found`` may be stale for these.
    update_keys, updated_ids = set(), set()
    min_score = crm_setting("MATCH_MIN_SCORE")
    strong_score = crm_setting("MATCH_UPDATE_SCORE")
    for index, cells, prepared in prepared_rows:
        if prepared.keys & pending_keys:
            # The file names this contact twice in one batch: write the first
            # so the second matches it, as it would in a later batch.
            batch.flush(found, outcome)
            pending_keys.clear()
        if prepared.keys & update_keys or any(
            pk in updated_ids for key in prepared.keys for pk in found.get(key, ())
        ):
            # An earlier row's update may have given this row's email, phone
            # or external id to its contact, or changed a contact this row
            # matches (two rows for one contact; a new name): write the
            # updates and look this row's keys up again, so it matches as it
            # would in a later batch.
            updates.flush(outcome)
            _refresh_keys(prepared, found)
        candidates = _candidates(prepared, found)
        trashed = [pk for pk, _s, _r in candidates if pk < 0]
        if trashed:
            outcome.errors.append(
                (
                    index,
                    cells,
                    [_("external_id: a contact in the trash has this external identifier.")],
                )
            )
            continue
        candidates = [c for c in candidates if c[1] >= min_score]
        strong = [c for c in candidates if c[1] >= strong_score]
        by_external_id = [c for c in candidates if "external_id" in c[2]]
        match = by_external_id[0] if by_external_id else strong[0] if len(strong) == 1 else None
        if match is None or action == MatchAction.CREATE:
            if action == MatchAction.CREATE and by_external_id:
                outcome.errors.append(
                    (
                        index,
                        cells,
                        [_("external_id: another contact has this external identifier.")],
                    )
                )
                continue
            batch.add(prepared, candidates)
            pending_keys |= prepared.keys
            continue
        if action == MatchAction.SKIP:
            outcome.skipped += 1
            continue
        update_keys |= prepared.keys
        updated_ids.add(match[0])
        updates.add(index, cells, match[0], prepared)
    batch.flush(found, outcome)
    updates.flush(outcome)


class ContactFinder:
    """Finds the contacts that a batch of linked rows name, in two queries."""

    def __init__(self, rows_values):
        external_ids = {
            v["contact_external_id"] for v in rows_values if v.get("contact_external_id")
        }
        emails = {
            (v.get("contact_email") or "").strip().lower()
            for v in rows_values
            if not v.get("contact_external_id")
        } - {""}
        self.by_external_id = dict(
            Contact.objects.filter(external_id__in=external_ids).values_list("external_id", "pk")
        )
        self.by_email = {}
        self.contacts = None
        for email, pk in ContactEmail.objects.filter(
            email_normalized__in=emails, contact__is_deleted=False
        ).values_list("email_normalized", "contact_id"):
            self.by_email.setdefault(email, set()).add(pk)

    def contact_id(self, values):
        """The id of the contact ``values`` names; ValidationError when none or several."""
        external_id = values.get("contact_external_id")
        if external_id:
            if external_id not in self.by_external_id:
                raise ValidationError(
                    {"contact_external_id": [_("No contact has this external identifier.")]}
                )
            return self.by_external_id[external_id]
        email = (values.get("contact_email") or "").strip().lower()
        if not email:
            raise ValidationError(_("Give the contact's external identifier or email."))
        found = self.by_email.get(email, ())
        if not found:
            raise ValidationError({"contact_email": [_("No contact has this email address.")]})
        if len(found) > 1:
            raise ValidationError(
                {"contact_email": [_("Several contacts have this email: use their external id.")]}
            )
        return next(iter(found))

    def contact(self, values):
        """The Contact ``values`` names (the batch's contacts are loaded in one query)."""
        contact_id = self.contact_id(values)
        if self.contacts is None:
            ids = {
                *self.by_external_id.values(),
                *(pk for pks in self.by_email.values() for pk in pks),
            }
            self.contacts = Contact.objects.in_bulk(ids)
        return self.contacts[contact_id]


def _by_slug_or_name(model, value, name, cache):
    key = (model, value.lower())
    if key not in cache:
        cache[key] = (
            model.objects.filter(slug=value).first()
            or model.objects.filter(name__iexact=value).first()
        )
    if cache[key] is None:
        raise ValidationError({name: [_("There is no %(value)s.") % {"value": value}]})
    return cache[key]


def _donation_entry(values, context, contact_id):
    """The ``record_donations`` entry for one contribution row (ValidationError if bad)."""
    fund = None
    if values.get("financial_type"):
        fund = _by_slug_or_name(
            FinancialType, values["financial_type"], "financial_type", context.cache
        )
    status = (values.get("status") or "completed").lower()
    if status not in ("completed", "pending"):
        raise ValidationError({"status": [_("Expected completed or pending.")]})
    received_at = None
    if values.get("received_date"):
        day = _parse_date(values["received_date"], "received_date")
        received_at = timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))
    return {
        "contact_id": contact_id,
        "currency": values["currency"],
        "amount": values["amount"],
        "financial_type": fund,
        "payment_method": (values.get("payment_method") or "").lower(),
        "note": values.get("note", ""),
        "source": values.get("source") or context.source,
        "paid": status == "completed",
        "received_at": received_at,
        "transaction_id": values.get("transaction_id", ""),
    }


def _named_rows(rows, context, outcome):
    """[(index, cells, {target: text})] of the rows with mapped cells; the errors of
    the others go to ``outcome``."""
    named = []
    for index, cells in rows:
        try:
            values = _row_cells(context.columns, context.headers, cells)
        except ValidationError as error:
            outcome.errors.append((index, cells, _messages(error)))
            continue
        if values:
            named.append((index, cells, values))
    return named


def _import_contribution_rows(rows, context, outcome):
    """A batch of contribution rows with ``record_donations``: a few statements for
    the batch, not a dozen per row. Returns False, having written nothing, when
    a transaction id was taken meanwhile (the caller goes row by row)."""
    batch_outcome = BatchOutcome()
    named = _named_rows(rows, context, batch_outcome)
    finder = ContactFinder([values for _i, _c, values in named])
    entries, placed = [], []
    for index, cells, values in named:
        try:
            entries.append(_donation_entry(values, context, finder.contact_id(values)))
        except (ValidationError, CRMError) as error:
            batch_outcome.errors.append((index, cells, _messages(error)))
        else:
            placed.append((index, cells))
    try:
        with transaction.atomic():
            results = contribution_services.record_donations(
                entries, actor=context.actor, source=context.source
            )
    except IntegrityError:
        return False
    for (index, cells), result in zip(placed, results, strict=True):
        if isinstance(result, Exception):
            batch_outcome.errors.append((index, cells, _messages(result)))
        else:
            batch_outcome.created += 1
    batch_outcome.errors.sort(key=lambda error: error[0])
    outcome.created += batch_outcome.created
    outcome.errors += batch_outcome.errors
    return True


def _import_contribution(values, context, finder):
    contact = finder.contact(values)
    entry = _donation_entry(values, context, contact.pk)
    fund, received_at = entry["financial_type"], entry["received_at"]
    status = "completed" if entry["paid"] else "pending"
    payment_method = entry["payment_method"]
    with transaction.atomic():
        contribution = contribution_services.create_pending(
            contact,
            currency=values["currency"],
            lines=[{"kind": "donation", "amount": values["amount"], "financial_type": fund}],
            financial_type=fund,
            payment_method=payment_method,
            note=values.get("note", ""),
            actor=context.actor,
            source=values.get("source") or context.source,
        )
        if status == "completed":
            contribution_services.complete(
                contribution,
                transaction_id=values.get("transaction_id", ""),
                received_at=received_at,
                payment_method=payment_method or None,
                actor=context.actor,
                source=context.source,
            )
    return contribution


def _import_membership(values, context, finder):
    contact = finder.contact(values)
    membership_type = _by_slug_or_name(
        MembershipType, values["membership_type"], "membership_type", context.cache
    )
    join_date = _parse_date(values["join_date"], "join_date") if values.get("join_date") else None
    start_date = (
        _parse_date(values["start_date"], "start_date") if values.get("start_date") else None
    )
    return membership_services.join(
        contact,
        membership_type,
        join_date=join_date,
        start_date=start_date,
        actor=context.actor,
        source=values.get("source") or context.source,
    )


def _import_linked_rows(rows, context, outcome):
    if context.kind == ImportKind.CONTRIBUTIONS and _import_contribution_rows(
        rows, context, outcome
    ):
        return
    importer = (
        _import_contribution if context.kind == ImportKind.CONTRIBUTIONS else _import_membership
    )
    named = _named_rows(rows, context, outcome)
    finder = ContactFinder([values for _i, _c, values in named])
    for index, cells, values in named:
        try:
            with transaction.atomic():
                importer(values, context, finder)
        except (ValidationError, CRMError) as error:
            outcome.errors.append((index, cells, _messages(error)))
        else:
            outcome.created += 1
    outcome.errors.sort(key=lambda error: error[0])


# -- running a job ------------------------------------------------------------------------


@dataclass
class RunContext:
    kind: str
    headers: list
    columns: dict
    match_action: str
    actor: object
    source: str
    custom_definitions: dict
    cache: dict = field(default_factory=dict)


def _context(job, actor):
    mapping = job.mapping
    if mapping is None:
        raise ImportFileError(_("Choose a mapping first."))
    return RunContext(
        kind=job.kind,
        headers=job.headers,
        columns={h: t for h, t in mapping.columns.items() if t and h in job.headers},
        match_action=mapping.match_action,
        actor=actor,
        source=f"import:{job.pk}",
        custom_definitions={d.name: d for d in CustomField.objects.filter(is_active=True)},
    )


def _read_job_file(job):
    job.file.open("rb")
    try:
        return job.file.read()
    finally:
        job.file.close()


def _batches(job, *, start, batch_size):
    sheet = open_spreadsheet(_read_job_file(job), job.original_name)
    if sheet.headers != job.headers:
        raise ImportFileError(_("The file's columns changed since it was uploaded."))
    batch = []
    for index, cells in sheet.rows:
        if index <= start:
            continue
        batch.append((index, cells))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _process_batch(batch, context):
    outcome = BatchOutcome()
    if context.kind == ImportKind.CONTACTS:
        _import_contact_rows(batch, context, outcome)
    else:
        _import_linked_rows(batch, context, outcome)
    return outcome


def _error_rows(job, outcome, *, dry_run):
    return [
        ImportRowError(
            job=job,
            dry_run=dry_run,
            row_number=index + 1,
            values=cells,
            messages=[str(m) for m in messages],
        )
        for index, cells, messages in outcome.errors
    ]


def dry_run_import(job, *, actor=None, batch_size=BATCH_SIZE, progress=None):
    """Run the import of ``job`` and roll everything back.

    Records the counts it would give in ``job.dry_run_counts`` and each row's
    errors as ``ImportRowError(dry_run=True)``; no contact, contribution or
    membership is saved.
    """
    try:
        return _dry_run(job, actor, batch_size, progress)
    except Exception as exc:
        # The job's page says so (else it would wait for the dry run for ever).
        message = (
            exc.message
            if isinstance(exc, CRMError)
            else _("The dry run stopped: %(error)s") % {"error": type(exc).__name__}
        )
        ImportJob.objects.filter(pk=job.pk).update(message=message)
        raise


def _dry_run(job, actor, batch_size, progress):
    context = _context(job, actor)
    totals = BatchOutcome()
    done = 0
    with transaction.atomic():
        for batch in _batches(job, start=0, batch_size=batch_size):
            outcome = _process_batch(batch, context)
            for name in ("created", "updated", "skipped", "duplicates"):
                setattr(totals, name, getattr(totals, name) + getattr(outcome, name))
            totals.errors += outcome.errors
            done = batch[-1][0]
            if progress:
                progress(done, job.rows_total)
        transaction.set_rollback(True)
    with transaction.atomic():
        job.row_errors.filter(dry_run=True).delete()
        ImportRowError.objects.bulk_create(_error_rows(job, totals, dry_run=True), batch_size=500)
        job.dry_run_counts = {
            "created": totals.created,
            "updated": totals.updated,
            "skipped": totals.skipped,
            "errors": len(totals.errors),
            "duplicates": totals.duplicates,
        }
        if job.status == ImportStatus.UPLOADED:
            job.status = ImportStatus.DRY_RUN
        job.message = ""
        job.save(update_fields=["dry_run_counts", "status", "message"])
    return job


def run_import(job, *, actor=None, batch_size=BATCH_SIZE, progress=None):
    """Import the rows of ``job`` after its checkpoint, one transaction per batch.

    Each batch's rows, its row errors and the job's new checkpoint and counts
    commit together. Rerunning a job that crashed continues after its last
    committed batch; a finished job is returned unchanged. Two runners of
    the same job cannot both commit a batch: the second sees the checkpoint
    moved and stops. Returns the job. Raises ``ImportFileError`` for a file
    that cannot be read; other exceptions mark the job failed and propagate.
    """
    job.refresh_from_db()
    if job.status == ImportStatus.DONE:
        return job
    context = _context(job, actor)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, started_at=job.started_at or timezone.now(), message=""
    )
    try:
        for batch in _batches(job, start=job.rows_done, batch_size=batch_size):
            with transaction.atomic():
                locked = ImportJob.objects.select_for_update().get(pk=job.pk)
                if locked.rows_done != batch[0][0] - 1:
                    raise ImportFileError(_("Another run is importing this file."))
                outcome = _process_batch(batch, context)
                ImportRowError.objects.bulk_create(_error_rows(job, outcome, dry_run=False))
                ImportJob.objects.filter(pk=job.pk).update(
                    rows_done=batch[-1][0],
                    created_count=F("created_count") + outcome.created,
                    updated_count=F("updated_count") + outcome.updated,
                    skipped_count=F("skipped_count") + outcome.skipped,
                    error_count=F("error_count") + len(outcome.errors),
                    duplicate_count=F("duplicate_count") + outcome.duplicates,
                )
            job.refresh_from_db()
            if progress:
                progress(job.rows_done, job.rows_total)
    except Exception as exc:
        message = (
            exc.message
            if isinstance(exc, CRMError)
            else _("The import stopped: %(error)s") % {"error": type(exc).__name__}
        )
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, message=message)
        job.refresh_from_db()
        raise
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.DONE, rows_done=job.rows_total, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def create_job(data, *, name, kind, actor=None, mapping=None):
    """Check the file (``ImportFileError`` if unreadable) and record an ImportJob for it."""
    from django.core.files.base import ContentFile

    if kind not in ImportKind.values:
        raise ValidationError({"kind": [_("Choose contacts, contributions or memberships.")]})
    summary = inspect_file(data, name)
    job = ImportJob(
        kind=kind,
        original_name=plain_text(name)[:255],
        sha256=summary.sha256,
        headers=summary.headers,
        rows_total=summary.rows_total,
        mapping=mapping,
        created_by=user_or_none(actor),
        encoding=summary.encoding,
    )
    job.file.save(f"import.{summary.file_format}", ContentFile(data), save=False)
    job.save()
    return job


def resumable_job(sha256, mapping):
    """The unfinished real run of this file with this mapping, if any."""
    return (
        ImportJob.objects.filter(sha256=sha256, mapping=mapping, started_at__isnull=False)
        .exclude(status=ImportStatus.DONE)
        .order_by("-id")
        .first()
    )


def write_error_file(job, out, *, dry_run=False):
    """Write the rows not imported as CSV to ``out`` (a text stream): the row
    number, the row's cells, and why. Cells a spreadsheet would run as formulas
    are prefixed with an apostrophe."""
    writer = csv.writer(out)
    writer.writerow([_("row"), *map(neutralise_formula, job.headers), _("errors")])
    for error in job.row_errors.filter(dry_run=dry_run).order_by("row_number", "id").iterator():
        writer.writerow(
            [
                error.row_number,
                *(neutralise_formula(v) for v in error.values),
                neutralise_formula("; ".join(error.messages)),
            ]
        )
