"""The events index page (upcoming events below it, soonest first, and a calendar
feed) and an event page's own calendar file."""

import datetime

import icalendar
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from wagtail.models import Page, PageViewRestriction

from crm_core.services.events import register
from crm_wagtail.models import EventIndexPage, EventPage
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def index():
    page = EventIndexPage(title="What's on", slug="whats-on", intro="<p>Come along.</p>")
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    return page


def add_event_page(parent, event, *, publish=True):
    page = EventPage(title=event.title, slug=event.slug, event=event, body=[])
    parent.add_child(instance=page)
    revision = page.save_revision()
    if publish:
        revision.publish()
    else:
        page.unpublish()
    return page


def in_days(days, **fields):
    starts = timezone.now() + datetime.timedelta(days=days)
    return EventFactory(starts_at=starts, ends_at=starts + datetime.timedelta(hours=2), **fields)


def book(event):
    contact = ContactFactory()
    register(event, registered_by=contact, attendees=[{"contact": contact}])


def vevents(content):
    calendar = icalendar.Calendar.from_ical(content)
    return list(calendar.walk("VEVENT"))


def test_the_index_lists_live_public_upcoming_events_soonest_first_with_seats_left(client, index):
    later = in_days(20, title="Quiz night", capacity=30)
    sooner = in_days(3, title="River clean-up", location="Mill Lane")
    uncapped = in_days(10, title="Open day", capacity=None)
    add_event_page(index, later)
    add_event_page(index, sooner)
    add_event_page(index, uncapped)
    book(later)
    add_event_page(index, in_days(-5, title="Last month's walk"))
    add_event_page(index, in_days(4, title="Draft event"), publish=False)
    add_event_page(index, in_days(5, title="Members only", is_public=False))
    add_event_page(index, in_days(6, title="Called off", is_active=False))
    restricted = add_event_page(index, in_days(7, title="Password party"))
    PageViewRestriction.objects.create(page=restricted, restriction_type="password", password="x")

    response = client.get(index.url)
    html = response.content.decode()

    assert response.status_code == 200
    shown = [title for title in ("River clean-up", "Open day", "Quiz night") if title in html]
    assert shown == ["River clean-up", "Open day", "Quiz night"]
    assert html.index("River clean-up") < html.index("Open day") < html.index("Quiz night")
    for hidden in ("Last month", "Draft event", "Members only", "Called off", "Password party"):
        assert hidden not in html
    assert "29 seats left" in html
    assert "Mill Lane" in html
    assert f'href="{index.url}calendar/"' in html
    assert 'rel="alternate" type="text/calendar"' in html


def test_a_full_event_says_so(client, index):
    event = in_days(3, title="Tiny talk", capacity=1)
    add_event_page(index, event)
    book(event)
    assert "Full" in client.get(index.url).content.decode()


def test_no_upcoming_events_says_so(client, index):
    html = client.get(index.url).content.decode()
    assert "No events are coming up just now." in html


def test_visitor_text_in_event_titles_is_escaped(client, index):
    add_event_page(index, in_days(3, title="<script>alert(1)</script>", location="<b>Hall</b>"))
    html = client.get(index.url).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Hall&lt;/b&gt;" in html


def test_the_index_runs_the_same_queries_for_one_event_or_many(
    client, index, django_assert_num_queries
):
    add_event_page(index, in_days(3))
    client.get(index.url)  # warm: site root paths cached as on a live site
    with CaptureQueriesContext(connection) as one:
        assert client.get(index.url).status_code == 200
    for days in range(4, 10):
        add_event_page(index, in_days(days))
    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get(index.url)
    assert response.content.decode().count('class="event-list__item"') == 7


def test_the_feed_holds_the_listed_events_with_their_pages(client, index):
    sooner = in_days(3, title="River clean-up")
    later = in_days(20, title="Quiz night")
    add_event_page(index, later)
    add_event_page(index, sooner)
    add_event_page(index, in_days(-5, title="Last month's walk"))

    response = client.get(f"{index.url}calendar/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    events = vevents(response.content)
    assert [str(e["summary"]) for e in events] == ["River clean-up", "Quiz night"]
    assert str(events[0]["url"]) == EventPage.objects.get(event=sooner).get_full_url()
    assert events[0].decoded("dtstart") == sooner.starts_at.replace(microsecond=0)


def test_an_event_page_offers_its_own_calendar_file(client, index):
    event = in_days(3, title="River clean-up", location="Mill Lane")
    page = add_event_page(index, event)

    html = client.get(page.url).content.decode()
    assert f'href="{page.url}calendar/"' in html
    response = client.get(f"{page.url}calendar/")

    assert response.status_code == 200
    assert f'filename="{event.slug}.ics"' in response["Content-Disposition"]
    [vevent] = vevents(response.content)
    assert str(vevent["summary"]) == "River clean-up"
    assert "Mill Lane" in str(vevent["location"])
    assert str(vevent["url"]) == page.get_full_url()


def test_an_unknown_path_below_the_index_is_not_found(client, index):
    assert client.get(f"{index.url}nothing-here/").status_code == 404
