"""Back-office entry points to the event and contribution services.

Undo check-in, offering free seats to the waiting list, marking a payment
failed, marking a receipt sent and setting up a recurring contribution:
each goes through its service, checks its permission, is offered only while
the record's status allows it, and turns bad input into a message.
"""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from crm_core.models import Activity, FinancialType, RecurringContribution
from crm_core.services import contributions as contribution_services
from crm_core.services import events as event_services
from tests.conftest import grant
from tests.factories import ContactFactory, EventFactory, UserFactory

pytestmark = pytest.mark.django_db

CONTRIBUTION = "wagtailsnippets_crm_core_contribution"
RECURRING = "wagtailsnippets_crm_core_recurringcontribution"


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def refused(response):
    # Wagtail answers PermissionDenied with a redirect to the dashboard and a message.
    return response.status_code == 302 and response.url == reverse("wagtailadmin_home")


def latest_entry(contact):
    return Activity.objects.filter(contact=contact).latest("id")


# -- undo check-in ------------------------------------------------------------------------


def book(event, contact=None):
    contact = contact or ContactFactory()
    (participant,) = event_services.register(
        event, registered_by=contact, attendees=[{"contact": contact}]
    )
    return participant


def undo_url(participant):
    return reverse(
        "wagtailsnippets_crm_core_participant:action", args=[participant.pk, "undo-check-in"]
    )


def test_undo_check_in_puts_an_attendee_back_to_registered(client):
    user = staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    participant = event_services.check_in(book(EventFactory()))
    assert client.get(undo_url(participant)).status_code == 200
    response = client.post(undo_url(participant))
    assert response.status_code == 302
    participant.refresh_from_db()
    assert (participant.status, participant.checked_in_at) == ("registered", None)
    entry = latest_entry(participant.contact)
    assert (entry.created_by, entry.source) == (user, "admin")
    assert entry.changes == {"event_participation": ["attended", "registered"]}


def test_undo_check_in_without_the_check_in_permission_is_refused(client):
    staff(client, "crm_core.view_participant", "crm_core.change_participant")
    participant = event_services.check_in(book(EventFactory()))
    assert refused(client.post(undo_url(participant)))
    participant.refresh_from_db()
    assert participant.status == "attended"


def test_undo_check_in_is_offered_only_for_attendees(client):
    staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    event = EventFactory()
    attended = event_services.check_in(book(event))
    registered = book(event)
    html = client.get(reverse("wagtailsnippets_crm_core_participant:list")).content.decode()
    assert undo_url(attended) in html
    assert undo_url(registered) not in html


def test_undo_check_in_of_a_cancelled_participant_is_a_message_not_an_error(client):
    staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    participant = event_services.cancel_registration(book(EventFactory()))
    response = client.post(undo_url(participant), follow=True)
    assert response.status_code == 200
    assert "cannot be marked registered" in response.content.decode()
    participant.refresh_from_db()
    assert participant.status == "cancelled"


# -- offer free seats to the waiting list -------------------------------------------------


def offer_url(event):
    return reverse("wagtailsnippets_crm_core_event:offer_seats", args=[event.pk])


def event_with_a_free_seat_and_two_waiting():
    """One seat taken, two people waiting, then the capacity raised by one."""
    event = EventFactory(capacity=1)
    book(event)
    first, second = book(event), book(event)
    assert (first.status, second.status) == ("waitlisted", "waitlisted")
    event.capacity = 2
    event.save(update_fields=["capacity"])
    return event, first, second


def test_offering_free_seats_offers_the_first_person_waiting(client):
    user = staff(client, "crm_core.view_event", "crm_core.change_participant")
    event, first, second = event_with_a_free_seat_and_two_waiting()
    assert client.get(offer_url(event)).status_code == 200
    response = client.post(offer_url(event), follow=True)
    assert response.status_code == 200
    assert "1 person on the waiting list was offered a seat." in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.offer_expires_at is not None
    assert second.offer_expires_at is None
    entry = latest_entry(first.contact)
    assert (entry.created_by, entry.source) == (user, "admin")
    assert "seat offered until" in entry.subject


def test_offering_free_seats_needs_the_change_participant_permission(client):
    staff(client, "crm_core.view_event", "crm_core.view_participant")
    event, first, _second = event_with_a_free_seat_and_two_waiting()
    assert refused(client.post(offer_url(event)))
    first.refresh_from_db()
    assert first.offer_expires_at is None


