"""A staff member finds and opens a contact in the Wagtail admin, in a real browser."""

import pytest

from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group
from tests.browser.conftest import ARTIFACTS
from tests.factories import ContactFactory, GroupFactory

pytestmark = pytest.mark.browser


def test_staff_log_in_search_a_contact_and_open_its_summary(demo_site, live_server, browser_page):
    ada = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@engine.example"])
    add_to_group(ada, GroupFactory(name="Trustees", slug="trustees"))
    record_consent(ada, purpose="newsletter", channel="email", granted=True)
    ContactFactory(first_name="Charles", last_name="Babbage")
    page = browser_page

    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", demo_site["username"])
    page.fill("#id_password", demo_site["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")

    page.goto(live_server.url + "/admin/snippets/crm_core/contact/")
    assert page.get_by_role("link", name="Charles Babbage").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin-contacts.png"), full_page=True)

    search = page.locator("#id_q")
    search.fill("Lovelace")
    search.press("Enter")
    page.get_by_role("link", name="Charles Babbage").wait_for(state="detached")
    assert page.get_by_role("link", name="Ada Lovelace").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin-contacts-search.png"), full_page=True)

    page.get_by_role("button", name="More options for 'Ada Lovelace'").click()
    page.get_by_role("link", name="Inspect").click()
    page.get_by_role("heading", name="Timeline").wait_for()
    summary = page.locator("main").inner_text()
    assert "ada@engine.example" in summary
    assert "Trustees" in summary
    assert "Contact created" in summary
    page.screenshot(path=str(ARTIFACTS / "admin-contact-inspect.png"), full_page=True)
