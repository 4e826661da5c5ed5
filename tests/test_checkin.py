"""The event check-in page for the door: search, one button per person, no JavaScript."""

import pytest
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm_core.models import Activity, ParticipantStatus
from crm_core.services import events as services
from tests.conftest import grant
from tests.factories import ContactFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db


def door_staff(client, *perms):
    user = grant(UserFactory(), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


@pytest.fixture
def checker(client):
    return door_staff(client, "crm_core.check_in_participant")


def book(event, contact=None, **contact_fields):
    contact = contact or ContactFactory(**contact_fields)
    (participant,) = services.register(
        event, registered_by=contact, attendees=[{"contact": contact}]
    )
    return participant


def page_url(event):
    return reverse("crm_event_checkin", args=[event.pk])


def mark_url(event):
    return reverse("crm_event_checkin_mark", args=[event.pk])


def test_page_lists_registered_people_with_a_check_in_button(client, checker):
    event = EventFactory()
    book(event, first_name="Ann", last_name="Lee")
    response = client.get(page_url(event))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ann Lee" in html
    assert 'name="action" value="check-in"' in html
    assert "csrfmiddlewaretoken" in html
    assert "<script>" not in html.split('id="main"', 1)[-1].split("</main>")[0]


def test_page_counts_attended_of_confirmed(client, checker):
    event = EventFactory()
    services.check_in(book(event))
    book(event)
    book(event)
    services.cancel_registration(book(event))
    response = client.get(page_url(event))
    assert "Attended 1 of 3" in response.content.decode()


def test_page_leaves_out_cancelled_and_other_events_participants(client, checker):
    event = EventFactory()
    services.cancel_registration(book(event, first_name="Cancelled", last_name="Person"))
    book(EventFactory(), first_name="Elsewhere", last_name="Person")
    html = client.get(page_url(event)).content.decode()
    assert "Cancelled Person" not in html
    assert "Elsewhere Person" not in html


def test_search_finds_by_name_or_email(client, checker):
    event = EventFactory()
    book(event, first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    book(event, first_name="Bob", last_name="Stone", emails=["bob@example.net"])
    by_name = client.get(page_url(event), {"q": "stone"}).content.decode()
    assert "Bob Stone" in by_name
    assert "Ann Lee" not in by_name
    by_email = client.get(page_url(event), {"q": "ann@exa"}).content.decode()
    assert "Ann Lee" in by_email
    assert "Bob Stone" not in by_email


def test_a_nul_character_in_the_search_is_ignored_not_a_server_error(client, checker):
    # PostgreSQL refuses a NUL in a query: the page answered 500.
    event = EventFactory()
    book(event, first_name="Ann", last_name="Lee")
    book(event, first_name="Bob", last_name="Stone")
    response = client.get(page_url(event), {"q": "stone\x00"})
    assert response.status_code == 200
    assert "Bob Stone" in response.content.decode()
    assert "Ann Lee" not in response.content.decode()


def test_check_in_marks_attended_and_redirects_back_keeping_the_search(client, checker):
    event = EventFactory()
    participant = book(event, first_name="Ann", last_name="Lee")
    response = client.post(
        mark_url(event), {"participant": participant.pk, "action": "check-in", "q": "ann"}
    )
    assert response.status_code == 302
    assert response["Location"] == page_url(event) + "?q=ann"
    participant.refresh_from_db()
    assert participant.status == ParticipantStatus.ATTENDED
    assert Activity.objects.filter(contact=participant.contact, created_by=checker).exists()
    page = client.get(response["Location"]).content.decode()
    assert "Ann Lee is checked in." in page
    assert 'name="action" value="undo"' in page


def test_undo_puts_an_attended_person_back_to_registered(client, checker):
    event = EventFactory()
    participant = services.check_in(book(event))
    response = client.post(mark_url(event), {"participant": participant.pk, "action": "undo"})
    assert response.status_code == 302
    participant.refresh_from_db()
    assert participant.status == ParticipantStatus.REGISTERED


def test_check_in_twice_changes_nothing_the_second_time(client, checker):
    event = EventFactory()
    participant = book(event)
    data = {"participant": participant.pk, "action": "check-in"}
    client.post(mark_url(event), data)
    activities = Activity.objects.count()
    assert client.post(mark_url(event), data).status_code == 302
    assert Activity.objects.count() == activities


def test_page_runs_the_same_queries_whatever_the_number_of_people(
    client, checker, django_assert_num_queries
):
    event = EventFactory(capacity=None)
    for index in range(2):
        services.check_in(book(event, emails=[f"few{index}@example.org"]))
    with CaptureQueriesContext(connection) as few:
        assert client.get(page_url(event)).status_code == 200
    for index in range(15):
        participant = book(event, emails=[f"many{index}@example.org"])
        if index % 2:
            services.check_in(participant)
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(page_url(event))
    assert "Attended 9 of 17" in response.content.decode()


def test_page_needs_the_check_in_permission(client):
    door_staff(client, "crm_core.view_event", "crm_core.view_participant")
    event = EventFactory()
    participant = book(event)
    assert client.get(page_url(event)).status_code == 403
    response = client.post(mark_url(event), {"participant": participant.pk, "action": "check-in"})
    assert response.status_code == 403
    participant.refresh_from_db()
    assert participant.status == ParticipantStatus.REGISTERED


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    event = EventFactory()
    response = client.get(page_url(event))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_unknown_event_is_404(client, checker):
    assert client.get(reverse("crm_event_checkin", args=[999999])).status_code == 404


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"participant": "999999", "action": "check-in"}, 404, "not a participant of this event"),
        ({"participant": "abc", "action": "check-in"}, 400, "No participant was chosen"),
        ({"participant": "", "action": "check-in"}, 400, "No participant was chosen"),
        ({"participant": "1" * 40, "action": "check-in"}, 400, "No participant was chosen"),
        ({"participant": "١٢", "action": "check-in"}, 400, "No participant was chosen"),
        ({"action": "check-in"}, 400, "No participant was chosen"),
        ({"participant": "1", "action": "delete"}, 400, "Unknown action"),
        ({"participant": "1"}, 400, "Unknown action"),
    ],
)
def test_bad_posts_are_refused_with_a_message(client, checker, data, status, message):
    event = EventFactory()
    response = client.post(mark_url(event), data)
    assert response.status_code == status
    assert message in response.content.decode()