def test_offering_free_seats_is_offered_only_while_it_could_help(client):
    staff(client, "crm_core.view_event", "crm_core.change_participant")
    can_offer, _first, _second = event_with_a_free_seat_and_two_waiting()
    full = EventFactory(capacity=1)
    book(full)
    book(full)  # waiting, but no seat is free
    nobody_waiting = EventFactory(capacity=5)
    book(nobody_waiting)
    html = client.get(reverse("wagtailsnippets_crm_core_event:list")).content.decode()
    assert offer_url(can_offer) in html
    assert offer_url(full) not in html
    assert offer_url(nobody_waiting) not in html


def test_offering_seats_when_none_are_free_says_so_and_changes_nothing(client):
    staff(client, "crm_core.view_event", "crm_core.change_participant")
    event = EventFactory(capacity=1)
    book(event)
    waiting = book(event)
    response = client.post(offer_url(event), follow=True)
    assert "No one was offered a seat" in response.content.decode()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.offer_expires_at) == ("waitlisted", None)


# -- contributions: mark failed, mark receipt sent ----------------------------------------


def pending(contact):
    return contribution_services.create_pending(
        contact, currency="GBP", lines=[{"amount": "40.00"}]
    )


def contribution_url(name, contribution):
    return reverse(f"{CONTRIBUTION}:{name}", args=[contribution.pk])


def inspect_html(client, contribution):
    response = client.get(contribution_url("inspect", contribution))
    assert response.status_code == 200
    return response.content.decode()


def test_marking_a_pending_payment_failed_records_the_reason(client, contact):
    user = staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    contribution = pending(contact)
    assert client.get(contribution_url("fail", contribution)).status_code == 200
    response = client.post(contribution_url("fail", contribution), {"reason": "Cheque bounced"})
    assert response.status_code == 302
    contribution.refresh_from_db()
    assert (contribution.status, contribution.status_reason) == ("failed", "Cheque bounced")
    entry = latest_entry(contact)
    assert (entry.created_by, entry.source) == (user, "admin")
    assert entry.changes == {"contribution_status": ["pending", "failed"]}


