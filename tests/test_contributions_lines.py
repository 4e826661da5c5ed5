"""What contributions pay for: membership terms and event seats, and refunds of them."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from crm_core.exceptions import InvalidTransition, MembershipNotRenewable
from crm_core.models import Membership, Participant
from crm_core.services import contributions as svc
from crm_core.services import events, memberships
from tests.factories import (
    ContactFactory,
    EventFactory,
    EventFeeLevelFactory,
    MembershipTypeFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_type():
    return MembershipTypeFactory(fee=Decimal("30.00"), currency="GBP")


@pytest.fixture
def pending_membership(contact, member_type):
    return memberships.join(contact, member_type, pending=True)


@pytest.fixture
def seat(contact):
    level = EventFeeLevelFactory(amount=Decimal("25.00"))
    [participant] = events.register(
        level.event, registered_by=contact, attendees=[{"contact": contact, "fee_level": level}]
    )
    return participant


def dues(membership, amount="30.00", **kwargs):
    return svc.create_pending(
        membership.contact,
        currency="GBP",
        lines=[{"kind": "membership", "amount": amount, "membership": membership}],
        **kwargs,
    )


def fee(participant, amount="25.00"):
    return svc.create_pending(
        participant.contact,
        currency="GBP",
        lines=[{"kind": "event_fee", "amount": amount, "participant": participant}],
    )


def status(row):
    return type(row).objects.get(pk=row.pk).status


# -- creating lines ------------------------------------------------------------------------


def test_a_membership_line_takes_the_type_fund_and_name(pending_membership, member_type):
    line = dues(pending_membership).line_items.get()
    assert (line.financial_type, line.label) == (member_type.financial_type, member_type.name)


def test_an_event_line_takes_the_event_fund_and_title(seat):
    contribution = fee(seat)
    line = contribution.line_items.get()
    assert (line.financial_type.slug, line.label) == ("event-fee", seat.event.title)
    assert contribution.financial_type.slug == "event-fee"


def test_a_membership_line_in_another_currency_is_refused(pending_membership):
    with pytest.raises(ValidationError) as error:
        svc.create_pending(
            pending_membership.contact,
            currency="EUR",
            lines=[{"kind": "membership", "amount": "30", "membership": pending_membership}],
        )
    assert "priced in GBP, not EUR" in error.value.message_dict["lines"][0]


def test_an_event_line_in_another_currency_is_refused(seat):
    with pytest.raises(ValidationError) as error:
        svc.create_pending(
            seat.contact,
            currency="JPY",
            lines=[{"kind": "event_fee", "amount": "25", "participant": seat}],
        )
    assert "priced in GBP, not JPY" in error.value.message_dict["lines"][0]


def test_a_line_for_a_cancelled_membership_is_refused(pending_membership):
    memberships.cancel(pending_membership, reason="test")
    with pytest.raises(ValidationError):
        dues(Membership.objects.get(pk=pending_membership.pk))


def test_a_line_for_a_cancelled_registration_is_refused(seat):
    events.cancel_registration(seat, reason="test")
    with pytest.raises(ValidationError):
        fee(Participant.objects.get(pk=seat.pk))


def test_a_donation_line_naming_a_membership_is_refused(pending_membership):
    with pytest.raises(ValidationError):
        svc.create_pending(
            pending_membership.contact,
            currency="GBP",
            lines=[{"kind": "donation", "amount": "5", "membership": pending_membership}],
        )


def test_creating_grants_nothing_before_payment(pending_membership, seat):
    dues(pending_membership)
    fee(seat)
    assert status(pending_membership) == "pending"
    assert status(seat) == "pending_payment"


# -- complete ------------------------------------------------------------------------------


def test_completing_dues_activates_the_pending_membership(pending_membership):
    contribution = svc.complete(dues(pending_membership))
    membership = Membership.objects.get(pk=pending_membership.pk)
    assert membership.status in ("new", "current")
    line = contribution.line_items.get()
    assert line.applied_at is not None
    assert line.term_end == membership.end_date


def test_completing_dues_twice_gives_one_term_and_one_history_entry(pending_membership):
    contribution = svc.complete(dues(pending_membership))
    end = Membership.objects.get(pk=pending_membership.pk).end_date
    svc.complete(contribution)
    assert Membership.objects.get(pk=pending_membership.pk).end_date == end
    assert (
        pending_membership.contact.activities.filter(subject__startswith="Membership paid").count()
        == 1
    )


def test_completing_renewal_dues_extends_the_current_membership(contact, member_type):
    membership = memberships.join(contact, member_type)
    end = membership.end_date
    svc.complete(dues(membership))
    assert Membership.objects.get(pk=membership.pk).end_date > end


def test_completing_an_event_fee_confirms_the_seat(seat):
    svc.complete(fee(seat))
    assert status(seat) == "registered"


def test_a_line_that_cannot_be_applied_leaves_the_contribution_pending(contact, member_type):
    membership = memberships.join(contact, member_type)
    contribution = dues(membership)
    memberships.cancel(membership, reason="Moved away")
    with pytest.raises(MembershipNotRenewable):
        svc.complete(contribution)
    assert status(contribution) == "pending"


# -- cancel releases what it held -------------------------------------------------------------


def test_cancelling_unpaid_dues_cancels_the_pending_membership(pending_membership):
    svc.cancel(dues(pending_membership), reason="Never paid")
    assert status(pending_membership) == "cancelled"


def test_cancelling_unpaid_fees_gives_the_seat_up(seat):
    svc.cancel(fee(seat), reason="Never paid")
    assert status(seat) == "cancelled"


def test_cancelling_renewal_dues_leaves_the_current_membership(contact, member_type):
    membership = memberships.join(contact, member_type)
    svc.cancel(dues(membership))
    assert status(membership) == membership.status


def test_cancelling_a_second_invoice_keeps_what_the_first_may_still_pay_for(
    pending_membership, seat
):
    real_dues, real_fee = dues(pending_membership), fee(seat)
    svc.cancel(dues(pending_membership), reason="Sent twice")
    svc.cancel(fee(seat), reason="Sent twice")
    assert (status(pending_membership), status(seat)) == ("pending", "pending_payment")
    svc.complete(real_dues)
    svc.complete(real_fee)
    assert (status(pending_membership), status(seat)) == ("new", "registered")


def test_a_cancelled_contribution_cannot_be_paid_later(pending_membership):
    contribution = svc.cancel(dues(pending_membership))
    with pytest.raises(InvalidTransition):
        svc.complete(contribution)
    assert status(pending_membership) == "cancelled"


# -- refund policies ------------------------------------------------------------------------


def test_a_full_refund_cancels_the_new_membership_by_default(pending_membership):
    svc.refund(svc.complete(dues(pending_membership)))
    assert status(pending_membership) == "cancelled"


def test_a_full_refund_cancels_the_seat_by_default(seat):
    svc.refund(svc.complete(fee(seat)))
    assert status(seat) == "cancelled"


def test_refunding_one_of_two_payments_for_a_seat_keeps_the_place(seat):
    first, second = fee(seat), fee(seat)
    svc.complete(first)
    svc.complete(second)
    svc.refund(second)
    assert status(seat) == "registered"
    svc.refund(first)
    assert status(seat) == "cancelled"


def test_a_partial_refund_keeps_the_membership(pending_membership):
    svc.refund(svc.complete(dues(pending_membership)), amount="10.00")
    assert status(pending_membership) in ("new", "current")


def test_a_partial_refund_keeps_the_seat(seat):
    svc.refund(svc.complete(fee(seat)), amount="5.00")
    assert status(seat) == "registered"


def test_refunding_the_rest_after_a_partial_refund_applies_the_policy(seat):
    contribution = svc.refund(svc.complete(fee(seat)), amount="5.00")
    svc.refund(contribution)
    assert status(seat) == "cancelled"


@override_settings(CRM={"REFUND_MEMBERSHIP_POLICY": "keep"})
def test_with_the_keep_policy_a_full_refund_keeps_the_membership(pending_membership):
    svc.refund(svc.complete(dues(pending_membership)))
    assert status(pending_membership) in ("new", "current")


@override_settings(CRM={"REFUND_REGISTRATION_POLICY": "keep"})
def test_with_the_keep_policy_a_full_refund_keeps_the_seat(seat):
    svc.refund(svc.complete(fee(seat)))
    assert status(seat) == "registered"


def test_a_refunded_renewal_takes_the_term_back(contact, member_type):
    membership = memberships.join(contact, member_type)
    end = membership.end_date
    svc.refund(svc.complete(dues(membership)))
    assert Membership.objects.get(pk=membership.pk).end_date == end


def test_a_mixed_contribution_pays_for_everything_at_once(pending_membership, seat):
    contribution = svc.create_pending(
        pending_membership.contact,
        currency="GBP",
        lines=[
            {"kind": "membership", "amount": "30", "membership": pending_membership},
            {"kind": "event_fee", "amount": "25", "participant": seat},
            {"kind": "donation", "amount": "5"},
        ],
    )
    assert contribution.total_amount == Decimal("60.00")
    svc.complete(contribution, received_at=timezone.now() - datetime.timedelta(hours=1))
    assert status(pending_membership) in ("new", "current")
    assert status(seat) == "registered"


def test_another_contact_can_pay_for_a_gift_membership(pending_membership):
    giver = ContactFactory()
    contribution = svc.create_pending(
        giver,
        currency="GBP",
        lines=[{"kind": "membership", "amount": "30", "membership": pending_membership}],
    )
    svc.complete(contribution)
    assert status(pending_membership) in ("new", "current")


def test_an_event_without_a_fund_uses_the_event_fee_fund(contact):
    event = EventFactory(financial_type=None)
    level = EventFeeLevelFactory(event=event, amount=Decimal("10"))
    [participant] = events.register(
        event, registered_by=contact, attendees=[{"contact": contact, "fee_level": level}]
    )
    assert fee(participant, "10").line_items.get().financial_type.slug == "event-fee"
