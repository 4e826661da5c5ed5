"""Importing contacts, contributions and memberships through the import service and command."""

import io
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from crm_core.models import (
    Activity,
    Contact,
    ContactEmail,
    Contribution,
    ImportJob,
    ImportMapping,
    ImportStatus,
    Membership,
    PossibleDuplicate,
)
from crm_core.services import contacts as contact_services
from crm_core.services.contacts import create_contact
from crm_core.services.imports import (
    ImportFileError,
    create_job,
    dry_run_import,
    guess_columns,
    inspect_file,
    run_import,
    write_error_file,
)
from tests.factories import CustomFieldFactory, FinancialTypeFactory, MembershipTypeFactory

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).resolve().parent.parent / "example_site/sample_data/messy_contacts.csv"
CONTACT_COLUMNS = {
    "id": "external_id",
    "first": "first_name",
    "last": "last_name",
    "email": "email",
    "phone": "phone",
}


def csv_bytes(*lines, header="id,first,last,email,phone"):
    return ("\r\n".join([header, *lines]) + "\r\n").encode()


def mapping(columns=None, kind="contacts", action="update_blanks", name="test"):
    return ImportMapping.objects.create(
        name=name, kind=kind, columns=columns or CONTACT_COLUMNS, match_action=action
    )


def do_import(data, the_mapping, **kwargs):
    job = create_job(data, name="people.csv", kind=the_mapping.kind, mapping=the_mapping)
    return run_import(job, **kwargs)


# -- bad files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "a.csv", "The file is empty."),
        (b"\xef\xbb\xbf\r\n\r\n", "a.csv", "The file is empty."),
        (b"name,email\r\n", "a.csv", "header row but no data rows"),
        (b"%PDF-1.7 binary \x00\x01", "a.pdf", "not a spreadsheet"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "a.csv", "not a spreadsheet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, "old.xls", "Old Excel .xls"),
        (b"PK\x03\x04 this is no workbook", "a.xlsx", "not a valid Excel .xlsx"),
        (b"name,email\nAnn,a@b.org\n", "a.xlsx", "not a valid Excel .xlsx"),
        (b"a,b\n" + b'"' + b"x" * (10 * 1024 * 1024) + b'"\n', "big.csv", "longer than 131,072"),
        (b"a,a\n1,2\n", "a.csv", "both called"),
    ],
    ids=[
        "empty",
        "bom-only",
        "header-only",
        "pdf",
        "png",
        "xls",
        "bad-zip",
        "csv-as-xlsx",
        "10mb-line",
        "dup-headers",
    ],
)
def test_bad_files_give_a_clear_error(data, name, message):
    with pytest.raises(ImportFileError) as error:
        inspect_file(data, name)
    assert message in error.value.message


def _damaged_xlsx(kind):
    """An .xlsx whose XML is broken in the workbook, cut short in the sheet, or whose
    first sheet is a chart."""
    if kind == "chartsheet":
        book = openpyxl.Workbook()
        book.create_chartsheet(index=0)
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    if kind == "workbook-xml":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("[Content_Types].xml", "<not xml")
            archive.writestr("xl/workbook.xml", "<not xml")
        return out.getvalue()
    book = openpyxl.Workbook()
    for number in range(200):
        book.active.append([f"name {number}", f"p{number}@example.org"])
    whole = io.BytesIO()
    book.save(whole)
    out = io.BytesIO()
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(out, "w") as archive:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) // 2]
            archive.writestr(item, content)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["workbook-xml", "sheet-cut-short", "chartsheet"])
def test_a_damaged_workbook_gives_a_clear_error(kind):
    with pytest.raises(ImportFileError) as error:
        inspect_file(_damaged_xlsx(kind), "people.xlsx")
    assert "not a valid Excel .xlsx" in error.value.message


