"""Annual giving statements by email: one per donor and year, with the PDF, sent once."""

import datetime
import io
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone
from pypdf import PdfReader

from crm_core.services import contributions as svc
from crm_core.services.messages import send_annual_statement, send_annual_statements
from crm_core.tasks import send_statements_task
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def on(year, month=6):
    return timezone.make_aware(datetime.datetime(year, month, 15, 12, 0))


def gift(contact, amount, year, currency="GBP"):
    contribution = svc.create_pending(
        contact, currency=currency, lines=[{"amount": Decimal(amount), "label": "Gift"}]
    )
    return svc.complete(contribution, received_at=on(year))


def test_each_donor_of_the_year_gets_one_statement_with_the_pdf():
    ada = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@example.org"])
    gift(ada, "10.00", 2025)
    gift(ada, "15.50", 2025)
    gift(ada, "99.00", 2024)
    alan = ContactFactory(first_name="Alan", emails=["alan@example.org"])
    gift(alan, "5.00", 2024)  # gave only in another year
    counts = send_annual_statements(2025)
    assert counts == {"donors": 1, "sent": 1, "not_sent": 0, "failed": 0}
    [message] = mail.outbox
    assert message.to == ["ada@example.org"]
    assert message.subject == "Your giving in 2025: thank you"
    assert "Thank you for your 2 gifts in 2025." in message.body
    assert "In all you gave: 25.50 GBP" in message.body
    [(name, content, mimetype)] = message.attachments
    assert (name, mimetype) == ("giving-statement-2025.pdf", "application/pdf")
    text = PdfReader(io.BytesIO(content)).pages[0].extract_text()
    assert "25.50" in text and "99.00" not in text


def test_running_again_sends_nothing_more():
    ada = ContactFactory(emails=["ada@example.org"])
    gift(ada, "10.00", 2025)
    send_annual_statements(2025)
    assert send_annual_statements(2025) == {"donors": 1, "sent": 0, "not_sent": 1, "failed": 0}
    out = io.StringIO()
    call_command("crm_send_statements", "--year", "2025", stdout=out)
    assert "sent: 0" in out.getvalue()
    assert send_statements_task.enqueue(2025).return_value["sent"] == 0
    assert len(mail.outbox) == 1


def test_no_statement_without_kept_gifts_or_address():
    nobody = ContactFactory(emails=["nobody@example.org"])
    assert send_annual_statement(nobody.pk, 2025) is False
    assert send_annual_statement(10**9, 2025) is False
    refunded = ContactFactory(emails=["refunded@example.org"])
    contribution = gift(refunded, "20.00", 2025)
    svc.refund(contribution, amount=Decimal("20.00"))
    no_email = ContactFactory(emails=[])
    gift(no_email, "7.00", 2025)
    assert send_annual_statement(refunded.pk, 2025) is False
    counts = send_annual_statements(2025)
    assert counts["sent"] == 0 and counts["not_sent"] >= 1
    assert mail.outbox == []


def test_command_refuses_an_impossible_year():
    with pytest.raises(CommandError, match="year"):
        call_command("crm_send_statements", "--year", "0", stdout=io.StringIO())
