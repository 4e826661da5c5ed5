"""iCalendar files for one event and for a feed of events."""

import datetime
import zoneinfo

import icalendar
import pytest

from crm_core.ical import event_ics, events_feed_ics
from crm_core.selectors.events import upcoming_public_events
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

LONDON = zoneinfo.ZoneInfo("Europe/London")


def only_vevent(content):
    (vevent,) = icalendar.Calendar.from_ical(content).walk("VEVENT")
    return vevent


@pytest.fixture
def summer_evening():
    return EventFactory(
        title="Summer <b>gala</b>",
        starts_at=datetime.datetime(2031, 7, 1, 19, 0, tzinfo=LONDON),
        ends_at=datetime.datetime(2031, 7, 1, 22, 30, tzinfo=LONDON),
        time_zone="Europe/London",
        location="Town Hall",
        address="1 High Street\nLeeds",
        description="<p>Dinner &amp; <script>alert(1)</script>dancing</p>",
    )


def test_start_at_seven_in_london_summer_is_six_utc(summer_evening):
    vevent = only_vevent(event_ics(summer_evening))
    start = vevent.decoded("dtstart")
    assert (start.hour, start.minute) == (19, 0)
    assert start.astimezone(datetime.UTC).hour == 18
    assert vevent["dtstart"].params["TZID"] == "Europe/London"
    assert vevent.decoded("dtend").astimezone(datetime.UTC) == datetime.datetime(
        2031, 7, 1, 21, 30, tzinfo=datetime.UTC
    )


def test_calendar_carries_the_vtimezone_it_uses(summer_evening):
    calendar = icalendar.Calendar.from_ical(event_ics(summer_evening))
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]


def test_event_in_another_zone_keeps_its_local_time():
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    event = EventFactory(
        starts_at=datetime.datetime(2031, 1, 10, 9, 0, tzinfo=tokyo),
        ends_at=datetime.datetime(2031, 1, 10, 10, 0, tzinfo=tokyo),
        time_zone="Asia/Tokyo",
    )
    start = only_vevent(event_ics(event)).decoded("dtstart")
    assert start.hour == 9
    assert start.astimezone(datetime.UTC).hour == 0


def test_text_is_plain_without_markup(summer_evening):
    vevent = only_vevent(event_ics(summer_evening))
    assert str(vevent["summary"]) == "Summer gala"
    assert "<" not in str(vevent["description"])
    assert "Dinner & " in str(vevent["description"])
    assert str(vevent["location"]) == "Town Hall, 1 High Street Leeds"


def test_uid_is_stable_for_the_event(summer_evening):
    first = only_vevent(event_ics(summer_evening))["uid"]
    summer_evening.title = "Renamed"
    summer_evening.save()
    assert only_vevent(event_ics(summer_evening))["uid"] == first


def test_url_is_included_when_given(summer_evening):
    vevent = only_vevent(event_ics(summer_evening, url="https://example.org/events/gala/"))
    assert str(vevent["url"]) == "https://example.org/events/gala/"


def test_feed_has_one_vevent_per_upcoming_public_event():
    EventFactory(title="A")
    EventFactory(title="B")
    EventFactory(title="Hidden", is_public=False)
    EventFactory(title="Off", is_active=False)
    calendar = icalendar.Calendar.from_ical(events_feed_ics(upcoming_public_events()))
    assert sorted(str(v["summary"]) for v in calendar.walk("VEVENT")) == ["A", "B"]


def test_empty_feed_is_still_a_calendar():
    calendar = icalendar.Calendar.from_ical(events_feed_ics([]))
    assert calendar.walk("VEVENT") == []
    assert str(calendar["version"]) == "2.0"