def test_nul_characters_anywhere_in_a_csv_are_dropped_from_cells():
    # The binary check reads the first 8 KB; a NUL later on is not text either
    # (PostgreSQL refuses it in text and JSON columns, e.g. the error rows).
    lines = [f",P{n},Lee,p{n}@example.org," for n in range(400)]
    data = csv_bytes(*lines, ",Bad,Row,not-an\x00email,", ",Z\x00oe,Lee,zoe@example.org,")
    assert b"\x00" not in data[:8192]
    job = do_import(data, mapping())
    assert (job.created_count, job.error_count) == (401, 1)
    assert job.row_errors.get().values[3] == "not-anemail"
    assert Contact.objects.filter(first_name="Zoe").exists()


def test_a_file_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr("crm_core.services.imports.MAX_FILE_BYTES", 100)
    with pytest.raises(ImportFileError, match="larger than"):
        inspect_file(b"a,b\n" + b"1,2\n" * 50, "a.csv")


def test_bom_cp1252_and_mixed_line_ends_are_read():
    text = (
        "id,first,last,email,phone\r\n"
        "1,Zoë,Ñúñez,z@example.org,\n"
        "2,Åsa,Öberg,a@example.org,\r"
        "3,Ann,Lee,,"
    )
    cp1252 = inspect_file(text.encode("cp1252"), "a.csv")
    assert (cp1252.rows_total, cp1252.encoding) == (3, "cp1252")
    bom = inspect_file(b"\xef\xbb\xbf" + text.encode("utf-8"), "a.csv")
    assert bom.headers[0] == "id"
    assert bom.rows_total == 3


def test_imports_accented_names_from_a_cp1252_file():
    text = "id,first,last,email,phone\r\n1,Zoë,Müller,z@example.org,\r\n"
    job = do_import(text.encode("cp1252"), mapping())
    assert job.created_count == 1
    assert Contact.objects.get().display_name == "Zoë Müller"
    assert job.encoding == "cp1252"


def test_xlsx_files_are_imported():
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["id", "first", "last", "email", "phone"])
    sheet.append(["X1", "Ann", "Lee", "ann@example.org", 2079460018])
    sheet.append(["X2", "Bob", "=1+1", "bob@example.org", None])
    out = io.BytesIO()
    workbook.save(out)
    job = do_import(out.getvalue(), mapping())
    assert job.created_count == 1
    assert Contact.objects.get().phones.get().number == "+442079460018"
    assert "formula" in job.row_errors.get().messages[0]


# -- mapping ---------------------------------------------------------------------------


def test_columns_are_guessed_from_their_names():
    summary = inspect_file(SAMPLE.read_bytes(), SAMPLE.name)
    guessed = guess_columns(summary.headers, "contacts")
    assert guessed["External ID"] == "external_id"
    assert guessed["Surname"] == "last_name"
    assert guessed["E-mail"] == "email"
    assert guessed["Postcode"] == "postal_code"


def test_a_saved_mapping_is_reused_by_name_from_the_command(capsys):
    mapping(name="old-system")
    path = Path(__file__).parent / "fixtures" / "_import_people.csv"
    try:
        path.write_bytes(csv_bytes("A1,Ann,Lee,ann@example.org,"))
        call_command("crm_import", str(path), "--mapping", "old-system")
        call_command("crm_import", str(path), "--mapping", "old-system", "--again")
    finally:
        path.unlink()
    assert ImportJob.objects.filter(mapping__name="old-system").count() == 2
    assert Contact.objects.count() == 1
    assert "100% 1/1 rows" in capsys.readouterr().err


def test_the_command_refuses_an_unknown_mapping(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes("A1,Ann,Lee,ann@example.org,"))
    with pytest.raises(CommandError, match="No import mapping called 'nope'"):
        call_command("crm_import", str(path), "--mapping", "nope")


def test_the_command_reports_a_bad_file_without_a_traceback(tmp_path):
    mapping(name="m")
    path = tmp_path / "a.csv"
    path.write_bytes(b"")
    with pytest.raises(CommandError, match="The file is empty"):
        call_command("crm_import", str(path), "--mapping", "m")


# -- dry run ---------------------------------------------------------------------------


