"""The public home page, in a real browser."""

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def test_home_page_has_no_axe_violations(demo_site, live_server, browser_page):
    from axe_playwright_python.sync_playwright import Axe

    browser_page.goto(live_server.url + "/")
    browser_page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    results = Axe().run(browser_page)
    assert results.violations_count == 0, results.generate_report()


def test_home_page_shows_the_demo_intro_and_a_skip_link(demo_site, live_server, browser_page):
    browser_page.goto(live_server.url + "/")
    assert browser_page.locator("h1").inner_text() == "Riverside Community Trust"
    assert "demo of a CRM" in browser_page.locator("main").inner_text()
    browser_page.keyboard.press("Tab")
    focused = browser_page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Skip to main content"


def test_events_index_and_an_event_page_have_no_axe_violations(
    demo_site, live_server, browser_page
):
    import datetime
    import io

    from axe_playwright_python.sync_playwright import Axe
    from django.core.management import call_command
    from django.utils import timezone

    from tests.factories import EventFactory, EventFeeLevelFactory

    starts = timezone.now() + datetime.timedelta(days=5)
    event = EventFactory(
        title="Riverside quiz night", slug="quiz", starts_at=starts, location="Mill Hall"
    )
    EventFeeLevelFactory(event=event, label="Standard", amount="5.00")
    call_command("demo_site", stdout=io.StringIO())  # now makes /events/

    browser_page.goto(live_server.url + "/events/")
    browser_page.screenshot(path=str(ARTIFACTS / "events-index.png"), full_page=True)
    results = Axe().run(browser_page)
    assert results.violations_count == 0, results.generate_report()
    browser_page.get_by_role("link", name="Riverside quiz night").click()
    browser_page.wait_for_url(live_server.url + "/events/quiz/")
    assert "Mill Hall" in browser_page.locator("main").inner_text()
    browser_page.screenshot(path=str(ARTIFACTS / "events-page.png"), full_page=True)
    results = Axe().run(browser_page)
    assert results.violations_count == 0, results.generate_report()
