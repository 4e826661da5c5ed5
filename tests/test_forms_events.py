"""The event registration form on an EventPage: seats, guests, waiting list, closed events."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.models import Page

from crm_core.models import Contact, Contribution, Participant
from crm_core.services.events import register as register_people
from crm_wagtail.blocks import EventRegistrationFormBlock
from crm_wagtail.models import EventPage
from tests.factories import ContactFactory, EventFactory, EventFeeLevelFactory

pytestmark = pytest.mark.django_db

SUBMIT = "/crm/forms/submit/"


@pytest.fixture
def event(db):
    event = EventFactory(title="Quiz night", capacity=3, max_seats_per_registration=4)
    EventFeeLevelFactory(event=event, label="Standard", amount=Decimal("12.00"), is_default=True)
    return event


def event_page(event, **form):
    page = EventPage(
        title=event.title,
        slug=event.slug,
        event=event,
        body=[
            (
                "event_registration_form",
                {
                    "title": "Book",
                    "event": event,
                    "max_attendees": 3,
                    "payment_methods": ["offline"],
                    "consent": [],
                    **form,
                },
            )
        ],
    )
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


@pytest.fixture
def page(event):
    return event_page(event)


def hidden_fields(client, page):
    html = client.get(page.url).content.decode()
    fields = {}
    for name in ("placement", "token"):
        marker = f'name="{name}" value="'
        start = html.index(marker) + len(marker)
        fields[name] = html[start : html.index('"', start)]
    return fields


def register(client, page, fields=None, **data):
    level = page.event.fee_levels.first()
    posted = {
        **(fields or hidden_fields(client, page)),
        "fee_level": str(level.pk) if level else "",
        "seats": "1",
        "first_name": "Alan",
        "last_name": "Turing",
        "email": "alan@example.org",
        "payment_method": "offline",
        **data,
    }
    return client.post(SUBMIT, posted)


def test_the_page_shows_when_where_price_and_seats_left(client, page):
    html = client.get(page.url).content.decode()
    assert "Quiz night" in html
    assert "Standard: 12.00 GBP" in html
    assert "3 seats left." in html


def test_a_visitor_books_for_themselves_and_a_guest_and_owes_both_fees(client, page):
    response = register(
        client, page, seats="2", guest_2_first_name="Joan", guest_2_last_name="Clarke"
    )
    assert response.status_code == 302
    participants = Participant.objects.order_by("pk")
    assert [p.contact.display_name for p in participants] == ["Alan Turing", "Joan Clarke"]
    assert {p.status for p in participants} == {"pending_payment"}
    assert participants[1].registered_by == participants[0].contact
    contribution = Contribution.objects.get()
    assert contribution.total_amount == Decimal("24.00")
    thanks = client.get(response["Location"]).content.decode()
    assert (
        "Your places are held; they are confirmed when your payment of 24.00 GBP arrives." in thanks
    )


def test_a_guest_without_a_name_is_refused_and_nothing_is_booked(client, page):
    response = register(client, page, seats="2")
    assert response.status_code == 400
    assert "Give this person&#x27;s name." in response.content.decode()
    assert (Participant.objects.count(), Contact.objects.count()) == (0, 0)


def test_when_full_the_whole_group_joins_the_waiting_list_and_pays_nothing(client, page):
    register(client, page, seats="3", guest_2_first_name="B", guest_3_first_name="C")
    response = register(client, page, email="late@example.org", first_name="Late")
    assert Participant.objects.filter(status="waitlisted").count() == 1
    assert Contribution.objects.count() == 1
    thanks = client.get(response["Location"]).content.decode()
    assert "you are on the waiting list" in thanks


def test_a_closed_event_shows_why_and_refuses_a_submission(client, event):
    page = event_page(event)
    fields = hidden_fields(client, page)
    event.registration_closes_at = timezone.now() - datetime.timedelta(minutes=1)
    event.save()
    assert "Registration for this event has closed." in client.get(page.url).content.decode()
    response = register(client, page, fields)
    assert response.status_code == 409
    assert "Registration for this event has closed." in response.content.decode()
    assert not Participant.objects.exists()


def test_registering_twice_is_refused_with_a_clear_message(client, page):
    register(client, page)
    response = register(client, page)
    assert response.status_code == 409
    assert Participant.objects.count() == 1
    assert Contribution.objects.count() == 1


@pytest.mark.parametrize(
    "typed",
    [
        {"email": "victoria@example.org"},
        {"seats": "2", "guest_2_first_name": "Joan", "guest_2_email": "victoria@example.org"},
    ],
    ids=["registrant", "guest"],
)
def test_an_email_already_registered_is_refused_without_naming_its_contact(client, page, typed):
    victoria = ContactFactory(
        first_name="Victoria", last_name="Secretname", emails=["victoria@example.org"]
    )
    register_people(page.event, registered_by=victoria, attendees=[{"contact": victoria}])
    response = register(client, page, **typed)
    html = response.content.decode()
    assert response.status_code == 409
    assert "Someone in this registration is already registered for this event." in html
    assert "Victoria" not in html and "Secretname" not in html
    assert Participant.objects.count() == 1


def test_a_guest_given_the_registrants_email_is_asked_for_their_own(client, page):
    response = register(
        client, page, seats="2", guest_2_first_name="Kid", guest_2_email="ALAN@example.org"
    )
    assert response.status_code == 400
    assert (
        "Give each person their own email address, or leave it empty." in response.content.decode()
    )
    assert not Participant.objects.exists()


def test_a_free_event_asks_for_no_payment(client, db):
    free = EventFactory(title="Open day", capacity=None)
    EventFeeLevelFactory(event=free, label="Free", amount=Decimal("0"))
    page = event_page(free, max_attendees=1)
    html = client.get(page.url).content.decode()
    assert "How to pay" not in html
    assert "<dd>Free</dd>" in html  # not "Free: free"
    response = register(client, page, payment_method="")
    assert response.status_code == 302
    assert Participant.objects.get().status == "registered"
    assert not Contribution.objects.exists()
    assert "You are registered." in client.get(response["Location"]).content.decode()


def test_editors_cannot_allow_more_people_than_the_event_takes_at_once(event):
    block = EventRegistrationFormBlock()
    value = block.to_python(
        {"title": "x", "event": event.pk, "max_attendees": 9, "payment_methods": ["offline"]}
    )
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(value)
    assert "max_attendees" in info.value.block_errors


def test_editors_cannot_choose_an_inactive_event(event):
    event.is_active = False
    event.save()
    block = EventRegistrationFormBlock()
    value = block.to_python(
        {"title": "x", "event": event.pk, "max_attendees": 1, "payment_methods": ["offline"]}
    )
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(value)
    assert "event" in info.value.block_errors


def test_the_form_of_an_event_deactivated_after_publishing_says_registration_is_not_open(
    client, page, event
):
    event.is_active = False
    event.save()
    response = client.get(page.url)
    assert response.status_code == 200
    assert "Registration for this event is not open." in response.content.decode()


def test_a_long_event_title_and_ticket_name_still_take_paid_registrations(client, event):
    event.title = "The annual general meeting and summer garden party " * 5
    event.save()
    event.fee_levels.update(label="Standard ticket, with supper and a glass of wine " * 3)
    response = register(client, event_page(event))
    assert response.status_code == 302
    line = Contribution.objects.get().line_items.get()
    assert line.label.startswith("The annual general meeting")
    assert Participant.objects.get().status == "pending_payment"


# -- the event's own questions ----------------------------------------------------------------


@pytest.fixture
def questions_page(event):
    from crm_core.models import EventQuestion
    from tests.factories import CustomFieldFactory

    diet = CustomFieldFactory(
        name="diet",
        label="Dietary needs",
        field_type="choice",
        choices=["None", "Vegetarian", "Vegan"],
    )
    shirt = CustomFieldFactory(name="tshirt_size", label="T-shirt size", field_type="text")
    EventQuestion.objects.create(event=event, field=diet, is_required=True, weight=0)
    EventQuestion.objects.create(event=event, field=shirt, is_required=False, weight=1)
    return event_page(event)


def test_the_events_questions_are_asked_of_each_person_and_stored_with_their_seat(
    client, questions_page
):
    html = client.get(questions_page.url).content.decode()
    assert "Dietary needs" in html and "Person 2: Dietary needs" in html
    response = register(
        client,
        questions_page,
        seats="2",
        q_diet="Vegan",
        q_tshirt_size="M",
        guest_2_first_name="Joan",
        guest_2_last_name="Clarke",
        guest_2_q_diet="None",
    )
    assert response.status_code == 302
    answers = {p.contact.first_name: p.answers for p in Participant.objects.all()}
    assert answers == {"Alan": {"diet": "Vegan", "tshirt_size": "M"}, "Joan": {"diet": "None"}}


@pytest.mark.parametrize(
    "data",
    [
        {"q_diet": ""},
        {"q_diet": "Carnivore"},
        {"q_diet": "Vegan", "seats": "2", "guest_2_first_name": "Joan"},
    ],
    ids=["registrant-unanswered", "not-a-choice", "guest-unanswered"],
)
def test_a_required_question_unanswered_or_a_wrong_answer_books_nothing(
    client, questions_page, data
):
    response = register(client, questions_page, **data)
    assert response.status_code == 400
    assert 'class="crm-form__error"' in response.content.decode()
    assert not Participant.objects.exists()
    assert not Contact.objects.exists()