def test_marking_failed_without_a_reason_gives_the_form_back(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    contribution = pending(contact)
    response = client.post(contribution_url("fail", contribution), {"reason": ""})
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    contribution.refresh_from_db()
    assert contribution.status == "pending"


def test_marking_failed_without_permission_is_refused(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.record_offline_payment")
    contribution = pending(contact)
    assert refused(client.post(contribution_url("fail", contribution), {"reason": "No funds"}))
    contribution.refresh_from_db()
    assert contribution.status == "pending"


def test_mark_failed_is_offered_only_for_pending_contributions(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    waiting = pending(contact)
    paid = contribution_services.complete(pending(contact))
    assert contribution_url("fail", waiting) in inspect_html(client, waiting)
    assert contribution_url("fail", paid) not in inspect_html(client, paid)


def test_marking_a_paid_contribution_failed_is_an_error_on_the_form(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    paid = contribution_services.complete(pending(contact))
    response = client.post(contribution_url("fail", paid), {"reason": "Mistake"})
    assert response.status_code == 200
    assert "cannot be marked failed" in response.content.decode()
    paid.refresh_from_db()
    assert paid.status == "completed"


def test_marking_the_receipt_sent(client, contact):
    user = staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    paid = contribution_services.complete(pending(contact))
    url = contribution_url("mark_receipt_sent", paid)
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 302
    paid.refresh_from_db()
    assert paid.receipt_status == "sent"
    assert paid.receipt_sent_at is not None
    entry = latest_entry(contact)
    assert (entry.created_by, entry.source) == (user, "admin")
    assert entry.changes["receipt_status"][1] == "sent"


def test_marking_the_receipt_sent_without_permission_is_refused(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.refund_contribution")
    paid = contribution_services.complete(pending(contact))
    assert refused(client.post(contribution_url("mark_receipt_sent", paid)))
    paid.refresh_from_db()
    assert paid.receipt_status != "sent"


def test_mark_receipt_sent_is_offered_only_for_paid_unreceipted_contributions(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    unpaid = pending(contact)
    paid = contribution_services.complete(pending(contact))
    receipted = contribution_services.mark_receipt_sent(
        contribution_services.complete(pending(contact))
    )
    assert contribution_url("mark_receipt_sent", paid) in inspect_html(client, paid)
    assert contribution_url("mark_receipt_sent", unpaid) not in inspect_html(client, unpaid)
    assert contribution_url("mark_receipt_sent", receipted) not in inspect_html(client, receipted)


def test_marking_an_unpaid_receipt_sent_is_an_error_on_the_form(client, contact):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    unpaid = pending(contact)
    response = client.post(contribution_url("mark_receipt_sent", unpaid))
    assert response.status_code == 200
    assert "cannot be receipted" in response.content.decode()
    unpaid.refresh_from_db()
    assert unpaid.receipt_status != "sent"


# -- add a recurring contribution ---------------------------------------------------------


def recurring_form(contact, **extra):
    return {
        "contact": contact.pk,
        "amount": "10.00",
        "currency": "GBP",
        "frequency_unit": "month",
        "frequency_interval": "1",
        "installments": "",
        "financial_type": FinancialType.objects.get(slug="donation").pk,
        "campaign": "",
        "membership": "",
        "start_date": timezone.localdate().isoformat(),
        "payment_method": "bank_transfer",
        **extra,
    }


def test_staff_set_up_a_recurring_contribution_through_the_service(client, contact):
    user = staff(
        client, "crm_core.add_recurringcontribution", "crm_core.view_recurringcontribution"
    )
    assert client.get(reverse(f"{RECURRING}:add")).status_code == 200
    response = client.post(
        reverse(f"{RECURRING}:add"), recurring_form(contact, frequency_interval="3")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    recurring = RecurringContribution.objects.get(contact=contact)
    assert (recurring.status, str(recurring.amount), recurring.frequency_interval) == (
        "pending",
        "10.000",
        3,
    )
    assert (recurring.source, recurring.next_date) == ("admin", timezone.localdate())
    entry = latest_entry(contact)
    assert (entry.created_by, entry.source) == (user, "admin")
    assert entry.changes == {"recurring_status": [None, "pending"]}


def test_the_recurring_listing_offers_add_only_with_the_add_permission(client):
    staff(client, "crm_core.view_recurringcontribution")
    html = client.get(reverse(f"{RECURRING}:list")).content.decode()
    assert reverse(f"{RECURRING}:add") not in html
    staff(client, "crm_core.view_recurringcontribution", "crm_core.add_recurringcontribution")
    html = client.get(reverse(f"{RECURRING}:list")).content.decode()
    assert reverse(f"{RECURRING}:add") in html


def test_adding_a_recurring_contribution_without_permission_is_refused(client, contact):
    staff(client, "crm_core.view_recurringcontribution", "crm_core.change_recurringcontribution")
    assert refused(client.post(reverse(f"{RECURRING}:add"), recurring_form(contact)))
    assert not RecurringContribution.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "abc", "Expected an amount"),
        ("amount", "-5", "must be more than zero"),
        ("amount", "0", "must be more than zero"),
        ("amount", "1" + "0" * 30, "too large"),
        ("amount", "NaN", "Expected an amount"),
        ("amount", "10.001", "at most 2 decimal places"),
        ("currency", "XYZ", "not an ISO 4217 currency code"),
        ("frequency_interval", "37", "from 1 to 36"),
        ("installments", "0", "from 1 to 1200"),
    ],
)
def test_bad_recurring_input_is_shown_next_to_the_field_and_nothing_is_saved(
    client, contact, field, value, message
):
    staff(client, "crm_core.add_recurringcontribution", "crm_core.view_recurringcontribution")
    history = Activity.objects.filter(contact=contact).count()
    response = client.post(reverse(f"{RECURRING}:add"), recurring_form(contact, **{field: value}))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in str(errors[field]), errors
    assert message in response.content.decode()
    assert not RecurringContribution.objects.exists()
    assert Activity.objects.filter(contact=contact).count() == history


def test_a_recurring_start_date_years_ahead_is_refused(client, contact):
    staff(client, "crm_core.add_recurringcontribution", "crm_core.view_recurringcontribution")
    far = timezone.localdate() + datetime.timedelta(days=800)
    response = client.post(
        reverse(f"{RECURRING}:add"), recurring_form(contact, start_date=far.isoformat())
    )
    assert response.status_code == 200
    assert "no more than a year from today" in str(response.context["form"].errors["start_date"])
    assert not RecurringContribution.objects.exists()


@pytest.mark.parametrize("bad_id", ["x", "1.5", "%00", "9" * 40])
@pytest.mark.parametrize("action", ["refund", "record_payment", "cancel", "fail"])
def test_a_mistyped_or_forged_id_in_a_contribution_action_address_is_not_found(
    client, action, bad_id
):
    staff(
        client,
        "crm_core.view_contribution",
        "crm_core.change_contribution",
        "crm_core.refund_contribution",
        "crm_core.record_offline_payment",
    )
    url = reverse(f"{CONTRIBUTION}:{action}", args=["1"]).replace("/1/", f"/{bad_id}/")
    assert client.get(url).status_code == 404
    assert client.post(url, {"reason": "x"}).status_code == 404
