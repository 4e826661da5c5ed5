"""An editor places a donation form on a new page in the Wagtail admin, in a real browser."""

import re

import pytest
from wagtail.models import Page

from crm_wagtail.models import DonationPage
from tests.browser.conftest import ARTIFACTS
from tests.factories import FinancialTypeFactory

pytestmark = pytest.mark.browser


def log_in(page, live_server, demo_site):
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", demo_site["username"])
    page.fill("#id_password", demo_site["password"])
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"editor-{name}.png"), full_page=True)


def test_an_editor_builds_and_publishes_a_donation_page(demo_site, live_server, browser_page):
    FinancialTypeFactory(name="Winter appeal fund", slug="winter")
    home = Page.objects.get(depth=2)
    page = browser_page
    log_in(page, live_server, demo_site)

    page.goto(f"{live_server.url}/admin/pages/{home.pk}/add_subpage/")
    shot(page, "1-page-types")
    page.click("text=Donation page")
    page.locator("#id_title").fill("Winter appeal")
    page.locator("button[title='Insert a block']").first.click()
    page.get_by_role("option", name=re.compile("Donation form")).first.click()
    page.locator("#body-0-value-title").fill("Keep the hall warm")
    page.locator("#body-0-value-amounts-0-value-amount").fill("15")
    page.locator("#body-0-value-amounts-0-value-label").fill("a day of heating")
    # An editor's slip: the largest amount below the smallest is refused on publish.
    page.locator("#body-0-value-min_amount").fill("50")
    page.locator("#body-0-value-max_amount").fill("20")
    chooser = page.locator("input[name='body-0-value-financial_type']").locator("xpath=..")
    chooser.get_by_role("button", name="Choose financial type").click()
    page.get_by_role("link", name="Winter appeal fund").click()
    page.locator("input[name='body-0-value-financial_type']").wait_for(state="attached")
    shot(page, "2-donation-block")

    page.locator("button[aria-label='More actions'], button:has-text('More actions')").first.click()
    page.get_by_role("button", name=re.compile("Publish")).click()
    page.wait_for_load_state()
    assert "The largest amount must not be below the smallest." in page.content()
    assert not DonationPage.objects.filter(title="Winter appeal", live=True).exists()
    shot(page, "3-refused")

    page.locator("#body-0-value-min_amount").fill("5")
    page.locator("#body-0-value-max_amount").fill("500")
    page.locator("button[aria-label='More actions'], button:has-text('More actions')").first.click()
    page.get_by_role("button", name=re.compile("Publish")).click()
    page.wait_for_load_state()
    published = DonationPage.objects.get(title="Winter appeal")
    assert published.live

    page.goto(live_server.url + published.url)
    shot(page, "4-published")
    assert page.locator("h2", has_text="Keep the hall warm").is_visible()
    assert page.get_by_label(re.compile("15.00 GBP a day of heating")).is_visible()
