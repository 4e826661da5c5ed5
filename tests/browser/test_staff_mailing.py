"""Staff build a smart group, write a mailing to it, preview it for a contact and send it."""

import re

import pytest
from django.core import mail

from crm_core.models import Mailing, MailingStatus, SmartGroup
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_editor_forms import log_in
from tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.browser


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"staff-mailing-{name}.png"), full_page=True)


def test_staff_send_a_mailing_to_a_smart_group(demo_site, live_server, browser_page):
    page = browser_page
    TagFactory(name="Donor", slug="donor")
    ContactFactory(first_name="Ann", last_name="Avery", emails=["ann@example.org"], tags=["donor"])
    ContactFactory(first_name="Ben", last_name="Brook", emails=["ben@example.org"], tags=["donor"])
    ContactFactory(first_name="Cat", last_name="Cole", emails=["cat@example.org"])
    log_in(page, live_server, demo_site)

    # A smart group, counted before it is saved.
    page.goto(f"{live_server.url}/admin/snippets/crm_core/smartgroup/add/")
    page.fill("#id_name", "Donors")
    page.fill("#id_slug", "donors")
    page.select_option("select[name=tags]", label="Donor")
    page.get_by_role("button", name="Count matching contacts").click()
    page.get_by_text("2 contacts match").wait_for()
    shot(page, "1-smart-group")
    page.locator("button[type=submit]", has_text="Save").first.click()
    page.wait_for_url(re.compile(r"/admin/snippets/crm_core/smartgroup/$"))
    assert SmartGroup.objects.filter(slug="donors").exists()

    # A mailing to it.
    page.goto(f"{live_server.url}/admin/snippets/crm_core/mailing/add/")
    page.fill("#id_name", "Spring thanks")
    page.fill("#id_subject", "Thank you, {{ first_name }}")
    page.fill(
        "#id_body_html",
        "<p>Dear {{ first_name }}, thank you.</p><p><a href='{{ unsubscribe_url }}'>Stop</a></p>",
    )
    page.select_option("#id_include_smart_groups", label="Donors")
    page.locator("button[type=submit]", has_text="Save").first.click()
    mailing = Mailing.objects.get(name="Spring thanks")
    # Saving lands on the mailing's page, with its actions.
    page.wait_for_url(re.compile(rf"/admin/snippets/crm_core/mailing/inspect/{mailing.pk}/$"))

    # Preview for one contact, chosen in the contact chooser.
    page.get_by_role("link", name="Preview").click()
    page.get_by_role("button", name="Choose contact").click()
    page.get_by_role("link", name=re.compile("Avery")).click()
    page.wait_for_function("document.querySelector(`input[name='contact']`).value !== ''")
    page.locator("button[type=submit]", has_text="Preview").click()
    page.get_by_text("Subject: Thank you, Ann").wait_for()
    frame = page.frame_locator("iframe[sandbox]")
    assert "Dear Ann, thank you." in frame.locator("body").inner_text()
    shot(page, "2-preview")

    # Send it.
    page.goto(f"{live_server.url}/admin/snippets/crm_core/mailing/inspect/{mailing.pk}/")
    page.get_by_role("link", name="Send now").click()
    page.locator("main button[type=submit]").click()
    page.get_by_text("2 sent, 0 failed").wait_for()
    shot(page, "3-sent")

    mailing.refresh_from_db()
    assert mailing.status == MailingStatus.SENT
    assert sorted(m.to[0] for m in mail.outbox) == ["ann@example.org", "ben@example.org"]
    assert all(m.extra_headers.get("List-Unsubscribe") for m in mail.outbox)