def test_a_dry_run_saves_nothing_and_lists_row_errors():
    job = create_job(
        csv_bytes("A1,Ann,Lee,ann@example.org,", "A2,Bob,Roe,not-an-email,", ",,,,"),
        name="p.csv",
        kind="contacts",
        mapping=mapping(),
    )
    dry_run_import(job)
    assert Contact.all_objects.count() == 0
    assert Activity.objects.count() == 0
    assert job.dry_run_counts == {
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "errors": 1,
        "duplicates": 0,
    }
    error = job.row_errors.get(dry_run=True)
    assert error.row_number == 3
    assert error.messages[0].startswith("email: ")


def test_the_command_dry_run_prints_errors_and_saves_nothing(tmp_path, capsys):
    mapping(name="m")
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes("A1,Ann,Lee,bad-email,"))
    call_command("crm_import", str(path), "--mapping", "m", "--dry-run")
    out = capsys.readouterr().out
    assert "Dry run, nothing saved: 0 would be created" in out
    assert "bad-email" in out
    assert Contact.objects.count() == 0


# -- match actions -----------------------------------------------------------------------


@pytest.fixture
def ann(db):
    return create_contact(
        first_name="Ann", last_name="", emails=["Ann@Example.org"], job_title="Nurse"
    )


def test_skip_leaves_a_matching_contact_alone(ann):
    job = do_import(csv_bytes(",Ann,Lee,ann@example.org,"), mapping(action="skip"))
    assert (job.created_count, job.skipped_count) == (0, 1)
    ann.refresh_from_db()
    assert ann.last_name == ""


def test_update_blanks_fills_only_blank_fields(ann):
    columns = {**CONTACT_COLUMNS, "job": "job_title"}
    data = csv_bytes(",Anne,Lee,ANN@example.org,,Doctor", header="id,first,last,email,phone,job")
    job = do_import(data, mapping(columns, action="update_blanks"))
    assert job.updated_count == 1
    ann.refresh_from_db()
    assert (ann.first_name, ann.last_name, ann.job_title) == ("Ann", "Lee", "Nurse")


def test_update_overwrites_with_non_blank_values_only(ann):
    columns = {**CONTACT_COLUMNS, "job": "job_title"}
    data = csv_bytes(",Anne,,ann@example.org,,Doctor", header="id,first,last,email,phone,job")
    do_import(data, mapping(columns, action="update"))
    ann.refresh_from_db()
    assert (ann.first_name, ann.job_title) == ("Anne", "Doctor")
    assert Contact.objects.count() == 1


def test_create_always_creates_and_queues_a_possible_duplicate(ann):
    job = do_import(csv_bytes(",Ann,Lee,ann@example.org,"), mapping(action="create"))
    assert (job.created_count, job.duplicate_count) == (1, 1)
    assert Contact.objects.count() == 2
    pair = PossibleDuplicate.objects.get()
    assert ann.pk in (pair.contact_a_id, pair.contact_b_id)


def test_a_contact_named_twice_in_one_file_is_created_once():
    data = csv_bytes(
        "A1,Zoë,Brien,zoe@example.org,",
        "A2,Bob,Roe,bob@example.org,",
        ",ZOË,BRIEN,ZOE@Example.ORG,",
    )
    job = do_import(data, mapping(action="update_blanks"))
    assert (job.created_count, job.updated_count) == (2, 1)
    assert ContactEmail.objects.filter(email_normalized="zoe@example.org").count() == 1


def test_the_external_id_matches_before_anything_else():
    create_contact(first_name="Old", last_name="Name", external_id="A1")
    do_import(csv_bytes("A1,New,Name,new@example.org,"), mapping(action="update"))
    contact = Contact.objects.get()
    assert contact.first_name == "New"
    assert [e.email for e in contact.emails.all()] == ["new@example.org"]


def test_a_name_and_phone_match_is_queued_not_merged():
    create_contact(first_name="Ann", last_name="Lee", phones=["020 7946 0018"])
    job = do_import(csv_bytes(",Ann,Lee,,+44 20 7946 0018"), mapping(action="update"))
    assert (job.created_count, job.duplicate_count) == (1, 1)
    assert PossibleDuplicate.objects.get().reasons == ["name+phone"]


