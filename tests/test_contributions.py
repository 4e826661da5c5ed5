"""Contributions through the services: creating, paying, failing, cancelling, refunding."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm_core.exceptions import DuplicateTransaction, InvalidTransition, RefundNotAllowed
from crm_core.models import Contribution, FinancialType, RecurringContribution
from crm_core.services import contributions as svc
from tests.factories import CampaignFactory, ContactFactory, FinancialTypeFactory

pytestmark = pytest.mark.django_db


def donation(contact, amount="20.00", currency="GBP", **kwargs):
    return svc.create_pending(
        contact, currency=currency, lines=[{"kind": "donation", "amount": amount}], **kwargs
    )


def paid(contact, amount="50.00", **kwargs):
    return svc.complete(donation(contact, amount, **kwargs), transaction_id="")


def history(contact):
    return list(
        contact.activities.filter(changes__has_key="contribution_status")
        .order_by("id")
        .values_list("changes", flat=True)
    )


# -- create_pending -------------------------------------------------------------------


def test_a_donation_starts_pending_with_its_total_and_the_donation_fund(contact):
    contribution = donation(contact, "12.50")
    assert contribution.status == "pending"
    assert contribution.total_amount == Decimal("12.50")
    assert contribution.financial_type.slug == "donation"
    line = contribution.line_items.get()
    assert (line.kind, line.unit_amount, line.line_total) == (
        "donation",
        Decimal("12.50"),
        Decimal("12.50"),
    )


def test_the_total_is_the_sum_of_the_lines_times_their_quantities(contact):
    contribution = svc.create_pending(
        contact,
        currency="EUR",
        lines=[
            {"kind": "donation", "amount": "10.00", "quantity": 3},
            {"kind": "donation", "amount": Decimal("2.50")},
        ],
    )
    assert contribution.total_amount == Decimal("32.50")


def test_the_contribution_fund_defaults_to_its_first_line(contact):
    appeal = FinancialTypeFactory(slug="roof-appeal")
    contribution = svc.create_pending(
        contact, currency="GBP", lines=[{"amount": "5", "financial_type": appeal}]
    )
    assert contribution.financial_type == appeal


def test_a_donation_line_takes_the_contribution_fund(contact):
    appeal = FinancialTypeFactory(slug="roof-appeal")
    contribution = donation(contact, financial_type=appeal)
    assert contribution.line_items.get().financial_type == appeal


def test_creating_records_it_in_the_payer_history(contact):
    donation(contact)
    assert history(contact) == [{"contribution_status": [None, "pending"]}]


def test_lowercase_currency_is_stored_as_the_iso_code(contact):
    assert donation(contact, currency="eur").currency == "EUR"


@pytest.mark.parametrize("currency", ["XXX", "usd1", "", None, 826])
def test_unknown_currency_is_refused_by_field(contact, currency):
    with pytest.raises(ValidationError) as error:
        donation(contact, currency=currency)
    assert "currency" in error.value.message_dict
    assert not Contribution.objects.exists()


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("-5", "GBP"),
        ("abc", "GBP"),
        ("1e30", "GBP"),
        ("NaN", "GBP"),
        ("12.345", "GBP"),
        ("1.5", "JPY"),
        (True, "GBP"),
        (12.5, "GBP"),
        (["12"], "GBP"),
    ],
)
def test_bad_amounts_are_refused_naming_the_line(contact, amount, currency):
    with pytest.raises(ValidationError) as error:
        donation(contact, amount, currency=currency)
    assert error.value.message_dict["lines"][0].startswith("Line 1:")
    assert not Contribution.objects.exists()


def test_a_zero_total_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        donation(contact, "0")
    assert "total must be more than zero" in error.value.message_dict["lines"][0]


def test_a_zero_line_beside_a_paid_one_is_allowed(contact):
    contribution = svc.create_pending(
        contact,
        currency="GBP",
        lines=[{"amount": "0", "label": "Free programme"}, {"amount": "5"}],
    )
    assert contribution.total_amount == Decimal("5.00")


def test_a_total_beyond_the_largest_amount_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        svc.create_pending(contact, currency="GBP", lines=[{"amount": "9999999999", "quantity": 2}])
    assert "too large" in error.value.message_dict["lines"][0]


@pytest.mark.parametrize(
    "lines",
    [
        [],
        None,
        "donation",
        [{"amount": "5", "colour": "red"}],
        [{"kind": "gift", "amount": "5"}],
        [{"kind": "donation"}],
        [{"amount": "5", "quantity": 0}],
        [{"amount": "5", "quantity": True}],
        [{"kind": "membership", "amount": "5"}],
        [{"kind": "event_fee", "amount": "5"}],
    ],
)
def test_malformed_lines_are_refused(contact, lines):
    with pytest.raises(ValidationError) as error:
        svc.create_pending(contact, currency="GBP", lines=lines)
    assert "lines" in error.value.message_dict


def test_a_contribution_for_a_trashed_contact_is_refused(contact):
    from crm_core.services.contacts import trash_contact

    trash_contact(contact)
    with pytest.raises(ValidationError) as error:
        donation(contact)
    assert "contact" in error.value.message_dict


def test_an_inactive_fund_is_refused(contact):
    closed = FinancialTypeFactory(slug="closed-appeal", is_active=False)
    with pytest.raises(ValidationError) as error:
        donation(contact, financial_type=closed)
    assert "financial_type" in error.value.message_dict


def test_an_unknown_payment_method_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        donation(contact, payment_method="bitcoin")
    assert "payment_method" in error.value.message_dict


def test_campaign_and_note_are_kept_with_markup_removed(contact):
    appeal = CampaignFactory()
    contribution = donation(contact, campaign=appeal, note="<b>In memory</b> of Ann")
    assert contribution.campaign == appeal
    assert contribution.note == "In memory of Ann"


# -- soft credits ---------------------------------------------------------------------


def test_a_soft_credit_defaults_to_the_whole_total(contact):
    honoured = ContactFactory()
    contribution = donation(
        contact, "40", soft_credits=[{"contact": honoured, "kind": "in_memory"}]
    )
    credit = contribution.soft_credits.get()
    assert (credit.contact, credit.kind, credit.amount) == (honoured, "in_memory", Decimal("40.00"))


def test_a_soft_credit_is_recorded_in_the_credited_contact_history(contact):
    honoured = ContactFactory()
    donation(contact, "40", soft_credits=[{"contact": honoured, "kind": "in_honour"}])
    assert honoured.activities.filter(subject__startswith="In honour of credit: 40.00 GBP").exists()


def test_crediting_the_payer_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        donation(contact, soft_credits=[{"contact": contact, "kind": "in_honour"}])
    assert "payer" in error.value.message_dict["soft_credits"][0]


def test_a_soft_credit_larger_than_the_total_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        donation(
            contact,
            "20",
            soft_credits=[{"contact": ContactFactory(), "kind": "peer_to_peer", "amount": "20.01"}],
        )
    assert "more than the contribution" in error.value.message_dict["soft_credits"][0]


def test_a_soft_credit_of_an_unknown_kind_is_refused(contact):
    with pytest.raises(ValidationError):
        donation(contact, soft_credits=[{"contact": ContactFactory(), "kind": "in_spite"}])


def test_the_same_credit_twice_is_refused(contact):
    honoured = ContactFactory()
    credit = {"contact": honoured, "kind": "in_honour"}
    with pytest.raises(ValidationError):
        donation(contact, soft_credits=[credit, credit])


# -- complete -----------------------------------------------------------------------------


def test_completing_marks_it_paid_now_with_a_receipt_to_send(contact):
    contribution = svc.complete(donation(contact), transaction_id="ch_1")
    assert contribution.status == "completed"
    assert contribution.transaction_id == "ch_1"
    assert abs(contribution.received_at - timezone.now()) < datetime.timedelta(minutes=1)
    assert contribution.receipt_status == "pending"


def test_completing_keeps_the_given_received_time(contact):
    when = timezone.now() - datetime.timedelta(days=3)
    assert svc.complete(donation(contact), received_at=when).received_at == when


def test_a_payment_received_in_the_future_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        svc.complete(donation(contact), received_at=timezone.now() + datetime.timedelta(days=7))
    assert "received_at" in error.value.message_dict


def test_completing_twice_changes_nothing_the_second_time(contact):
    contribution = svc.complete(donation(contact), transaction_id="ch_1")
    again = svc.complete(contribution, transaction_id="ch_2", payment_method="cash")
    assert (again.status, again.transaction_id, again.received_at, again.payment_method) == (
        "completed",
        "ch_1",
        contribution.received_at,
        "",
    )
    assert history(contact) == [
        {"contribution_status": [None, "pending"]},
        {"contribution_status": ["pending", "completed"]},
    ]


def test_a_failed_contribution_can_still_be_completed(contact):
    contribution = svc.fail(donation(contact), reason="card declined")
    contribution = svc.complete(contribution)
    assert contribution.status == "completed"
    assert contribution.status_reason == ""


def test_a_cancelled_contribution_cannot_be_completed(contact):
    contribution = svc.cancel(donation(contact))
    with pytest.raises(InvalidTransition):
        svc.complete(contribution)
    contribution.refresh_from_db()
    assert contribution.status == "cancelled"


def test_a_transaction_id_of_another_contribution_is_refused(contact):
    svc.complete(donation(contact), transaction_id="pi_123")
    other = donation(contact)
    with pytest.raises(DuplicateTransaction):
        svc.complete(other, transaction_id="pi_123")
    other.refresh_from_db()
    assert other.status == "pending"


def test_many_contributions_can_complete_without_a_transaction_id(contact):
    svc.complete(donation(contact))
    assert svc.complete(donation(contact)).status == "completed"


# -- offline payments -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["cheque", "cash", "bank_transfer", "other"])
def test_staff_record_an_offline_payment(contact, user, method):
    contribution = svc.record_offline_payment(
        donation(contact), payment_method=method, transaction_id="cheque 000123", actor=user
    )
    assert (contribution.status, contribution.payment_method) == ("completed", method)
    assert (
        contact.activities.get(changes__contribution_status=["pending", "completed"]).created_by
        == user
    )


@pytest.mark.parametrize("method", ["card", "direct_debit", "", "paypal"])
def test_online_methods_cannot_be_recorded_as_offline_payments(contact, method):
    contribution = donation(contact)
    with pytest.raises(ValidationError) as error:
        svc.record_offline_payment(contribution, payment_method=method)
    assert "payment_method" in error.value.message_dict
    contribution.refresh_from_db()
    assert contribution.status == "pending"


# -- fail and cancel -------------------------------------------------------------------


def test_a_pending_contribution_can_fail_with_a_reason(contact):
    contribution = svc.fail(donation(contact), reason="Card declined")
    assert (contribution.status, contribution.status_reason) == ("failed", "Card declined")


def test_failing_twice_records_it_once(contact):
    contribution = svc.fail(donation(contact))
    svc.fail(contribution)
    assert history(contact)[-1] == {"contribution_status": ["pending", "failed"]}
    assert len(history(contact)) == 2


def test_a_paid_contribution_cannot_fail(contact):
    with pytest.raises(InvalidTransition):
        svc.fail(paid(contact))


@pytest.mark.parametrize("first", [None, "fail"])
def test_pending_or_failed_contributions_can_be_cancelled(contact, first):
    contribution = donation(contact)
    if first:
        contribution = svc.fail(contribution)
    contribution = svc.cancel(contribution, reason="Donor changed their mind")
    assert contribution.status == "cancelled"
    assert contribution.status_reason == "Donor changed their mind"
    assert contribution.receipt_status == "not_required"


def test_cancelling_twice_changes_nothing(contact):
    contribution = svc.cancel(donation(contact))
    svc.cancel(contribution)
    assert len(history(contact)) == 2


def test_a_paid_contribution_is_refunded_not_cancelled(contact):
    with pytest.raises(InvalidTransition) as error:
        svc.cancel(paid(contact))
    assert "refund it instead" in error.value.message


def test_a_cancelled_contribution_cannot_fail(contact):
    with pytest.raises(InvalidTransition):
        svc.fail(svc.cancel(donation(contact)))


# -- refund ---------------------------------------------------------------------------


def test_a_full_refund_refunds_everything(contact):
    contribution = svc.refund(paid(contact, "50.00"), reason="Duplicate gift")
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("50.00"))


def test_partial_refunds_accumulate_until_refunded(contact):
    contribution = svc.refund(paid(contact, "50.00"), amount="20.00")
    assert (contribution.status, contribution.refunded_amount) == (
        "partially_refunded",
        Decimal("20.00"),
    )
    contribution = svc.refund(contribution, amount=Decimal("30"))
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("50.00"))
    assert history(contact)[-2:] == [
        {"contribution_status": ["completed", "partially_refunded"]},
        {"contribution_status": ["partially_refunded", "refunded"]},
    ]


def test_a_full_refund_after_a_partial_one_refunds_what_is_left(contact):
    contribution = svc.refund(paid(contact, "50.00"), amount="20.00")
    assert svc.refund(contribution).refunded_amount == Decimal("50.00")


def test_refunding_more_than_is_left_is_refused_with_what_is_left(contact):
    contribution = svc.refund(paid(contact, "50.00"), amount="20.00")
    with pytest.raises(RefundNotAllowed) as error:
        svc.refund(contribution, amount="30.01")
    assert error.value.message == "At most 30.00 GBP is left to refund."
    contribution.refresh_from_db()
    assert contribution.refunded_amount == Decimal("20.00")


@pytest.mark.parametrize("amount", ["0", "-5", "abc", "1.001", True])
def test_bad_refund_amounts_are_refused_by_field(contact, amount):
    contribution = paid(contact)
    with pytest.raises(ValidationError) as error:
        svc.refund(contribution, amount=amount)
    assert "amount" in error.value.message_dict


@pytest.mark.parametrize("make", ["pending", "failed", "cancelled"])
def test_a_contribution_never_paid_cannot_be_refunded(contact, make):
    contribution = donation(contact)
    if make == "failed":
        svc.fail(contribution)
    elif make == "cancelled":
        svc.cancel(contribution)
    with pytest.raises(RefundNotAllowed) as error:
        svc.refund(contribution)
    assert "Only a paid contribution can be refunded" in error.value.message


def test_a_refunded_contribution_cannot_be_refunded_again(contact):
    contribution = svc.refund(paid(contact))
    with pytest.raises(RefundNotAllowed) as error:
        svc.refund(contribution, amount="1")
    assert "already been refunded" in error.value.message


def test_a_refund_of_nothing_is_refused_and_changes_nothing(contact):
    contribution = paid(contact)
    with pytest.raises(ValidationError) as error:
        svc.refund(contribution, amount="0.00")
    assert "more than zero" in str(error.value)
    contribution.refresh_from_db()
    assert (contribution.status, contribution.refunded_amount) == ("completed", Decimal("0"))


def test_completing_a_refunded_contribution_changes_nothing(contact):
    contribution = svc.refund(paid(contact))
    assert svc.complete(contribution).status == "refunded"


def test_refund_in_a_zero_decimal_currency(contact):
    contribution = svc.complete(donation(contact, "5000", currency="JPY"))
    with pytest.raises(ValidationError):
        svc.refund(contribution, amount="0.5")
    assert svc.refund(contribution, amount="1000").refunded_amount == Decimal("1000")


# -- receipts -------------------------------------------------------------------------


def test_marking_the_receipt_sent_keeps_the_first_time(contact):
    contribution = svc.mark_receipt_sent(paid(contact))
    first = contribution.receipt_sent_at
    assert svc.mark_receipt_sent(contribution).receipt_sent_at == first
    assert contribution.receipt_status == "sent"


def test_a_pending_contribution_has_no_receipt_to_send(contact):
    with pytest.raises(InvalidTransition):
        svc.mark_receipt_sent(donation(contact))


# -- recurring -------------------------------------------------------------------------


def monthly(contact, **kwargs):
    kwargs.setdefault("start_date", datetime.date(2026, 1, 31))
    return svc.create_recurring(
        contact,
        amount="10.00",
        currency="GBP",
        frequency_unit="month",
        financial_type=FinancialType.objects.get(slug="donation"),
        **kwargs,
    )


def test_a_recurring_contribution_starts_pending_on_its_start_date(contact):
    recurring = monthly(contact)
    assert (recurring.status, recurring.next_date) == ("pending", datetime.date(2026, 1, 31))


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("amount", {"amount": "0"}),
        ("currency", {"currency": "XXX"}),
        ("frequency_unit", {"frequency_unit": "week"}),
        ("frequency_interval", {"frequency_interval": 0}),
        ("frequency_interval", {"frequency_interval": 37}),
        ("installments", {"installments": 0}),
        ("start_date", {"start_date": datetime.date(2099, 1, 1)}),
        ("start_date", {"start_date": "2026-01-01"}),
        ("payment_method", {"payment_method": "barter"}),
    ],
)
def test_bad_recurring_values_are_refused_by_field(contact, field, kwargs):
    base = {
        "amount": "10",
        "currency": "GBP",
        "frequency_unit": "month",
        "financial_type": FinancialType.objects.get(slug="donation"),
    }
    with pytest.raises(ValidationError) as error:
        svc.create_recurring(contact, **{**base, **kwargs})
    assert field in error.value.message_dict
    assert not RecurringContribution.objects.exists()


def test_a_schedule_ending_after_2199_is_refused(contact):
    with pytest.raises(ValidationError) as error:
        svc.create_recurring(
            contact,
            amount="10.00",
            currency="GBP",
            frequency_unit="year",
            frequency_interval=10,
            installments=1200,
            financial_type=FinancialType.objects.get(slug="donation"),
        )
    assert "2199-12-31" in error.value.message_dict["installments"][0]
    assert not RecurringContribution.objects.exists()


def instalment(recurring):
    return svc.complete(donation(recurring.contact, "10.00", recurring=recurring))


def test_each_paid_instalment_moves_the_next_date_on_keeping_the_day(contact):
    recurring = monthly(contact)
    dates = []
    for _ in range(3):
        instalment(recurring)
        recurring.refresh_from_db()
        dates.append(recurring.next_date)
    assert dates == [
        datetime.date(2026, 2, 28),
        datetime.date(2026, 3, 31),
        datetime.date(2026, 4, 30),
    ]
    assert recurring.status == "in_progress"


def test_a_recurring_contribution_completes_after_its_last_instalment(contact):
    recurring = monthly(contact, installments=2)
    instalment(recurring)
    instalment(recurring)
    recurring.refresh_from_db()
    assert (recurring.status, recurring.next_date) == ("completed", None)


def test_completing_an_instalment_twice_advances_once(contact):
    recurring = monthly(contact)
    contribution = instalment(recurring)
    svc.complete(contribution)
    recurring.refresh_from_db()
    assert recurring.next_date == datetime.date(2026, 2, 28)


def test_a_schedule_whose_next_date_would_pass_9999_ends_instead_of_failing(contact):
    recurring = monthly(contact)
    # Set up before schedules were bounded: the next date would be in year 10009.
    RecurringContribution.objects.filter(pk=recurring.pk).update(
        start_date=datetime.date(9999, 6, 1), frequency_unit="year", frequency_interval=10
    )
    contribution = instalment(recurring)
    recurring.refresh_from_db()
    assert contribution.status == "completed"
    assert (recurring.status, recurring.next_date) == ("completed", None)


def test_cancelling_a_recurring_contribution_needs_a_reason(contact):
    with pytest.raises(ValidationError) as error:
        svc.cancel_recurring(monthly(contact), reason="  ")
    assert "reason" in error.value.message_dict


def test_a_cancelled_recurring_contribution_keeps_its_reason_and_stops(contact):
    recurring = svc.cancel_recurring(monthly(contact), reason="Lost job")
    assert (recurring.status, recurring.cancel_reason, recurring.next_date) == (
        "cancelled",
        "Lost job",
        None,
    )
    assert svc.cancel_recurring(recurring, reason="again").cancel_reason == "Lost job"


def test_an_instalment_of_a_cancelled_recurring_contribution_is_refused(contact):
    recurring = svc.cancel_recurring(monthly(contact), reason="Lost job")
    with pytest.raises(ValidationError) as error:
        donation(contact, recurring=recurring)
    assert "recurring" in error.value.message_dict


def test_a_failed_recurring_contribution_cannot_be_failed_after_cancelling(contact):
    recurring = svc.mark_recurring_failed(monthly(contact), reason="Card expired")
    assert recurring.status == "failed"
    recurring = svc.cancel_recurring(recurring, reason="Card expired")
    with pytest.raises(InvalidTransition):
        svc.mark_recurring_failed(recurring)


@pytest.mark.parametrize(
    ("start", "unit", "interval", "n", "expected"),
    [
        (datetime.date(2026, 1, 31), "month", 1, 1, datetime.date(2026, 2, 28)),
        (datetime.date(2028, 1, 31), "month", 1, 1, datetime.date(2028, 2, 29)),
        (datetime.date(2026, 1, 31), "month", 1, 3, datetime.date(2026, 4, 30)),
        (datetime.date(2026, 1, 31), "month", 1, 12, datetime.date(2027, 1, 31)),
        (datetime.date(2026, 11, 30), "month", 3, 1, datetime.date(2027, 2, 28)),
        (datetime.date(2028, 2, 29), "year", 1, 1, datetime.date(2029, 2, 28)),
        (datetime.date(2028, 2, 29), "year", 1, 4, datetime.date(2032, 2, 29)),
        (datetime.date(2026, 5, 15), "month", 1, 0, datetime.date(2026, 5, 15)),
    ],
)
def test_payment_dates_count_from_the_start_and_clamp_to_month_ends(
    start, unit, interval, n, expected
):
    assert svc.nth_payment_date(start, unit, interval, n) == expected
