"""``manage.py crm_demo_payments``: payment history on top of ``crm_demo_data``.

Adds what a site taking money online would have: a Stripe payment (with
fake ``cs_demo_`` / ``pi_demo_`` / ``ch_demo_`` ids, never sent to Stripe)
behind every contribution the demo data says was paid by card, refunds
behind its refunds, a few donations waiting for a bank transfer (pay
later), a declined card, a refund and a chargeback reported by Stripe, a
few processed webhook events and an IP address blocked by the card-testing
defence.

The history of contributions already paid is written as rows (it happened
before crm_payments existed, as after an import); everything new goes
through ``crm_payments.services``. One transaction; a second run finds the
demo's payments and writes nothing.
"""

from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from crm_core.management.commands.crm_demo_data import PREFIX
from crm_core.models import (
    Contact,
    ContactKind,
    Contribution,
    ContributionStatus,
    PaymentMethod,
)
from crm_core.services import contributions as contribution_services
from crm_payments.models import Payment, PaymentStatus, Refund, RefundStatus, WebhookEvent
from crm_payments.services import payments, velocity

SOURCE = "demo payments"
DEMO_ID = "demo_"  # in every provider id the demo makes: cs_demo_..., pi_demo_...
# Documentation addresses (RFC 5737): they belong to nobody.
CARD_TESTER_IP = "203.0.113.66"
DECLINED_IP = "198.51.100.23"
PAY_LATER = [Decimal("25.00"), Decimal("10.00"), Decimal("50.00"), Decimal("15.00")]
S = ContributionStatus


def _email(contact):
    row = contact.primary_email
    return row.email if row else ""


def _ids(contribution):
    key = contribution.reference.hex[:20]
    return f"cs_{DEMO_ID}{key}", f"pi_{DEMO_ID}{key}", f"ch_{DEMO_ID}{key}"


class Command(BaseCommand):
    help = "Add payments, refunds, a dispute and a card-testing block to the demo data."

    def handle(self, *args, **options):
        if Payment.objects.filter(provider_id__startswith=f"cs_{DEMO_ID}").exists():
            self.stdout.write("Demo payments are already loaded; nothing added.")
            return
        demo = Contribution.objects.filter(contact__external_id__startswith=PREFIX)
        if not demo.exists():
            self.stdout.write("No demo contributions: run `manage.py crm_demo_data` first.")
            return
        with transaction.atomic():
            summary = self.load(demo)
        for line in summary:
            self.stdout.write(line)

    def load(self, demo):
        paid = self.card_history(demo)
        refunded = self.refund_history(paid)
        latest = sorted(
            (
                payment
                for payment in paid
                if payment.status == PaymentStatus.SUCCEEDED and payment.pk not in refunded
            ),
            key=lambda payment: (payment.completed_at, payment.pk),
            reverse=True,
        )
        self.refund_reported_by_stripe(latest[0])
        self.dispute(latest[1])
        self.webhook_events(latest[:10])
        contacts = list(
            Contact.objects.filter(external_id__startswith=PREFIX, kind=ContactKind.INDIVIDUAL)
            .exclude(is_deceased=True)
            .order_by("id")[: len(PAY_LATER) + 1]
        )
        for contact, amount in zip(contacts, PAY_LATER, strict=False):
            self.pay_later(contact, amount)
        self.declined_card(contacts[-1])
        for _ in range(10):
            velocity.record_decline(ip=CARD_TESTER_IP)
        return [
            f"Card payments: {len(paid)} (refunds behind {len(refunded)} of them)",
            f"Waiting for a bank transfer: {len(PAY_LATER)}",
            "Refunded at Stripe: 1; disputed: 1; declined: 1",
            f"Webhook events: {len(latest[:10])}",
            f"Blocked by the card-testing defence: {CARD_TESTER_IP}",
        ]

    def card_history(self, demo):
        """A Stripe payment behind every card contribution of the demo data."""
        rows = []
        contributions = demo.filter(
            payment_method=PaymentMethod.CARD,
            status__in=[S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.FAILED],
            payments__isnull=True,
        ).order_by("id")
        for contribution in contributions:
            session, intent, charge = _ids(contribution)
            failed = contribution.status == S.FAILED
            when = contribution.received_at or contribution.created_at
            rows.append(
                Payment(
                    contribution=contribution,
                    provider="stripe",
                    status=PaymentStatus.FAILED if failed else PaymentStatus.SUCCEEDED,
                    amount=contribution.total_amount,
                    currency=contribution.currency,
                    provider_id=session,
                    payment_intent_id=intent,
                    charge_id="" if failed else charge,
                    failure_reason=contribution.status_reason[:255] if failed else "",
                    created_at=when,
                    completed_at=None if failed else when,
                )
            )
        return Payment.objects.bulk_create(rows)

    def refund_history(self, paid):
        """A Stripe refund behind each refund the demo data recorded (already in the books)."""
        rows = []
        for payment in paid:
            contribution = payment.contribution
            if payment.status != PaymentStatus.SUCCEEDED or not contribution.refunded_amount:
                continue
            rows.append(
                Refund(
                    payment=payment,
                    provider="stripe",
                    contribution=contribution,
                    amount=contribution.refunded_amount,
                    currency=contribution.currency,
                    status=RefundStatus.SUCCEEDED,
                    provider_id=f"re_{DEMO_ID}{contribution.reference.hex[:20]}",
                    reason=contribution.status_reason[:255],
                    applied_at=timezone.now(),
                    created_at=payment.completed_at,
                )
            )
        Refund.objects.bulk_create(rows)
        return {refund.payment_id for refund in rows}

    def refund_reported_by_stripe(self, payment):
        payments.record_provider_refund(
            payment,
            provider_id=f"re_{DEMO_ID}dashboard",
            amount=payment.amount,
            status=RefundStatus.SUCCEEDED,
            reason="Refunded from the Stripe dashboard at the donor's request",
            source=SOURCE,
        )

    def dispute(self, payment):
        payments.record_dispute(
            payment,
            provider_id=f"dp_{DEMO_ID}1",
            amount=payment.amount,
            status="needs_response",
            reason="fraudulent",
            source=SOURCE,
        )

    def webhook_events(self, paid):
        WebhookEvent.objects.bulk_create(
            WebhookEvent(
                provider="stripe",
                event_id=f"evt_{DEMO_ID}{number}",
                event_type="checkout.session.completed",
                object_id=payment.provider_id,
                status="processed",
                received_at=payment.completed_at,
                processed_at=payment.completed_at,
            )
            for number, payment in enumerate(paid, start=1)
        )

    def donation(self, contact, amount):
        return contribution_services.create_pending(
            contact,
            currency="GBP",
            lines=[{"kind": "donation", "amount": amount, "label": "Donation"}],
            source=SOURCE,
        )

    def pay_later(self, contact, amount):
        payments.start_payment(
            self.donation(contact, amount),
            provider="offline",
            return_url="/",
            cancel_url="/",
            email=_email(contact),
        )

    def declined_card(self, contact):
        # Started as the Stripe provider would have (it is not called: no network).
        contribution = self.donation(contact, Decimal("30.00"))
        session, intent, _charge = _ids(contribution)
        payment = Payment.objects.create(
            contribution=contribution,
            provider="stripe",
            status=PaymentStatus.PENDING,
            amount=contribution.total_amount,
            currency=contribution.currency,
            provider_id=session,
            payment_intent_id=intent,
            email=_email(contact),
            client_ip=DECLINED_IP,
        )
        payments.mark_payment_failed(payment, reason="Your card was declined.", source=SOURCE)
