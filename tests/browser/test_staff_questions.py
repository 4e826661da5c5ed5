"""A new staff member answers the four questions of docs/staff.md in the admin, in a few clicks.

"Who gave last year but not this year?", "Which memberships lapse next
month?", "How full is the next event?" and "Show me everything about this
donor", then puts the lapsed donors in a group with a bulk action and
checks a guest in on a phone.
"""

import datetime
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from crm_core.models import GroupMembership, Participant
from crm_core.services import contributions as gifts
from crm_core.services import events
from crm_core.services.memberships import join
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_editor_forms import log_in
from tests.factories import ContactFactory, EventFactory, GroupFactory, MembershipTypeFactory

pytestmark = pytest.mark.browser


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"staff-questions-{name}.png"), full_page=True)


def gave(contact, amount, when):
    contribution = gifts.create_pending(
        contact, currency="GBP", lines=[{"amount": Decimal(amount), "label": "Gift"}]
    )
    return gifts.complete(contribution, received_at=when)


@pytest.fixture
def office(reference_data):
    now = timezone.now()
    last_year = now.replace(year=now.year - 1, month=6, day=15)
    lapsed = ContactFactory(first_name="Lena", last_name="Lapsed", emails=["lena@example.org"])
    gave(lapsed, "40.00", last_year)
    loyal = ContactFactory(first_name="Lou", last_name="Loyal", emails=["lou@example.org"])
    gave(loyal, "25.00", last_year)
    gave(loyal, "30.00", now - datetime.timedelta(days=1))
    today = timezone.localdate()
    member = ContactFactory(first_name="Mia", last_name="Member", emails=["mia@example.org"])
    # A one-year term that started 350 days ago ends in about two weeks.
    join(
        member,
        MembershipTypeFactory(name="Friends"),
        join_date=today - datetime.timedelta(days=350),
    )
    event = EventFactory(title="Spring social", capacity=4)
    guest = ContactFactory(first_name="Gus", last_name="Guest", emails=["gus@example.org"])
    events.register(event, registered_by=guest, attendees=[{"contact": guest}])
    GroupFactory(name="Lapsed appeal", slug="lapsed-appeal")
    return {"lapsed": lapsed, "loyal": loyal, "member": member, "event": event, "guest": guest}


def test_staff_answer_the_daily_questions(office, demo_site, live_server, browser_page):
    page = browser_page
    log_in(page, live_server, demo_site)

    # Which memberships lapse next month? How full is the next event? (the dashboard)
    panel = page.locator("section", has_text="Memberships expiring in the next 30 days").first
    assert "Mia Member" in panel.inner_text()
    events_panel = page.locator("section", has_text="Upcoming events").first
    assert re.search(r"Spring social.*1\s*/\s*4", events_panel.inner_text(), re.S)
    shot(page, "1-dashboard")

    # Who gave last year but not this year? (Reports > Lapsed donors)
    page.get_by_role("button", name="Reports").click()
    page.get_by_role("link", name="Lapsed donors").click()
    table = page.locator("table.listing")
    table.get_by_text("Lena Lapsed").wait_for()
    assert "Lou Loyal" not in table.inner_text()
    shot(page, "2-lybunt")

    # Everything about this donor: the contact summary from the report.
    table.get_by_role("link", name="Lena Lapsed").click()
    page.get_by_text("40.00").first.wait_for()
    summary = page.locator("main").inner_text()
    assert "lena@example.org" in summary
    shot(page, "3-summary")

    # Put the lapsed donor in a group for an appeal: a bulk action on the contacts.
    page.goto(f"{live_server.url}/admin/snippets/crm_core/contact/?q=Lapsed")
    row = page.locator("tr", has_text="Lena Lapsed")
    row.locator("input[type=checkbox]").check()
    page.get_by_role("link", name="Add the selected contacts to a group").click()
    page.select_option("select[name=group]", label="Lapsed appeal")
    page.locator("main button[type=submit]").first.click()
    page.get_by_text("added to Lapsed appeal").wait_for()
    shot(page, "4-bulk-group")
    assert GroupMembership.objects.filter(
        contact=office["lapsed"], group__slug="lapsed-appeal"
    ).exists()


def test_door_staff_check_a_guest_in_on_a_phone(office, demo_site, live_server, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server, demo_site)
    page.goto(f"{live_server.url}/admin/crm/events/{office['event'].pk}/check-in/")
    page.get_by_role("searchbox").fill("Gus")
    page.get_by_role("searchbox").press("Enter")
    page.get_by_role("button", name=re.compile("Check in")).first.click()
    page.get_by_text(re.compile("checked in", re.I)).first.wait_for()
    shot(page, "5-check-in")
    participant = Participant.objects.get(contact=office["guest"])
    assert participant.status == "attended"
