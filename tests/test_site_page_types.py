"""A site with its own base page builds its CRM page types on the mixins
(``tests/site_pages``): its own fields stay, the forms and event listings work
the same, and the app's own page types can be hidden from editors."""

import datetime

import pytest
from django.utils import timezone
from wagtail.models import Page

from crm_core.models import Contribution
from crm_wagtail.models import DonationPage, EventIndexPage, EventPage, FormPage, MembershipPage
from tests.factories import EventFactory
from tests.site_pages.models import AppealPage, ClubEventPage, ClubEventsPage
from tests.test_forms_donation import block_value, donate, fund  # noqa: F401

pytestmark = pytest.mark.django_db


def publish(parent, page):
    parent.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def home():
    return Page.objects.get(depth=2)


def upcoming(days, title):
    starts = timezone.now() + datetime.timedelta(days=days)
    return EventFactory(title=title, starts_at=starts, ends_at=starts + datetime.timedelta(hours=1))


def test_a_gift_through_the_sites_own_page_type_is_recorded(client, fund):  # noqa: F811
    page = publish(
        home(),
        AppealPage(
            title="Roof appeal",
            slug="roof",
            strapline="Mend the roof",
            body=[("donation_form", block_value(fund))],
        ),
    )
    assert "Give today" in client.get(page.url).content.decode()

    response = donate(client, page, amount="0")

    assert response.status_code == 302
    contribution = Contribution.objects.get()
    assert contribution.total_amount == 10
    assert contribution.contact.emails.get().email == "ada@example.org"
    assert AppealPage.objects.get().strapline == "Mend the roof"


def test_the_sites_events_index_lists_its_own_and_the_apps_event_pages(client):
    index = publish(home(), ClubEventsPage(title="Fixtures", slug="fixtures", strapline="Come"))
    publish(index, ClubEventPage(title="Derby", slug="derby", event=upcoming(9, "Derby day")))
    publish(index, EventPage(title="Quiz", slug="quiz", event=upcoming(2, "Quiz night"), body=[]))

    html = client.get(index.url).content.decode()
    feed = client.get(f"{index.url}calendar/")

    assert html.index("Quiz") < html.index("Derby") and "Derby" in html
    assert feed.status_code == 200
    assert b"SUMMARY:Quiz night" in feed.content and b"SUMMARY:Derby day" in feed.content
    derby = client.get(f"{index.url}derby/calendar/")
    assert b"SUMMARY:Derby day" in derby.content


def test_the_apps_page_types_can_be_hidden_from_editors(settings):
    parent = home().specific
    app_types = (DonationPage, MembershipPage, FormPage, EventIndexPage)
    assert all(model.can_create_at(parent) for model in app_types)
    assert AppealPage.can_create_at(parent)

    settings.CRM_WAGTAIL_PAGE_TYPES = False

    assert not any(model.can_create_at(parent) for model in app_types)
    assert AppealPage.can_create_at(parent)
    assert ClubEventsPage.can_create_at(parent)