def test_created_contacts_are_normalised_like_the_contact_service():
    do_import(csv_bytes("A1,  Zoë  ,<b>O'Brien</b>,Zoe@Example.ORG,020 7946 0018"), mapping())
    contact = Contact.objects.get()
    assert contact.display_name == "Zoë O'Brien"
    assert contact.name_key == "zoe o brien"
    assert contact.emails.get().email_normalized == "zoe@example.org"
    assert contact.phones.get().number == "+442079460018"
    assert contact.source == f"import:{ImportJob.objects.get().pk}"
    assert contact.activities.get().subject == "Contact created"


def test_an_import_update_writes_what_upsert_contact_writes():
    """The bulk update path of the import changes a matched contact as
    upsert_contact does: same fields, rows added, one "Contact updated" entry."""
    by_upsert = create_contact(first_name="Ann", last_name="", emails=["ann@example.org"])
    by_import = create_contact(first_name="Ann", last_name="", emails=["ann@example.net"])
    row = {"last_name": "Lee", "first_name": "Anne", "phones": ["020 7946 0018"]}
    contact_services.upsert_contact(
        {**row, "emails": ["ann@example.org", "a.lee@example.org"]}, update_mode="fill_blanks"
    )
    job = do_import(
        csv_bytes(",Anne,Lee,ann@example.net,020 7946 0018"), mapping(action="update_blanks")
    )
    create_contact(first_name="Extra", last_name="", emails=["extra@example.net"])
    assert job.updated_count == 1
    by_upsert.refresh_from_db()
    by_import.refresh_from_db()
    for name in ("first_name", "last_name", "display_name", "sort_name", "name_key"):
        assert getattr(by_import, name) == getattr(by_upsert, name)
    assert by_import.display_name == "Ann Lee"
    assert list(by_import.phones.values_list("number", "is_primary")) == [("+442079460018", True)]
    update = by_import.activities.get(subject="Contact updated")
    assert update.changes == {
        "last_name": ["", "Lee"],
        "phones": [[], ["+442079460018"]],
    }


def test_many_matched_rows_are_updated_in_a_constant_number_of_queries(
    django_assert_max_num_queries,
):
    def import_updates(count, offset):
        for n in range(count):
            create_contact(
                first_name="",
                last_name=f"Person{offset + n}",
                emails=[f"p{offset + n}@example.org"],
            )
        lines = [f",First{n},,p{offset + n}@example.org,020 7946 {n:04d}" for n in range(count)]
        return csv_bytes(*lines)

    small, large = import_updates(3, 0), import_updates(40, 100)
    with django_assert_max_num_queries(60) as few:
        assert do_import(small, mapping(action="update_blanks", name="small")).updated_count == 3
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert do_import(large, mapping(action="update_blanks", name="large")).updated_count == 40
    assert Contact.objects.filter(first_name__startswith="First").count() == 43


def test_a_bad_row_among_matched_rows_is_reported_and_the_others_are_updated():
    for name in ("ann", "bob", "cy"):
        create_contact(
            first_name="",
            last_name=name.title(),
            emails=[f"{name}@example.org"],
            birth_date=date(2000, 1, 1),
        )
    # Bob's date of death is fine on its own, but before the birth date stored.
    data = csv_bytes(
        ",Ann,,ann@example.org,,",
        ",Bob,,bob@example.org,,1990-01-01",
        ",Cy,,cy@example.org,,",
        header="id,first,last,email,phone,died",
    )
    job = do_import(data, mapping({**CONTACT_COLUMNS, "died": "deceased_date"}, action="update"))
    assert (job.updated_count, job.error_count) == (2, 1)
    assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["", "Ann", "Cy"]
    assert Contact.objects.get(last_name="Bob").deceased_date is None
    assert job.row_errors.get().messages == ["deceased_date: The date of death is before birth."]


