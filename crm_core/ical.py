"""iCalendar (RFC 5545) files for events: one event, or a feed of several.

``event_ics(event)`` and ``events_feed_ics(events)`` return bytes ready to
serve as ``text/calendar``. Times are written in the event's own time zone
(``DTSTART;TZID=Europe/London:...``) with a VTIMEZONE for each zone used, so
calendar apps show the right local time wherever the reader is. Each event's
UID is stable (derived from its id and creation time), so re-importing or
refreshing a feed updates the entry instead of duplicating it.

Used by the REST API (staff) and by the public event pages of crm_wagtail.
"""

import datetime

import icalendar
from django.conf import settings

from .dates import EARLIEST_DATE, LATEST_DATE, in_zone
from .sanitize import plain_text

PRODID = "-//Wagtail CRM suite//Events//EN"


def _uid_domain():
    for host in getattr(settings, "ALLOWED_HOSTS", []):
        host = host.lstrip(".")
        if host and "*" not in host:
            return host
    return "localhost"


def event_uid(event):
    """A UID that stays the same for the life of the event."""
    created = int(event.created_at.timestamp())
    return f"crm-event-{event.pk}-{created}@{_uid_domain()}"


def _location(event):
    parts = [plain_text(event.location), plain_text(event.address)]
    text = ", ".join(part for part in parts if part)
    return text or event.online_url


def _description(event):
    parts = [plain_text(event.summary), plain_text(event.description, multiline=True)]
    if event.online_url:
        parts.append(event.online_url)
    return "\n\n".join(part for part in parts if part)


def _vevent(event, url=""):
    zone = event.zone
    vevent = icalendar.Event()
    vevent.add("uid", event_uid(event))
    # DTSTAMP: when this description last changed, so a feed is byte-stable.
    vevent.add("dtstamp", event.updated_at.astimezone(datetime.UTC))
    vevent.add("last-modified", event.updated_at.astimezone(datetime.UTC))
    vevent.add("dtstart", in_zone(event.starts_at, zone))
    vevent.add("dtend", in_zone(event.ends_at, zone))
    vevent.add("summary", plain_text(event.title))
    location = _location(event)
    if location:
        vevent.add("location", location)
    description = _description(event)
    if description:
        vevent.add("description", description)
    url = url or event.online_url
    if url:
        vevent.add("url", url)
    vevent.add("status", "CONFIRMED" if event.is_active else "CANCELLED")
    return vevent


def _calendar(name=""):
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if name:
        calendar.add("x-wr-calname", plain_text(name))
    return calendar


def _finish(calendar, events):
    if events:
        # Clamped, so an event saved before its times were bounded (near year
        # 1 or 9999) neither overflows here nor asks for millennia of rules.
        first = max(min(event.starts_at for event in events).date(), EARLIEST_DATE)
        last = min(max(event.ends_at for event in events).date(), LATEST_DATE)
        first -= datetime.timedelta(days=366)
        last += datetime.timedelta(days=366)
        calendar.add_missing_timezones(first_date=first, last_date=last)
    return calendar.to_ical()


def event_ics(event, *, url=""):
    """A VCALENDAR with one VEVENT for ``event``; ``url`` is its public page, if any."""
    calendar = _calendar()
    calendar.add_component(_vevent(event, url))
    return _finish(calendar, [event])


def events_feed_ics(events, *, name="", url_for=None):
    """A VCALENDAR with one VEVENT per event (e.g. ``upcoming_public_events()``).

    ``url_for(event)`` may return each event's public page address.
    """
    events = list(events)
    calendar = _calendar(name)
    for event in events:
        calendar.add_component(_vevent(event, url_for(event) if url_for else ""))
    return _finish(calendar, events)
