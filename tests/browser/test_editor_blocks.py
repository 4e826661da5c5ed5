"""An editor places each of the other CRM form blocks on a new page in the Wagtail admin.

The donation form is tested in test_editor_forms.py; here the membership,
event registration, newsletter signup and contact forms are each inserted,
set up through their choosers, published and seen working on the site.
"""

import re
from decimal import Decimal

import pytest
from wagtail.models import Page

from crm_wagtail.models import EventPage, FormPage, MembershipPage
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_editor_forms import log_in
from tests.factories import (
    EventFactory,
    EventFeeLevelFactory,
    GroupFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser


class Editor:
    """One editor's session in the admin, building one page and screenshotting each step."""

    def __init__(self, page, live_server, demo_site, kind):
        self.page = page
        self.live_server = live_server
        self.kind = kind
        self.step = 0
        log_in(page, live_server, demo_site)

    def shot(self):
        self.step += 1
        self.page.screenshot(
            path=str(ARTIFACTS / f"editor-{self.kind}-{self.step}.png"), full_page=True
        )

    def start_page(self, page_type, title):
        home = Page.objects.get(depth=2)
        self.page.goto(f"{self.live_server.url}/admin/pages/{home.pk}/add_subpage/")
        self.shot()
        self.page.get_by_role("link", name=page_type, exact=True).click()
        self.page.locator("#id_title").fill(title)

    def insert_block(self, label):
        self.page.locator("button[title='Insert a block']").first.click()
        self.page.get_by_role("option", name=re.compile(label)).first.click()
        self.shot()

    def choose(self, input_name, button_name, link_name):
        """Pick ``link_name`` in the snippet chooser whose hidden input is ``input_name``."""
        field = self.page.locator(f"input[name='{input_name}']")
        field.locator("xpath=..").get_by_role("button", name=button_name).click()
        self.page.get_by_role("link", name=link_name).click()
        self.page.wait_for_function(
            "name => document.querySelector(`input[name='${name}']`).value !== ''", arg=input_name
        )

    def add_list_item(self, list_name):
        """Add an item at the end of a list block."""
        items = self.page.locator(f"input[name='{list_name}-count']").locator("xpath=..")
        items.locator("button[data-streamfield-list-add]").last.click()

    def publish(self, model, title):
        self.shot()
        self.page.locator(
            "button[aria-label='More actions'], button:has-text('More actions')"
        ).first.click()
        self.page.get_by_role("button", name=re.compile("Publish")).click()
        self.page.get_by_text(re.compile("created and published")).wait_for()
        published = model.objects.get(title=title)
        assert published.live, "the page is published"
        self.page.goto(self.live_server.url + published.url)
        self.shot()
        return published


@pytest.fixture
def editor(demo_site, live_server, browser_page):
    """``editor(kind)``: an editor logged into the admin, screenshots named after ``kind``."""
    return lambda kind: Editor(browser_page, live_server, demo_site, kind)


def test_an_editor_offers_two_membership_types_on_a_membership_page(editor):
    MembershipTypeFactory(name="Individual", fee=Decimal("30.00"))
    MembershipTypeFactory(name="Family", fee=Decimal("45.00"))
    MembershipTypeFactory(name="Life", fee=Decimal("500.00"))
    session = editor("membership")
    session.start_page("Membership page", "Join us")
    session.insert_block("Membership form")
    session.page.locator("#body-0-value-title").fill("Become a friend")
    session.choose("body-0-value-membership_types-0-value", "Choose membership type", "Individual")
    session.add_list_item("body-0-value-membership_types")
    session.choose("body-0-value-membership_types-1-value", "Choose membership type", "Family")
    published = session.publish(MembershipPage, "Join us")

    [block] = published.body
    assert [t.name for t in block.value["membership_types"]] == ["Individual", "Family"]
    page = session.page
    assert page.locator("h2", has_text="Become a friend").is_visible()
    assert page.get_by_label("Individual: 30.00 GBP").is_visible()
    assert page.get_by_label("Family: 45.00 GBP").is_visible()
    assert page.get_by_label(re.compile("Life")).count() == 0, "a type not chosen is not offered"


def test_an_editor_puts_an_events_registration_form_on_its_event_page(editor):
    event = EventFactory(title="Riverside quiz night", capacity=40)
    EventFeeLevelFactory(event=event, label="Standard", amount=Decimal("12.00"), is_default=True)
    session = editor("event")
    session.start_page("Event page", "Quiz night")
    session.choose("event", "Choose event", "Riverside quiz night")
    session.insert_block("Event registration form")
    session.page.locator("#body-0-value-title").fill("Book your table")
    session.choose("body-0-value-event", "Choose event", "Riverside quiz night")
    session.page.locator("#body-0-value-max_attendees").fill("4")
    published = session.publish(EventPage, "Quiz night")

    [block] = published.body
    assert (published.event, block.value["event"], block.value["max_attendees"]) == (
        event,
        event,
        4,
    )
    page = session.page
    assert page.locator("h2", has_text="Book your table").is_visible()
    assert page.get_by_label("Standard: 12.00 GBP").is_visible()
    assert page.get_by_label("Number of people").is_visible()
    assert page.get_by_label("Person 4: first name").count() == 1
    assert page.get_by_text("40 seats left.").is_visible()


def test_an_editor_offers_newsletter_groups_on_a_form_page(editor):
    GroupFactory(name="Garden volunteers")
    GroupFactory(name="Trustees")
    session = editor("signup")
    session.start_page("Form page", "Garden news")
    session.insert_block("Newsletter signup form")
    session.page.locator("#body-0-value-title").fill("Hear from the garden")
    session.choose("body-0-value-groups-0-value", "Choose group", "Garden volunteers")
    published = session.publish(FormPage, "Garden news")

    [block] = published.body
    assert [g.name for g in block.value["groups"]] == ["Garden volunteers"]
    assert block.value["double_opt_in"] is True, "confirming by email is on unless unticked"
    page = session.page
    assert page.locator("h2", has_text="Hear from the garden").is_visible()
    assert page.get_by_label("Garden volunteers").is_visible()
    assert page.get_by_label("Trustees").count() == 0
    assert page.get_by_label("Email address").is_visible()


def test_an_editor_sends_contact_messages_to_a_staff_member(editor):
    staff = UserFactory(username="sam", first_name="Sam", last_name="Okafor", is_staff=True)
    session = editor("contact")
    session.start_page("Form page", "Write to us")
    session.insert_block("Contact form")
    session.page.locator("#body-0-value-title").fill("Ask us anything")
    session.page.locator("#body-0-value-subject").fill("Website enquiry")
    session.page.locator("#body-0-value-assignee").select_option(label="Sam Okafor")
    session.add_list_item("body-0-value-notify_emails")
    session.page.locator("#body-0-value-notify_emails-0-value").fill("office@example.org")
    published = session.publish(FormPage, "Write to us")

    [block] = published.body
    assert block.value["assignee"] == str(staff.pk)
    assert block.value["subject"] == "Website enquiry"
    assert list(block.value["notify_emails"]) == ["office@example.org"]
    page = session.page
    assert page.locator("h2", has_text="Ask us anything").is_visible()
    assert page.get_by_label("Your message").is_visible()