def test_participant_of_another_event_is_refused(client, checker):
    event = EventFactory()
    elsewhere = book(EventFactory())
    response = client.post(mark_url(event), {"participant": elsewhere.pk, "action": "check-in"})
    assert response.status_code == 404
    assert "not a participant of this event" in response.content.decode()
    elsewhere.refresh_from_db()
    assert elsewhere.status == ParticipantStatus.REGISTERED


def test_check_in_refused_by_the_service_is_shown_not_500(client, checker):
    event = EventFactory(capacity=1, waitlist_enabled=True)
    book(event)
    waiting = book(event)
    assert waiting.status == ParticipantStatus.WAITLISTED
    response = client.post(mark_url(event), {"participant": waiting.pk, "action": "check-in"})
    assert response.status_code == 409
    assert "cannot be marked attended" in response.content.decode()


def test_get_to_the_post_url_is_refused_with_a_message(client, checker):
    event = EventFactory()
    response = client.get(mark_url(event))
    assert response.status_code == 405
    assert "Use the buttons on the check-in page" in response.content.decode()


def test_non_numeric_event_id_is_404(client, checker):
    response = client.post("/admin/crm/events/abc/check-in/mark/", {"participant": "1"})
    assert response.status_code == 404


def test_buttons_are_large_enough_to_tap(client, checker):
    event = EventFactory()
    book(event)
    html = client.get(page_url(event)).content.decode()
    assert 'class="button crm-checkin__in"' in html
    assert 'href="/static/crm_wagtail/checkin.css"' in html
    assert 'name="viewport"' in html
    assert "style=" not in html.split('class="crm-checkin"')[1]  # strict CSP: no inline styles
    css = finders.find("crm_wagtail/checkin.css")
    with open(css) as stylesheet:
        rules = stylesheet.read()
    assert ".crm-checkin__list .crm-checkin__in { min-height: 56px;" in rules
    assert ".crm-checkin .button { min-height: 44px;" in rules


def test_event_listing_links_to_check_in_for_door_staff(client):
    door_staff(client, "crm_core.view_event", "crm_core.check_in_participant")
    event = EventFactory()
    html = client.get(reverse("wagtailsnippets_crm_core_event:list")).content.decode()
    assert page_url(event) in html


def test_event_listing_hides_check_in_without_the_permission(client):
    door_staff(client, "crm_core.view_event")
    event = EventFactory()
    html = client.get(reverse("wagtailsnippets_crm_core_event:list")).content.decode()
    assert page_url(event) not in html
