"""Concurrent payments and refunds, with real connections on SQLite and PostgreSQL."""

import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from crm_core.exceptions import RefundNotAllowed
from crm_core.models import Contribution, LineItem, Membership
from crm_core.services import contributions as svc
from crm_core.services import memberships
from tests.factories import ContactFactory, FinancialTypeFactory, MembershipTypeFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(count, work):
    """Run ``work()`` in ``count`` threads started at once; return results or exceptions."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def target(index):
        try:
            barrier.wait()
            results[index] = work()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()
    return results


def test_eight_concurrent_completions_apply_the_membership_term_once():
    contact = ContactFactory()
    membership = memberships.join(
        contact, MembershipTypeFactory(fee=Decimal("30.00")), pending=True
    )
    contribution = svc.create_pending(
        contact,
        currency="GBP",
        lines=[{"kind": "membership", "amount": "30.00", "membership": membership}],
    )

    results = run_together(
        8, lambda: svc.complete(Contribution.objects.get(pk=contribution.pk), transaction_id="pi_1")
    )

    assert [r for r in results if isinstance(r, Exception)] == []
    membership = Membership.objects.get(pk=membership.pk)
    line = LineItem.objects.get(contribution=contribution)
    assert line.term_end == membership.end_date
    assert contact.activities.filter(subject__startswith="Membership paid").count() == 1
    assert (
        contact.activities.filter(changes__contribution_status=["pending", "completed"]).count()
        == 1
    )


def test_ten_concurrent_refunds_of_ten_on_fifty_refund_exactly_fifty():
    contact = ContactFactory()
    contribution = svc.complete(
        svc.create_pending(
            contact,
            currency="GBP",
            lines=[{"amount": "50.00"}],
            # Transactional tests start empty, without the migration's funds.
            financial_type=FinancialTypeFactory(slug="donation"),
        )
    )

    results = run_together(
        10, lambda: svc.refund(Contribution.objects.get(pk=contribution.pk), amount="10.00")
    )

    refused = [r for r in results if isinstance(r, RefundNotAllowed)]
    assert len(refused) == 5
    assert len([r for r in results if isinstance(r, Contribution)]) == 5
    contribution.refresh_from_db()
    assert (contribution.status, contribution.refunded_amount) == ("refunded", Decimal("50.00"))
