"""Event registration services: seats, the waiting list, check-in, paid seats."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.utils import timezone

from crm_core.exceptions import AlreadyRegistered, EventFull, InvalidTransition, RegistrationClosed
from crm_core.models import (
    Activity,
    Contribution,
    Event,
    EventQuestion,
    LineItem,
    Participant,
    ParticipantRole,
)
from crm_core.selectors.events import seats_left, seats_taken, with_seats
from crm_core.services import events as services
from crm_core.services.contacts import trash_contact
from tests.factories import (
    ContactFactory,
    CustomFieldFactory,
    EventFactory,
    EventFeeLevelFactory,
    FinancialTypeFactory,
)

pytestmark = pytest.mark.django_db


def register_one(event, contact=None, **attendee):
    contact = contact or ContactFactory()
    attendee.setdefault("contact", contact)
    (participant,) = services.register(event, registered_by=contact, attendees=[attendee])
    return participant


def fill(event, count):
    return [register_one(event) for _ in range(count)]


def role(slug):
    return ParticipantRole.objects.get(slug=slug)


# -- registering ------------------------------------------------------------------------------


def test_free_event_registration_is_registered_with_history():
    event = EventFactory()
    contact = ContactFactory()
    participant = register_one(event, contact)
    assert participant.status == "registered"
    assert participant.role.slug == "attendee"
    assert participant.registered_by == contact
    entry = Activity.objects.filter(contact=contact, activity_type="system").latest("id")
    assert event.title in entry.subject
    assert entry.changes == {"event_participation": [None, "registered"]}


def test_paid_fee_level_makes_participant_pending_payment_with_fee_snapshot():
    level = EventFeeLevelFactory(amount=Decimal("25.00"))
    participant = register_one(level.event)
    assert participant.status == "pending_payment"
    assert participant.fee_level == level
    assert participant.fee_amount == Decimal("25.00")


def test_payment_in_hand_registers_paid_seat_at_once():
    level = EventFeeLevelFactory(amount=Decimal("25.00"))
    contact = ContactFactory()
    (participant,) = services.register(
        level.event,
        registered_by=contact,
        attendees=[{"contact": contact}],
        pending_payment=False,
    )
    assert participant.status == "registered"


def test_free_fee_level_is_registered_even_when_others_pay():
    event = EventFactory()
    EventFeeLevelFactory(event=event, amount=Decimal("25.00"), label="Standard")
    free = EventFeeLevelFactory(event=event, amount=Decimal("0"), label="Carer")
    assert register_one(event, fee_level=free).status == "registered"


def test_one_person_registers_several_sharing_one_registration():
    event = EventFactory()
    booker = ContactFactory()
    guests = [ContactFactory() for _ in range(3)]
    participants = services.register(
        event, registered_by=booker, attendees=[{"contact": c} for c in guests]
    )
    assert len(participants) == 3
    assert len({p.registration for p in participants}) == 1
    assert {p.registered_by_id for p in participants} == {booker.pk}
    assert seats_taken(event) == 3


def test_several_fee_levels_without_a_default_require_a_choice():
    event = EventFactory()
    EventFeeLevelFactory(event=event, amount=Decimal("25.00"))
    EventFeeLevelFactory(event=event, amount=Decimal("10.00"), label="Concession")
    with pytest.raises(ValidationError) as caught:
        register_one(event)
    assert "attendees.0.fee_level" in caught.value.message_dict


def test_default_fee_level_is_used_when_none_is_chosen():
    event = EventFeeLevelFactory(amount=Decimal("25.00")).event
    concession = EventFeeLevelFactory(
        event=event, amount=Decimal("10.00"), label="Concession", is_default=True
    )
    assert register_one(event).fee_level == concession


def test_fee_level_of_another_event_is_refused():
    event = EventFactory()
    other_level = EventFeeLevelFactory(amount=Decimal("5.00"))
    with pytest.raises(ValidationError) as caught:
        register_one(event, fee_level=other_level)
    assert "attendees.0.fee_level" in caught.value.message_dict
    assert not Participant.objects.exists()


def test_inactive_fee_level_is_refused():
    level = EventFeeLevelFactory(amount=Decimal("5.00"), is_active=False)
    with pytest.raises(ValidationError):
        register_one(level.event, fee_level=level)


def test_event_offering_attendee_gives_that_role_by_default():
    event = EventFactory()
    event.roles.set([role("speaker"), role("attendee")])
    assert register_one(event).role.slug == "attendee"


def test_event_not_offering_attendee_requires_a_role():
    event = EventFactory()
    event.roles.set([role("speaker")])
    with pytest.raises(ValidationError) as caught:
        register_one(event)
    assert "attendees.0.role" in caught.value.message_dict
    assert register_one(event, role=role("speaker")).role.slug == "speaker"


def test_role_not_offered_by_the_event_is_refused():
    event = EventFactory()
    event.roles.set([role("attendee")])
    with pytest.raises(ValidationError) as caught:
        register_one(event, role=role("speaker"))
    assert "attendees.0.role" in caught.value.message_dict


def test_more_attendees_than_allowed_per_registration_is_refused():
    event = EventFactory(max_seats_per_registration=2)
    booker = ContactFactory()
    with pytest.raises(ValidationError) as caught:
        services.register(
            event,
            registered_by=booker,
            attendees=[{"contact": ContactFactory()} for _ in range(3)],
        )
    assert "attendees" in caught.value.message_dict


@pytest.mark.parametrize("attendees", [[], "ann", {"contact": None}, None])
def test_attendees_must_be_a_non_empty_list(attendees):
    with pytest.raises(ValidationError) as caught:
        services.register(EventFactory(), registered_by=None, attendees=attendees)
    assert "attendees" in caught.value.message_dict


def test_same_person_twice_in_one_registration_is_refused():
    contact = ContactFactory()
    with pytest.raises(ValidationError):
        services.register(
            EventFactory(),
            registered_by=contact,
            attendees=[{"contact": contact}, {"contact": contact}],
        )


def test_contact_with_a_live_place_cannot_register_again():
    event = EventFactory()
    contact = ContactFactory()
    register_one(event, contact)
    with pytest.raises(AlreadyRegistered):
        register_one(event, contact)


def test_contact_can_register_again_after_cancelling():
    event = EventFactory()
    contact = ContactFactory()
    services.cancel_registration(register_one(event, contact))
    assert register_one(event, contact).status == "registered"


def test_contact_in_the_trash_cannot_be_registered():
    contact = ContactFactory()
    trash_contact(contact)
    with pytest.raises(ValidationError):
        register_one(EventFactory(), contact)
    assert not Participant.objects.exists()


def test_booker_in_the_trash_cannot_register_others():
    booker = ContactFactory()
    trash_contact(booker)
    with pytest.raises(ValidationError):
        services.register(
            EventFactory(), registered_by=booker, attendees=[{"contact": ContactFactory()}]
        )
    assert not Participant.objects.exists()


def test_contact_trashed_after_registering_is_refused_as_trashed_not_as_registered():
    event = EventFactory()
    contact = ContactFactory()
    register_one(event, contact)
    trash_contact(contact)
    with pytest.raises(ValidationError) as caught:
        register_one(event, contact)
    assert "trash" in caught.value.messages[0]


def test_contact_in_the_trash_is_refused_at_a_full_event():
    event = EventFactory(capacity=1, waitlist_enabled=False)
    register_one(event)
    contact = ContactFactory()
    trash_contact(contact)
    with pytest.raises(ValidationError):
        register_one(event, contact)


def test_registration_before_it_opens_is_refused():
    event = EventFactory(registration_opens_at=timezone.now() + datetime.timedelta(days=1))
    with pytest.raises(RegistrationClosed, match="opens on"):
        register_one(event)


def test_registration_before_it_opens_far_ahead_is_refused_without_crashing():
    # Saved before event times were bounded: too late to show in the event's zone.
    event = EventFactory(time_zone="Pacific/Kiritimati")
    Event.objects.filter(pk=event.pk).update(
        registration_opens_at=datetime.datetime(9999, 12, 31, 20, 0, tzinfo=datetime.UTC)
    )
    event.refresh_from_db()
    with pytest.raises(RegistrationClosed, match="opens on 31 December 9999"):
        register_one(event)


def test_registration_after_it_closes_is_refused():
    event = EventFactory(registration_closes_at=timezone.now() - datetime.timedelta(minutes=1))
    with pytest.raises(RegistrationClosed, match="closed"):
        register_one(event)


def test_registration_closes_when_the_event_starts_by_default():
    event = EventFactory()
    with pytest.raises(RegistrationClosed):
        services.register(
            event,
            registered_by=None,
            attendees=[{"contact": ContactFactory()}],
            now=event.starts_at,
        )


def test_inactive_event_refuses_registration():
    with pytest.raises(RegistrationClosed):
        register_one(EventFactory(is_active=False))


# -- answers ------------------------------------------------------------------------------------


def question(event, field_type="text", required=False, **field):
    custom = CustomFieldFactory(field_type=field_type, **field)
    EventQuestion.objects.create(event=event, field=custom, is_required=required)
    return custom.name


def test_answers_are_validated_and_stored_by_field_type():
    event = EventFactory()
    name = question(event, "number")
    participant = register_one(event, answers={name: "3"})
    assert Participant.objects.get(pk=participant.pk).answers == {name: "3.0000"}


def test_required_question_must_be_answered():
    event = EventFactory()
    name = question(event, required=True)
    with pytest.raises(ValidationError) as caught:
        register_one(event)
    assert f"attendees.0.answers.{name}" in caught.value.message_dict


def test_answer_of_the_wrong_type_is_refused_with_the_fields_message():
    event = EventFactory()
    name = question(event, "choice", choices=["vegan", "none"])
    with pytest.raises(ValidationError) as caught:
        register_one(event, answers={name: "steak"})
    assert "Choose one of" in caught.value.message_dict[f"attendees.0.answers.{name}"][0]


def test_answer_to_a_question_not_asked_is_refused():
    with pytest.raises(ValidationError) as caught:
        register_one(EventFactory(), answers={"shoe_size": "9"})
    assert "attendees.0.answers.shoe_size" in caught.value.message_dict


# -- capacity --------------------------------------------------------------------------------


def test_full_event_without_waitlist_refuses_with_message():
    event = EventFactory(capacity=2, waitlist_enabled=False)
    fill(event, 2)
    with pytest.raises(EventFull, match="This event is full"):
        register_one(event)
    assert seats_taken(event) == 2


def test_group_larger_than_seats_left_is_refused_whole_with_seats_left_in_message():
    event = EventFactory(capacity=3, waitlist_enabled=False)
    fill(event, 1)
    with pytest.raises(EventFull, match="Only 2 seats left"):
        services.register(
            event,
            registered_by=None,
            attendees=[{"contact": ContactFactory()} for _ in range(3)],
        )
    assert Participant.objects.filter(event=event).count() == 1


def test_group_that_does_not_fit_goes_on_the_waitlist_together():
    event = EventFactory(capacity=3, waitlist_enabled=True)
    fill(event, 2)
    participants = services.register(
        event, registered_by=None, attendees=[{"contact": ContactFactory()} for _ in range(2)]
    )
    assert {p.status for p in participants} == {"waitlisted"}
    assert all(p.waitlisted_at for p in participants)
    assert seats_left(event) == 1


def test_roles_that_take_no_seat_register_at_a_full_event():
    event = EventFactory(capacity=1, waitlist_enabled=False)
    fill(event, 1)
    volunteer = ParticipantRole.objects.create(
        name="Steward", slug="steward", counts_towards_capacity=False
    )
    assert register_one(event, role=volunteer).status == "registered"
    assert seats_taken(event) == 1


def test_unlimited_event_has_no_seats_left_figure():
    event = EventFactory(capacity=None)
    fill(event, 3)
    assert seats_left(event) is None
    assert seats_taken(event) == 3


def test_seats_annotation_matches_seats_taken():
    event = EventFactory(capacity=5)
    fill(event, 2)
    services.cancel_registration(register_one(event))
    assert with_seats().get(pk=event.pk).seats_taken == 2


# -- cancelling and the waiting list -----------------------------------------------------------


def waitlisted_event(capacity=1, waiting=2, hours=48):
    event = EventFactory(capacity=capacity, waitlist_enabled=True, waitlist_offer_hours=hours)
    seated = fill(event, capacity)
    queue = fill(event, waiting)
    assert {p.status for p in queue} == {"waitlisted"}
    return event, seated, queue


def test_cancel_frees_the_seat_and_records_reason():
    event = EventFactory(capacity=1)
    participant = services.cancel_registration(register_one(event), reason="Ill")
    assert participant.status == "cancelled"
    assert participant.cancel_reason == "Ill"
    assert seats_left(event) == 1


def test_cancel_is_idempotent():
    participant = services.cancel_registration(register_one(EventFactory()))
    before = Activity.objects.count()
    again = services.cancel_registration(participant)
    assert again.status == "cancelled"
    assert Activity.objects.count() == before


def test_attended_place_cannot_be_cancelled():
    participant = services.check_in(register_one(EventFactory()))
    with pytest.raises(InvalidTransition):
        services.cancel_registration(participant)


def test_cancel_offers_the_seat_to_the_first_on_the_waitlist():
    event, seated, queue = waitlisted_event()
    cancelled = services.cancel_registration(seated[0])
    first = Participant.objects.get(pk=queue[0].pk)
    assert cancelled.waitlist_offers == [first]
    assert first.status == "waitlisted"
    assert first.offer_expires_at is not None
    assert Participant.objects.get(pk=queue[1].pk).offer_expires_at is None


def test_open_offer_holds_the_seat_against_newcomers():
    event, seated, queue = waitlisted_event()
    services.cancel_registration(seated[0])
    assert seats_left(event) == 0
    assert register_one(event).status == "waitlisted"


def test_accepting_an_offer_registers_the_participant():
    event, seated, queue = waitlisted_event()
    services.cancel_registration(seated[0])
    accepted = services.accept_waitlist_offer(queue[0])
    assert accepted.status == "registered"
    assert accepted.offer_expires_at is None
    assert seats_left(event) == 0


def test_accepting_an_offer_for_a_paid_seat_is_pending_payment():
    event = EventFactory(capacity=1)
    EventFeeLevelFactory(event=event, amount=Decimal("10.00"))
    first = register_one(event)
    waiting = register_one(event)
    services.cancel_registration(first)
    assert services.accept_waitlist_offer(waiting).status == "pending_payment"


def test_accepting_without_an_offer_is_refused():
    event, seated, queue = waitlisted_event()
    with pytest.raises(InvalidTransition):
        services.accept_waitlist_offer(queue[0])


def test_expired_offer_cannot_be_accepted():
    event, seated, queue = waitlisted_event(hours=2)
    services.cancel_registration(seated[0])
    later = timezone.now() + datetime.timedelta(hours=3)
    with pytest.raises(RegistrationClosed, match="expired"):
        services.accept_waitlist_offer(queue[0], now=later)


def test_unanswered_offer_passes_to_the_next_on_the_waitlist():
    event, seated, queue = waitlisted_event(hours=2)
    services.cancel_registration(seated[0])
    later = timezone.now() + datetime.timedelta(hours=3)
    offered = services.expire_waitlist_offers(now=later)
    first = Participant.objects.get(pk=queue[0].pk)
    second = Participant.objects.get(pk=queue[1].pk)
    assert first.status == "cancelled"
    assert first.cancel_reason == "offer expired"
    assert offered == [second]
    assert second.offer_expires_at == later + datetime.timedelta(hours=2)


def test_expired_offer_frees_its_seat_in_the_count():
    event, seated, queue = waitlisted_event(waiting=1, hours=2)
    services.cancel_registration(seated[0])
    later = timezone.now() + datetime.timedelta(hours=3)
    assert seats_left(event, now=later) == 1


def test_newcomer_does_not_jump_a_queue_whose_offer_lapsed_unprocessed():
    event, seated, queue = waitlisted_event(waiting=2, hours=2)
    services.cancel_registration(seated[0])
    later = timezone.now() + datetime.timedelta(hours=3)
    # The expiry task has not run: queue[0]'s offer lapsed, queue[1] waits.
    (newcomer,) = services.register(
        event, registered_by=None, attendees=[{"contact": ContactFactory()}], now=later
    )
    assert newcomer.status == "waitlisted"


def test_promotion_skips_a_group_too_big_for_the_free_seats():
    event = EventFactory(capacity=2, waitlist_enabled=True)
    seated = fill(event, 2)
    group = services.register(
        event, registered_by=None, attendees=[{"contact": ContactFactory()} for _ in range(2)]
    )
    single = register_one(event)
    services.cancel_registration(seated[0])
    assert Participant.objects.get(pk=single.pk).offer_expires_at is not None
    assert all(
        p.offer_expires_at is None for p in Participant.objects.filter(pk__in=[g.pk for g in group])
    )


def test_group_is_offered_together_when_its_seats_fit():
    event = EventFactory(capacity=2, waitlist_enabled=True)
    seated = fill(event, 2)
    group = services.register(
        event, registered_by=None, attendees=[{"contact": ContactFactory()} for _ in range(2)]
    )
    services.cancel_registration(seated[0])
    offers = services.cancel_registration(seated[1]).waitlist_offers
    assert {p.pk for p in offers} == {p.pk for p in group}


def close_event(event, how):
    """Deactivate ``event``, or move it into the past, after its places were booked."""
    if how == "inactive":
        Event.objects.filter(pk=event.pk).update(is_active=False)
    else:
        starts = timezone.now() - datetime.timedelta(days=2)
        Event.objects.filter(pk=event.pk).update(
            starts_at=starts, ends_at=starts + datetime.timedelta(hours=2)
        )
    event.refresh_from_db()


@pytest.mark.parametrize("how", ["inactive", "past"])
def test_no_seat_is_offered_at_a_closed_event(how):
    event, seated, queue = waitlisted_event()
    close_event(event, how)
    cancelled = services.cancel_registration(seated[0])
    assert cancelled.waitlist_offers == []
    assert Participant.objects.get(pk=queue[0].pk).offer_expires_at is None


@pytest.mark.parametrize("how", ["inactive", "past"])
def test_an_offer_cannot_be_accepted_once_the_event_closes(how):
    event, seated, queue = waitlisted_event()
    services.cancel_registration(seated[0])
    close_event(event, how)
    with pytest.raises(RegistrationClosed):
        services.accept_waitlist_offer(queue[0])
    assert Participant.objects.get(pk=queue[0].pk).status == "waitlisted"


def test_raising_capacity_and_promoting_offers_the_new_seats():
    event, seated, queue = waitlisted_event(waiting=2)
    event.capacity = 3
    event.save()
    offered = services.promote_from_waitlist(event)
    assert [p.pk for p in offered] == [p.pk for p in queue]


# -- check-in and no-show ----------------------------------------------------------------------


def test_check_in_marks_attended_with_time():
    participant = services.check_in(register_one(EventFactory()))
    assert participant.status == "attended"
    assert participant.checked_in_at is not None


def test_check_in_twice_changes_nothing():
    participant = services.check_in(register_one(EventFactory()))
    before = Activity.objects.count()
    assert services.check_in(participant).checked_in_at == participant.checked_in_at
    assert Activity.objects.count() == before


def test_pending_payment_cannot_check_in():
    level = EventFeeLevelFactory(amount=Decimal("5.00"))
    with pytest.raises(InvalidTransition):
        services.check_in(register_one(level.event))


@pytest.mark.parametrize("make", ["waitlisted", "cancelled"])
def test_waitlisted_or_cancelled_cannot_check_in(make):
    event = EventFactory(capacity=1)
    first = register_one(event)
    participant = register_one(event) if make == "waitlisted" else first
    if make == "cancelled":
        participant = services.cancel_registration(first)
    with pytest.raises(InvalidTransition):
        services.check_in(participant)


def test_no_show_then_late_arrival_checks_in():
    participant = services.mark_no_show(register_one(EventFactory()))
    assert participant.status == "no_show"
    assert services.check_in(participant).status == "attended"


def test_undo_check_in_returns_to_registered():
    participant = services.undo_check_in(services.check_in(register_one(EventFactory())))
    assert participant.status == "registered"
    assert participant.checked_in_at is None


def test_attended_cannot_be_marked_no_show():
    with pytest.raises(InvalidTransition):
        services.mark_no_show(services.check_in(register_one(EventFactory())))


# -- paid seats --------------------------------------------------------------------------------


def fee_line(participant):
    contribution = Contribution.objects.create(
        contact=participant.contact,
        total_amount=participant.fee_amount,
        currency="GBP",
        financial_type=FinancialTypeFactory(slug="event-fee"),
    )
    return LineItem.objects.create(
        contribution=contribution,
        kind="event_fee",
        label="Seat",
        unit_amount=participant.fee_amount,
        line_total=participant.fee_amount,
        financial_type=contribution.financial_type,
        participant=participant,
    )


@pytest.fixture
def paid_event():
    event = EventFactory(capacity=1)
    EventFeeLevelFactory(event=event, amount=Decimal("20.00"))
    return event


def test_payment_confirms_pending_participant_and_marks_line_applied(paid_event):
    participant = register_one(paid_event)
    line = fee_line(participant)
    assert services.confirm_paid_participant(line).status == "registered"
    assert LineItem.objects.get(pk=line.pk).applied_at is not None


def test_confirming_payment_twice_changes_nothing(paid_event):
    line = fee_line(register_one(paid_event))
    services.confirm_paid_participant(line)
    before = Activity.objects.count()
    services.confirm_paid_participant(LineItem.objects.get(pk=line.pk))
    assert Activity.objects.count() == before


def test_late_payment_for_cancelled_place_registers_again_when_a_seat_is_free(paid_event):
    participant = register_one(paid_event)
    line = fee_line(participant)
    services.cancel_registration(participant)
    assert services.confirm_paid_participant(line).status == "registered"


def test_late_payment_when_full_goes_on_waitlist_noting_refund(paid_event):
    participant = register_one(paid_event)
    line = fee_line(participant)
    services.cancel_registration(participant)
    register_one(paid_event)
    revived = services.confirm_paid_participant(line)
    assert revived.status == "waitlisted"
    entry = Activity.objects.filter(contact=revived.contact).latest("id")
    assert "refund may be due" in entry.details
    assert seats_taken(paid_event) == 1


def test_full_refund_cancels_the_paid_place(paid_event):
    participant = register_one(paid_event)
    line = fee_line(participant)
    services.confirm_paid_participant(line)
    assert services.revoke_paid_participant(line).status == "cancelled"
    assert services.revoke_paid_participant(line).status == "cancelled"


def test_refund_after_attending_keeps_the_attendance(paid_event):
    participant = register_one(paid_event)
    line = fee_line(participant)
    services.check_in(services.confirm_paid_participant(line))
    assert services.revoke_paid_participant(line).status == "attended"


# -- round trips ---------------------------------------------------------------------------------


def test_one_registration_reads_and_writes_in_a_fixed_number_of_queries(
    django_assert_num_queries,
):
    # Fee levels, roles (offered and default in one), questions; then in the
    # transaction: the participant, its history entry, the event lock (which
    # also checks the trash) and the seat count. Savepoint and release
    # inside the test's own transaction.
    event = EventFactory()
    EventFeeLevelFactory(event=event, amount=Decimal("0"))
    contact = ContactFactory()
    with django_assert_num_queries(9):
        services.register(event, registered_by=contact, attendees=[{"contact": contact}])


def test_event_with_its_choices_prefetched_is_not_read_again(django_assert_num_queries):
    event = EventFactory()
    event.roles.set([role("attendee")])
    EventFeeLevelFactory(event=event, amount=Decimal("0"))
    event = Event.objects.prefetch_related(
        "fee_levels",
        "roles",
        Prefetch("questions", queryset=EventQuestion.objects.select_related("field")),
    ).get(pk=event.pk)
    contact = ContactFactory()
    with django_assert_num_queries(6):
        (participant,) = services.register(
            event, registered_by=contact, attendees=[{"contact": contact}]
        )
    assert participant.role.slug == "attendee"