def test_two_rows_updating_one_contact_in_a_batch_both_apply():
    create_contact(first_name="", last_name="Lee", emails=["ann@example.org"])
    data = csv_bytes(
        ",Ann,,ann@example.org,",
        ",,,ann@example.org,020 7946 0018",
    )
    job = do_import(data, mapping(action="update_blanks"))
    assert job.updated_count == 2
    contact = Contact.objects.get()
    assert contact.first_name == "Ann"
    assert contact.phones.get().number == "+442079460018"


@pytest.mark.parametrize("batch_size", [1, 500])
def test_a_row_with_an_external_id_an_earlier_row_gave_away_matches_its_new_holder(batch_size):
    # Row 1 gives X1 to Ann; rows 2 and 3 then match Ann by it (the external
    # id beats their email), in one batch as in separate ones. Once this was
    # an IntegrityError that failed the job.
    ann = create_contact(first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    bob = create_contact(first_name="Bob", last_name="Roe", emails=["bob@example.org"])
    job = do_import(
        csv_bytes(
            "X1,,,ann@example.org,",
            "X1,,,bob@example.org,",
            "X1,,,cy@example.org,020 7946 0018",
        ),
        mapping(action="update"),
        batch_size=batch_size,
    )
    assert (job.status, job.created_count, job.updated_count, job.error_count) == (
        ImportStatus.DONE,
        0,
        3,
        0,
    )
    ann.refresh_from_db()
    bob.refresh_from_db()
    assert (ann.external_id, bob.external_id) == ("X1", None)
    assert ann.phones.get().number == "+442079460018"
    assert Contact.objects.count() == 2


@pytest.mark.parametrize("batch_size", [1, 500])
def test_fill_blanks_keeps_a_contacts_own_external_id_and_frees_the_rows_for_another(batch_size):
    ann = create_contact(
        first_name="Ann", last_name="Lee", emails=["ann@example.org"], external_id="A0"
    )
    bob = create_contact(first_name="Bob", last_name="Roe", emails=["bob@example.org"])
    job = do_import(
        # Ann is matched by email and keeps A0, so X1 is free for Bob.
        csv_bytes("X1,,,ann@example.org,", "X1,,,bob@example.org,", "X1,Cy,,,"),
        mapping(action="update_blanks"),
        batch_size=batch_size,
    )
    assert (job.created_count, job.updated_count, job.error_count) == (0, 3, 0)
    ann.refresh_from_db()
    bob.refresh_from_db()
    assert (ann.external_id, bob.external_id) == ("A0", "X1")
    assert Contact.objects.count() == 2


@pytest.mark.parametrize("batch_size", [1, 500])
def test_an_email_an_earlier_row_gave_a_contact_matches_it_later_in_the_batch(batch_size):
    # Row 1 finds Ann by her external id and gives her a second email; row 2
    # has only that email, so it updates Ann, in one batch as in two.
    ann = create_contact(
        first_name="Ann", last_name="Lee", emails=["ann@example.org"], external_id="A0"
    )
    job = do_import(
        csv_bytes("A0,,,ann.work@example.org,", ",Ann,Lee,ann.work@example.org,020 7946 0018"),
        mapping(action="update_blanks"),
        batch_size=batch_size,
    )
    assert (job.created_count, job.updated_count, job.duplicate_count) == (0, 2, 0)
    assert Contact.objects.get() == ann
    assert sorted(ann.emails.values_list("email", flat=True)) == [
        "ann.work@example.org",
        "ann@example.org",
    ]
    assert ann.phones.get().number == "+442079460018"


@pytest.mark.parametrize("batch_size", [1, 500])
def test_a_contact_renamed_by_an_earlier_row_no_longer_matches_by_its_old_name(batch_size):
    # Row 1 renames Ann Lee to Ann Roe. Row 2's old name and phone then point
    # at no one: a new contact, not flagged as a possible duplicate of Ann.
    ann = create_contact(
        first_name="Ann", last_name="Lee", emails=["ann@example.org"], phones=["020 7946 0018"]
    )
    job = do_import(
        csv_bytes(",Ann,Roe,ann@example.org,", ",Ann,Lee,,020 7946 0018"),
        mapping(action="update"),
        batch_size=batch_size,
    )
    assert (job.created_count, job.updated_count, job.duplicate_count) == (1, 1, 0)
    ann.refresh_from_db()
    assert ann.last_name == "Roe"
    assert not PossibleDuplicate.objects.exists()


def test_a_matched_row_cannot_take_an_external_id_another_contact_holds():
    create_contact(first_name="Old", last_name="Holder", external_id="X1")
    ann = create_contact(first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    job = do_import(csv_bytes("X2,,,ann@example.org,"), mapping(action="update"))
    assert job.updated_count == 1
    ann.refresh_from_db()
    assert ann.external_id == "X2"
    # The external id matches before the email, so X1 updates its holder, not Ann.
    job = do_import(csv_bytes("X1,,,ann@example.org,"), mapping(action="update", name="again"))
    ann.refresh_from_db()
    assert ann.external_id == "X2"
    assert Contact.objects.get(external_id="X1").last_name == "Holder"


def test_matched_rows_with_custom_fields_are_updated_one_by_one():
    CustomFieldFactory(name="tshirt", field_type="choice", choices=["S", "M", "L"])
    ann = create_contact(first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    columns = {**CONTACT_COLUMNS, "size": "custom:tshirt"}
    data = csv_bytes(",,,ann@example.org,,L", header="id,first,last,email,phone,size")
    job = do_import(data, mapping(columns, action="update"))
    assert job.updated_count == 1
    assert ann.custom_values.get().value == "L"


# -- custom fields, contributions, memberships ---------------------------------------------


def test_custom_fields_are_imported_and_validated():
    CustomFieldFactory(name="tshirt", field_type="choice", choices=["S", "M", "L"])
    CustomFieldFactory(name="joined", field_type="date")
    columns = {**CONTACT_COLUMNS, "size": "custom:tshirt", "since": "custom:joined"}
    data = csv_bytes(
        "A1,Ann,Lee,ann@example.org,,M,2020-01-31",
        "A2,Bob,Roe,bob@example.org,,XXL,2020-01-31",
        header="id,first,last,email,phone,size,since",
    )
    job = do_import(data, mapping(columns))
    assert job.created_count == 1
    ann = Contact.objects.get()
    values = {v.field.name: v.value for v in ann.custom_values.select_related("field")}
    assert values == {"tshirt": "M", "joined": date(2020, 1, 31)}
    assert "tshirt: Choose one of: S, M, L." in job.row_errors.get().messages


def test_contributions_are_linked_to_contacts_by_external_id_or_email():
    FinancialTypeFactory(slug="donation")
    create_contact(first_name="Ann", last_name="Lee", external_id="A1")
    create_contact(first_name="Bob", last_name="Roe", emails=["bob@example.org"])
    columns = {
        "who": "contact_external_id",
        "mail": "contact_email",
        "amount": "amount",
        "currency": "currency",
        "date": "received_date",
        "method": "payment_method",
    }
    data = csv_bytes(
        "A1,,25.00,GBP,2024-03-01,cheque",
        ",BOB@example.org,10,GBP,2024-03-02,cash",
        "ZZ,,10,GBP,2024-03-02,cash",
        ",bob@example.org,-5,GBP,,",
        header="who,mail,amount,currency,date,method",
    )
    job = do_import(data, mapping(columns, kind="contributions"))
    assert (job.created_count, job.error_count) == (2, 2)
    paid = Contribution.objects.order_by("id")
    assert [(c.contact.display_name, c.total_amount, c.status) for c in paid] == [
        ("Ann Lee", Decimal("25.00"), "completed"),
        ("Bob Roe", Decimal("10.00"), "completed"),
    ]
    assert paid[0].received_at.date().isoformat() == "2024-03-01"


def test_memberships_are_linked_to_contacts():
    membership_type = MembershipTypeFactory(slug="individual", name="Individual")
    create_contact(first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    columns = {"email": "contact_email", "type": "membership_type", "since": "join_date"}
    today = date.today().isoformat()
    data = csv_bytes(
        f"ann@example.org,Individual,{today}",
        f"ann@example.org,individual,{today}",
        header="email,type,since",
    )
    job = do_import(data, mapping(columns, kind="memberships"))
    assert (job.created_count, job.error_count) == (1, 1)
    membership = Membership.objects.get()
    assert membership.membership_type == membership_type
    assert membership.join_date == date.today()
    assert "already has" in job.row_errors.get().messages[0]


# -- resume --------------------------------------------------------------------------------


def test_a_crashed_import_resumes_and_imports_each_row_once(monkeypatch):
    lines = [f"A{n},Person,Number{n},p{n}@example.org," for n in range(1, 11)]
    job = create_job(csv_bytes(*lines), name="p.csv", kind="contacts", mapping=mapping())
    real_prepare = contact_services.clean_emails
    calls = {"n": 0}

    def crash_in_batch_two(items):
        calls["n"] += 1
        if calls["n"] == 5:  # batch size 4: the first row of the second batch
            raise RuntimeError("power cut")
        return real_prepare(items)

    monkeypatch.setattr(contact_services, "clean_emails", crash_in_batch_two)
    with pytest.raises(RuntimeError):
        run_import(job, batch_size=4)
    job.refresh_from_db()
    assert (job.status, job.rows_done, Contact.objects.count()) == (ImportStatus.FAILED, 4, 4)
    monkeypatch.setattr(contact_services, "clean_emails", real_prepare)
    run_import(job, batch_size=4)
    job.refresh_from_db()
    assert (job.status, job.created_count) == (ImportStatus.DONE, 10)
    assert Contact.objects.count() == 10
    assert run_import(job).created_count == 10


def test_the_command_resumes_a_crashed_run(tmp_path, monkeypatch, capsys):
    the_mapping = mapping(name="m")
    path = tmp_path / "a.csv"
    data = csv_bytes(*[f"A{n},Person,Number{n},p{n}@example.org," for n in range(1, 8)])
    path.write_bytes(data)
    job = create_job(data, name="a.csv", kind="contacts", mapping=the_mapping)
    real = contact_services.clean_emails
    calls = {"n": 0}

    def crash(items):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("killed")
        return real(items)

    monkeypatch.setattr(contact_services, "clean_emails", crash)
    with pytest.raises(RuntimeError):
        run_import(job, batch_size=3)
    monkeypatch.setattr(contact_services, "clean_emails", real)
    call_command("crm_import", str(path), "--mapping", "m", "--batch-size", "3")
    assert "Resuming import" in capsys.readouterr().out
    assert Contact.objects.count() == 7
    assert ImportJob.objects.count() == 1
    with pytest.raises(CommandError, match="imported with this mapping already"):
        call_command("crm_import", str(path), "--mapping", "m")


# -- error file and the sample ---------------------------------------------------------------


def test_the_error_file_neutralises_formulas():
    job = do_import(
        csv_bytes('A1,"=HYPERLINK(""http://x"")",Lee,a@example.org,', "A2,@SUM(1),Roe,bad,"),
        mapping(),
    )
    out = io.StringIO()
    write_error_file(job, out)
    text = out.getvalue()
    assert "'=HYPERLINK" in text
    assert "'@SUM(1)" in text
    assert ",=" not in text and ",@" not in text


def test_the_messy_sample_imports_with_its_duplicates_queued():
    columns = guess_columns(inspect_file(SAMPLE.read_bytes()).headers, "contacts")
    job = do_import(SAMPLE.read_bytes(), mapping(columns))
    assert job.status == ImportStatus.DONE
    assert job.error_count == 2  # the formula and the bad email
    assert job.created_count == 9
    assert job.updated_count == 2  # Zoë and Ana appear twice with one email each
    assert PossibleDuplicate.objects.count() == 1  # Anne Dupont: same name and phone
    zoe = Contact.objects.get(emails__email_normalized="zoe.obrien@example.org")
    assert zoe.display_name == "Zoë O'Brien"
