"""REST API of events, participant roles, fee levels and participants."""

import datetime
from decimal import Decimal

import icalendar
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from crm_core.models import Event, Participant, ParticipantRole
from crm_core.services import events as services
from tests.conftest import grant, walk_pages
from tests.factories import ContactFactory, EventFactory, EventFeeLevelFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def url(name, *args):
    return reverse(f"crm_api:{name}", args=args)


def book(event, contact=None):
    contact = contact or ContactFactory()
    (participant,) = services.register(
        event, registered_by=contact, attendees=[{"contact": contact}]
    )
    return participant


def event_body(**overrides):
    starts = timezone.now() + datetime.timedelta(days=10)
    body = {
        "title": "Spring talk",
        "slug": "spring-talk",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + datetime.timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/London",
        "capacity": 40,
        "currency": "GBP",
    }
    body.update(overrides)
    return body


# -- events -------------------------------------------------------------------------------------


def test_create_event_returns_it_with_seats(api):
    response = api.post(url("event-list"), event_body(), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["seats_taken"] == 0
    assert response.json()["seats_left"] == 40


def test_event_list_shows_seats_taken_and_left(api):
    event = EventFactory(capacity=3)
    book(event)
    row = api.get(url("event-list")).json()["results"][0]
    assert (row["seats_taken"], row["seats_left"]) == (1, 2)


def test_event_shows_its_fee_levels(api):
    level = EventFeeLevelFactory(amount=Decimal("12.50"))
    data = api.get(url("event-detail", level.event.pk)).json()
    assert data["fee_levels"][0]["label"] == level.label
    assert data["fee_levels"][0]["amount"] == "12.50"


def test_roles_offered_are_set_on_create(api):
    speaker = ParticipantRole.objects.get(slug="speaker")
    response = api.post(url("event-list"), event_body(roles=[speaker.pk]), format="json")
    assert response.status_code == 201
    assert list(Event.objects.get(slug="spring-talk").roles.all()) == [speaker]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity", -1),
        ("capacity", 10**12),
        ("capacity", "lots"),
        ("time_zone", "Mars/Olympus_Mons"),
        ("time_zone", "x" * 5000),
        ("title", "x" * 100_000),
        ("currency", "XXX1"),
        ("max_seats_per_registration", 0),
        ("waitlist_offer_hours", 100_000),
    ],
)
def test_bad_event_values_are_400_naming_the_field(api, field, value):
    response = api.post(url("event-list"), event_body(**{field: value}), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Event.objects.filter(slug="spring-talk").exists()


def test_event_ending_before_it_starts_is_400(api):
    starts = timezone.now() + datetime.timedelta(days=10)
    body = event_body(ends_at=(starts - datetime.timedelta(hours=1)).isoformat())
    body["starts_at"] = starts.isoformat()
    response = api.post(url("event-list"), body, format="json")
    assert response.status_code == 400
    assert "ends_at" in response.json()


@pytest.mark.parametrize(
    "starts_at, ends_at, time_zone",
    [
        ("9999-12-31T20:00:00Z", "9999-12-31T21:00:00Z", "Pacific/Kiritimati"),
        ("0001-01-01T01:00:00Z", "0001-01-01T02:00:00Z", "America/New_York"),
    ],
)
def test_event_at_the_edge_of_the_calendar_is_400(api, starts_at, ends_at, time_zone):
    body = event_body(starts_at=starts_at, ends_at=ends_at, time_zone=time_zone)
    response = api.post(url("event-list"), body, format="json")
    assert response.status_code == 400
    assert response.json()["starts_at"] == ["Give a date between 1900-01-01 and 2199-12-31."]
    assert not Event.objects.filter(slug="spring-talk").exists()


def test_registration_opening_past_2199_is_400(api):
    body = event_body(registration_opens_at="9999-12-31T20:00:00Z")
    response = api.post(url("event-list"), body, format="json")
    assert response.status_code == 400
    assert "registration_opens_at" in response.json()


def test_event_with_participants_cannot_be_deleted(api):
    event = EventFactory()
    book(event)
    response = api.delete(url("event-detail", event.pk))
    assert response.status_code == 409
    assert Event.objects.filter(pk=event.pk).exists()


# -- fee levels -------------------------------------------------------------------------------


def test_fee_level_with_negative_amount_is_400(api):
    event = EventFactory()
    response = api.post(
        url("event-fee-level-list"),
        {"event": event.pk, "label": "Odd", "amount": "-5"},
        format="json",
    )
    assert response.status_code == 400
    assert "amount" in response.json()


def test_fee_level_with_absurd_amount_is_400(api):
    response = api.post(
        url("event-fee-level-list"),
        {"event": EventFactory().pk, "label": "Gold", "amount": "1e15"},
        format="json",
    )
    assert response.status_code == 400
    assert "amount" in response.json()


def test_fee_level_is_created_in_the_events_currency(api):
    response = api.post(
        url("event-fee-level-list"),
        {"event": EventFactory(currency="JPY").pk, "label": "Standard", "amount": "1500"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["amount"] == "1500"


def test_fee_level_amount_with_more_places_than_currency_is_400(api):
    response = api.post(
        url("event-fee-level-list"),
        {"event": EventFactory(currency="JPY").pk, "label": "Standard", "amount": "15.5"},
        format="json",
    )
    assert response.status_code == 400


# -- registering ------------------------------------------------------------------------------


def register_body(*contacts, **attendee):
    return {
        "registered_by": contacts[0].pk,
        "attendees": [{"contact": c.pk, **attendee} for c in contacts],
    }


def test_register_returns_201_with_participants(api):
    event = EventFactory()
    ann, bob = ContactFactory(), ContactFactory()
    response = api.post(url("event-register", event.pk), register_body(ann, bob), format="json")
    assert response.status_code == 201, response.json()
    assert [row["status"] for row in response.json()] == ["registered", "registered"]
    assert Participant.objects.filter(event=event).count() == 2


def test_register_with_fee_level_is_pending_payment(api):
    level = EventFeeLevelFactory(amount=Decimal("8.00"))
    response = api.post(
        url("event-register", level.event.pk),
        register_body(ContactFactory(), fee_level=level.pk),
        format="json",
    )
    assert response.status_code == 201
    assert response.json()[0]["status"] == "pending_payment"
    assert response.json()[0]["fee_amount"] == "8.00"


def test_register_for_full_event_is_409_with_message(api):
    event = EventFactory(capacity=1, waitlist_enabled=False)
    book(event)
    response = api.post(
        url("event-register", event.pk), register_body(ContactFactory()), format="json"
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "This event is full.", "code": "EventFull"}


def test_register_out_of_window_is_409(api):
    event = EventFactory(registration_closes_at=timezone.now() - datetime.timedelta(hours=1))
    response = api.post(
        url("event-register", event.pk), register_body(ContactFactory()), format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "RegistrationClosed"


def test_register_twice_is_409(api):
    event = EventFactory()
    contact = ContactFactory()
    book(event, contact)
    response = api.post(url("event-register", event.pk), register_body(contact), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "AlreadyRegistered"


def test_register_too_many_attendees_is_400(api):
    event = EventFactory(max_seats_per_registration=2)
    contacts = [ContactFactory() for _ in range(3)]
    response = api.post(url("event-register", event.pk), register_body(*contacts), format="json")
    assert response.status_code == 400
    assert "attendees" in response.json()


def test_register_with_fee_level_of_another_event_is_400(api):
    event = EventFactory()
    other = EventFeeLevelFactory(amount=Decimal("3.00"))
    response = api.post(
        url("event-register", event.pk),
        register_body(ContactFactory(), fee_level=other.pk),
        format="json",
    )
    assert response.status_code == 400
    assert "attendees.0.fee_level" in response.json()


@pytest.mark.parametrize(
    "attendees",
    ["everyone", {"contact": 1}, [], [7], [{"contact": "x" * 10_000}], [{"contact": 10**30}]],
)
def test_register_with_malformed_attendees_is_400(api, attendees):
    event = EventFactory()
    response = api.post(
        url("event-register", event.pk),
        {"registered_by": None, "attendees": attendees},
        format="json",
    )
    assert response.status_code == 400
    assert "attendees" in response.json()
    assert not Participant.objects.exists()


def test_register_with_unknown_attendee_field_is_400(api):
    response = api.post(
        url("event-register", EventFactory().pk),
        register_body(ContactFactory(), status="attended"),
        format="json",
    )
    assert response.status_code == 400


def test_register_with_huge_answer_is_400(api):
    response = api.post(
        url("event-register", EventFactory().pk),
        register_body(ContactFactory(), answers={"diet": "x" * 100_000}),
        format="json",
    )
    assert response.status_code == 400


def test_register_needs_add_participant_permission():
    user = grant(UserFactory(), "crm_core.view_event")
    client = APIClient()
    client.force_authenticate(user)
    event = EventFactory()
    body = register_body(ContactFactory())
    assert client.post(url("event-register", event.pk), body, format="json").status_code == 403
    grant(user, "crm_core.add_participant")
    assert client.post(url("event-register", event.pk), body, format="json").status_code == 201


def test_anonymous_cannot_list_events():
    EventFactory()
    assert APIClient().get(url("event-list")).status_code == 401


# -- participants -------------------------------------------------------------------------------


def test_participants_cannot_be_created_or_edited_directly(api):
    participant = book(EventFactory())
    assert api.post(url("participant-list"), {}, format="json").status_code == 405
    response = api.patch(
        url("participant-detail", participant.pk), {"status": "attended"}, format="json"
    )
    assert response.status_code == 405
    assert Participant.objects.get(pk=participant.pk).status == "registered"


def test_participants_filter_by_event_and_status(api):
    event = EventFactory(capacity=1)
    book(event)
    waiting = book(event)
    book(EventFactory())
    rows = api.get(url("participant-list"), {"event": event.pk, "status": "waitlisted"}).json()
    assert [row["id"] for row in rows["results"]] == [waiting.pk]


@pytest.mark.parametrize("ordering", ["waitlisted_at", "-waitlisted_at"])
def test_paging_by_waitlisted_at_returns_each_participant_once(api, ordering):
    event = EventFactory(capacity=3)
    seated = [book(event).pk for _ in range(3)]
    waiting = book(event)
    assert waiting.status == "waitlisted"
    ids = walk_pages(api, url("participant-list"), {"ordering": ordering, "page_size": 1})
    # Never waitlisted sorts as latest: last going up, first going down.
    if ordering == "waitlisted_at":
        assert ids == [waiting.pk, *seated]
    else:
        assert ids == [*reversed(seated), waiting.pk]


def test_cancel_action_cancels_and_offers_the_seat(api):
    event = EventFactory(capacity=1)
    seated, waiting = book(event), book(event)
    response = api.post(
        url("participant-cancel", seated.pk), {"reason": "<b>Ill</b>"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_reason"] == "Ill"
    assert Participant.objects.get(pk=waiting.pk).offer_expires_at is not None


def test_accept_offer_action_registers(api):
    event = EventFactory(capacity=1)
    seated, waiting = book(event), book(event)
    services.cancel_registration(seated)
    response = api.post(url("participant-accept-offer", waiting.pk))
    assert response.status_code == 200
    assert response.json()["status"] == "registered"


def test_accept_offer_without_offer_is_409(api):
    event = EventFactory(capacity=1)
    book(event)
    response = api.post(url("participant-accept-offer", book(event).pk))
    assert response.status_code == 409


def test_check_in_needs_the_check_in_permission():
    participant = book(EventFactory())
    user = grant(UserFactory(), "crm_core.view_participant", "crm_core.change_participant")
    client = APIClient()
    client.force_authenticate(user)
    assert client.post(url("participant-check-in", participant.pk)).status_code == 403
    grant(user, "crm_core.check_in_participant")
    response = client.post(url("participant-check-in", participant.pk))
    assert response.status_code == 200
    assert response.json()["status"] == "attended"


def test_check_in_of_waitlisted_is_409(api):
    event = EventFactory(capacity=1)
    book(event)
    response = api.post(url("participant-check-in", book(event).pk))
    assert response.status_code == 409
    assert response.json()["code"] == "InvalidTransition"


def test_no_show_action_marks_no_show(api):
    response = api.post(url("participant-no-show", book(EventFactory()).pk))
    assert response.json()["status"] == "no_show"


def test_promote_waitlist_action_returns_offered(api):
    event = EventFactory(capacity=1)
    book(event)
    waiting = book(event)
    Event.objects.filter(pk=event.pk).update(capacity=2)
    response = api.post(url("event-promote-waitlist", event.pk))
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [waiting.pk]


# -- iCalendar ----------------------------------------------------------------------------------


def test_event_ics_is_a_calendar_in_the_events_zone(api):
    event = EventFactory(
        title="Summer gala",
        starts_at=datetime.datetime(2031, 7, 1, 18, 0, tzinfo=datetime.UTC),
        ends_at=datetime.datetime(2031, 7, 1, 21, 0, tzinfo=datetime.UTC),
        time_zone="Europe/London",
    )
    response = api.get(url("event-ics", event.pk))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    (vevent,) = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    assert str(vevent["summary"]) == "Summer gala"
    assert vevent.decoded("dtstart").hour == 19
    assert vevent["dtstart"].params["TZID"] == "Europe/London"


def test_event_ics_answers_calendar_apps_asking_for_text_calendar(api):
    response = api.get(url("event-ics", EventFactory().pk), HTTP_ACCEPT="text/calendar")
    assert response.status_code == 200


def test_event_ics_of_unknown_event_is_404_json(api):
    response = api.get(url("event-ics", 999999))
    assert response.status_code == 404
    assert "detail" in response.json()


def test_feed_lists_upcoming_public_events_only(api):
    upcoming = EventFactory(title="Upcoming")
    EventFactory(title="Private", is_public=False)
    EventFactory(
        title="Past",
        starts_at=timezone.now() - datetime.timedelta(days=3),
        ends_at=timezone.now() - datetime.timedelta(days=3) + datetime.timedelta(hours=1),
    )
    response = api.get(url("event-feed"))
    assert response.status_code == 200
    summaries = [
        str(v["summary"]) for v in icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    ]
    assert summaries == [upcoming.title]


def far_future_event(**fields):
    """An event saved before event times were bounded, at the end of year 9999."""
    event = EventFactory(time_zone="Pacific/Kiritimati", **fields)
    Event.objects.filter(pk=event.pk).update(
        starts_at=datetime.datetime(9999, 12, 31, 20, 0, tzinfo=datetime.UTC),
        ends_at=datetime.datetime(9999, 12, 31, 21, 0, tzinfo=datetime.UTC),
    )
    return event


def test_ics_of_an_event_too_late_for_its_zone_is_served_in_utc(api):
    response = api.get(url("event-ics", far_future_event().pk))
    assert response.status_code == 200
    start = icalendar.Calendar.from_ical(response.content).walk("VEVENT")[0].decoded("dtstart")
    assert start == datetime.datetime(9999, 12, 31, 20, 0, tzinfo=datetime.UTC)


def test_feed_with_an_event_too_late_for_its_zone_is_served(api):
    upcoming = EventFactory(title="Upcoming")
    far_future_event(title="Far future")
    response = api.get(url("event-feed"))
    assert response.status_code == 200
    summaries = [
        str(v["summary"]) for v in icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    ]
    assert summaries == [upcoming.title, "Far future"]


def test_feed_needs_authentication():
    assert APIClient().get(url("event-feed")).status_code == 401


# -- constant queries -------------------------------------------------------------------------


def count_queries(client, path):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx)


def test_event_list_queries_do_not_grow_with_events(api):
    first = EventFactory()
    EventFeeLevelFactory(event=first)
    book(first)
    few = count_queries(api, url("event-list"))
    for _ in range(5):
        event = EventFactory()
        EventFeeLevelFactory(event=event)
        event.roles.set(ParticipantRole.objects.all())
        book(event)
        book(event)
    assert count_queries(api, url("event-list")) == few


def test_participant_list_queries_do_not_grow_with_participants(api):
    event = EventFeeLevelFactory(amount=Decimal("0")).event
    book(event)
    few = count_queries(api, url("participant-list"))
    for _ in range(8):
        book(event)
    assert count_queries(api, url("participant-list")) == few


def test_participant_fee_is_shown_in_the_event_currency_places(api):
    level = EventFeeLevelFactory(event=EventFactory(currency="JPY"), amount=Decimal("1500"))
    response = api.post(
        url("event-register", level.event.pk),
        register_body(ContactFactory(), fee_level=level.pk),
        format="json",
    )
    assert response.status_code == 201
    assert response.json()[0]["fee_amount"] == "1500"


def test_the_currency_of_an_event_with_prices_cannot_change(api):
    level = EventFeeLevelFactory(amount=Decimal("12.50"))
    response = api.patch(url("event-detail", level.event.pk), {"currency": "JPY"}, format="json")
    assert response.status_code == 400
    assert "currency" in response.json()
    assert Event.objects.get(pk=level.event.pk).currency == "GBP"


def test_the_currency_of_a_free_event_may_change(api):
    event = EventFeeLevelFactory(amount=Decimal("0")).event
    book(event)
    response = api.patch(url("event-detail", event.pk), {"currency": "EUR"}, format="json")
    assert response.status_code == 200
    assert Event.objects.get(pk=event.pk).currency == "EUR"
