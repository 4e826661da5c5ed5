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
