"""crm_payments' services with the offline provider (no network involved)."""

from decimal import Decimal

import pytest

from crm_core.exceptions import RefundNotAllowed
from crm_core.models import ContributionStatus
from crm_payments.models import PaymentStatus, RefundStatus
from crm_payments.services import payments


@pytest.mark.django_db
def test_pay_later_then_staff_record_the_cheque_settles_payment_and_contribution(
    pending_donation,
):
    payment, start = payments.start_payment(
        pending_donation, provider="offline", return_url="/", cancel_url="/"
    )
    assert payment.status == PaymentStatus.PENDING
    assert "reference" in start.instructions.lower()

    payments.record_offline_payment(pending_donation, payment_method="cheque")

    payment.refresh_from_db()
    pending_donation.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert pending_donation.status == ContributionStatus.COMPLETED


@pytest.mark.django_db
def test_refund_of_an_offline_payment_is_recorded_once_and_never_exceeds_the_total(
    pending_donation,
):
    payments.start_payment(pending_donation, provider="offline", return_url="/", cancel_url="/")
    payments.record_offline_payment(pending_donation, payment_method="cash")

    refund = payments.refund_contribution(pending_donation, amount="10.00", reason="asked")
    assert refund.status == RefundStatus.SUCCEEDED
    pending_donation.refresh_from_db()
    assert pending_donation.refunded_amount == Decimal("10.00")
    assert pending_donation.status == ContributionStatus.PARTIALLY_REFUNDED

    with pytest.raises(RefundNotAllowed):
        payments.refund_contribution(pending_donation, amount="15.01")
    payments.refund_contribution(pending_donation)
    pending_donation.refresh_from_db()
    assert pending_donation.status == ContributionStatus.REFUNDED
    assert pending_donation.refunded_amount == Decimal("25.00")
