"""docs/import.md's walk-through, done by a staff member in a real browser.

The demo's messy sample is uploaded, mapped, dry-run and imported; the
duplicate the import queued is reviewed and merged. The figures asserted are
the ones the document promises.
"""

import csv
import io
import re
from pathlib import Path

import pytest

from crm_core.models import Contact, DuplicateStatus, MergeRecord, PossibleDuplicate
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

SAMPLE = Path(__file__).resolve().parents[2] / "example_site/sample_data/messy_contacts.csv"


def log_in(page, live_server, demo_site):
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", demo_site["username"])
    page.fill("#id_password", demo_site["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"import-walkthrough-{name}.png"), full_page=True)


def test_staff_import_the_messy_sample_and_merge_its_duplicate(
    demo_site, live_server, browser_page
):
    page = browser_page
    log_in(page, live_server, demo_site)

    # 1. Data quality > Imports > Import a file
    page.get_by_role("button", name="Data quality").click()
    page.get_by_role("link", name="Imports", exact=True).click()
    page.get_by_role("link", name="Import a file").first.click()
    assert page.locator("h1").inner_text().strip() == "Import a file"

    # 2. Upload
    page.set_input_files("input[type=file]", str(SAMPLE))
    shot(page, "1-upload")
    page.get_by_role("button", name="Upload and map columns").click()

    # 3. Columns are guessed from their names
    assert page.locator("h1").inner_text().startswith("Map the columns")
    assert page.get_by_label("Surname").input_value() == "last_name"
    assert page.get_by_label("E-mail").input_value() == "email"
    shot(page, "2-map")

    # 4-5. Keep "fill in blanks", name the mapping, dry run
    page.get_by_label(re.compile("mapping", re.I)).fill("old-crm")
    page.get_by_role("button", name=re.compile("dry run")).click()
    report = page.locator("main").inner_text()
    for promised in (
        "Would be created: 9",
        "Would be updated: 2",
        "Rows with errors: 2",
        "Possible duplicates to queue: 1",
    ):
        assert promised in report
    assert Contact.objects.count() == 0, "a dry run saves nothing"
    shot(page, "3-dry-run")

    # 6. Import now; the page shows the summary and the error file
    page.get_by_role("button", name=re.compile("import now")).click()
    page.get_by_role("link", name="Download the rows not imported (CSV)").wait_for()
    summary = page.locator("main").inner_text()
    assert "Created: 9" in summary and "Updated: 2" in summary
    shot(page, "4-done")
    href = page.get_by_role("link", name="Download the rows not imported (CSV)").get_attribute(
        "href"
    )
    download = page.request.get(live_server.url + href)
    assert download.ok
    rows = list(csv.reader(io.StringIO(download.text())))
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith("=") for cell in cells), "formulas are neutralised"
    assert any("HYPERLINK" in cell for cell in cells)
    assert Contact.objects.count() == 9

    # 7. Review the queued pair and merge it, keeping the contact with an email
    page.get_by_role("link", name="Review the possible duplicates").click()
    page.get_by_role("link", name=re.compile("Anne Dupont")).first.click()
    assert page.locator("h1").inner_text().startswith("Review possible duplicate")
    shot(page, "5-review")
    pair = PossibleDuplicate.objects.get()
    with_email = Contact.objects.get(emails__email="anne.dupont@example.fr")
    column = "a" if pair.contact_a_id == with_email.pk else "b"
    page.locator(f"input[name=keep][value={column}]").check()
    page.get_by_role("button", name="Merge").click()
    page.wait_for_load_state()
    shot(page, "6-merged")

    pair.refresh_from_db()
    assert pair.status == DuplicateStatus.MERGED
    record = MergeRecord.objects.get()
    assert record.kept_contact_id == with_email.pk
    annes = Contact.objects.filter(first_name="Anne", last_name="Dupont")
    assert list(annes) == [with_email]
    assert with_email.phones.count() == 1
