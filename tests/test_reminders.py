"""Membership renewal reminders: before the end and in grace, each once, with the renewal link."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from crm_core.links import read_contact_token
from crm_core.models import Activity, MembershipStatus, SentMessage
from crm_core.services import contacts as contact_services
from crm_core.services import memberships
from crm_core.services.mailings import FORM_LINK_PARAMETER, FORM_LINK_PURPOSE
from crm_core.services.reminders import due_reminders, send_renewal_reminders
from crm_core.tasks import send_reminders_task
from tests.factories import ContactFactory, MembershipTypeFactory

pytestmark = pytest.mark.django_db

JOINED = datetime.date(2025, 1, 1)
END = datetime.date(2025, 12, 31)


@pytest.fixture(autouse=True)
def reminder_settings(settings):
    settings.CRM = {
        **getattr(settings, "CRM", {}),
        "SITE_BASE_URL": "https://club.example.org",
        "PERSONAL_LINK_PAGES": {"renew": "/join/"},
        "MEMBERSHIP_REMINDER_DAYS_BEFORE": [30, 7],
        "MEMBERSHIP_REMINDER_DAYS_AFTER": [7],
    }


def member(first_name="Grace", email=None, **kwargs):
    contact = ContactFactory(
        first_name=first_name, last_name="Hopper", emails=[email or f"{first_name}@example.org"]
    )
    membership = memberships.join(
        contact, MembershipTypeFactory(name="Friends"), join_date=JOINED, today=JOINED, **kwargs
    )
    assert membership.end_date == END
    return membership


def run(day):
    memberships.update_membership_statuses(today=day)
    return send_renewal_reminders(today=day)


def days(n):
    return END + datetime.timedelta(days=n)


def test_reminder_thirty_days_before_carries_a_signed_renewal_link():
    membership = member()
    counts = run(days(-30))
    assert counts["sent"] == 1
    [message] = mail.outbox
    assert message.to == ["Grace@example.org"]
    assert message.subject == "Your Friends membership ends on 31 December 2025"
    assert "Dear Grace," in message.body
    assert "ends in 30 days, on 31 December 2025" in message.body
    link = next(line for line in message.body.splitlines() if line.startswith("https://"))
    assert link.startswith("https://club.example.org/join/?")
    token = parse_qs(urlsplit(link).query)[FORM_LINK_PARAMETER][0]
    assert read_contact_token(token, FORM_LINK_PURPOSE) == membership.contact
    assert Activity.objects.filter(contact=membership.contact, subject__contains="ends on").exists()


def test_each_reminder_goes_once_however_often_it_runs():
    member()
    for day in (days(-40), days(-30), days(-30), days(-29), days(-8)):
        run(day)
    assert len(mail.outbox) == 1
    for day in (days(-7), days(-7), days(-3), days(0)):
        run(day)
    assert len(mail.outbox) == 2
    assert "ends in 7 days" in mail.outbox[1].body
    assert send_renewal_reminders(today=days(-3)) == {
        "due": 1,
        "sent": 0,
        "already_sent": 1,
        "not_sendable": 0,
        "failed": 0,
    }


def test_a_run_that_missed_days_sends_the_reminder_due_once():
    member()
    run(days(-20))
    assert len(mail.outbox) == 1
    assert "ends in 20 days" in mail.outbox[0].body
    run(days(-10))
    assert len(mail.outbox) == 1


def test_last_day_uses_the_singular_wording():
    member()
    run(days(-1))
    assert "ends tomorrow, 31 December 2025" in mail.outbox[0].body


def test_grace_reminder_after_the_end_names_the_grace_end():
    membership = member()
    run(days(3))
    assert mail.outbox == []
    run(days(7))
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.GRACE
    [message] = mail.outbox
    assert message.subject == "Your Friends membership has ended: renew it now"
    grace_end = END + datetime.timedelta(days=membership.membership_type.grace_period_days)
    assert f"until {grace_end:%-d %B %Y}" in message.body
    assert "https://club.example.org/join/?" in message.body
    run(days(8))
    assert len(mail.outbox) == 1


def test_no_grace_reminder_once_expired():
    membership = member()
    after_grace = days(membership.membership_type.grace_period_days + 10)
    run(after_grace)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.EXPIRED
    assert mail.outbox == []


def test_a_renewed_term_gets_its_own_reminders():
    membership = member()
    run(days(-30))
    memberships.renew(membership, today=days(-25))
    membership.refresh_from_db()
    assert membership.end_date == datetime.date(2026, 12, 31)
    run(days(-7))
    assert len(mail.outbox) == 1  # the old term's 7-day reminder is not due any more
    run(datetime.date(2026, 12, 1))
    assert len(mail.outbox) == 2
    assert "31 December 2026" in mail.outbox[1].subject


def test_who_gets_no_reminder():
    member("Auto", auto_renew=False)  # the control: this one is reminded
    lifetime_type = MembershipTypeFactory(name="Life", duration_unit="lifetime")
    contact = ContactFactory(first_name="Lifer", emails=["lifer@example.org"])
    memberships.join(contact, lifetime_type, join_date=JOINED, today=JOINED)
    bounced = member("Bounced")
    email = bounced.contact.primary_email
    email.on_hold = True
    email.save()
    deceased = member("Late")
    contact_services.update_contact(deceased.contact, is_deceased=True)
    cancelled = member("Gone")
    memberships.cancel(cancelled, reason="moved away")
    counts = run(days(-30))
    assert [m.to for m in mail.outbox] == [["Auto@example.org"]]
    assert counts["not_sendable"] == 1  # the bounced address
    assert not SentMessage.objects.filter(contact=bounced.contact).exists()


def test_auto_renewing_memberships_are_not_reminded():
    contact = ContactFactory(emails=["auto@example.org"])
    mtype = MembershipTypeFactory(name="Monthly", auto_renew="optional")
    memberships.join(contact, mtype, join_date=JOINED, today=JOINED, auto_renew=True)
    assert due_reminders(today=days(-30)) == []


def test_a_failing_mail_server_loses_nothing(settings):
    member()
    settings.EMAIL_BACKEND = "tests.test_reminders.BrokenBackend"
    counts = run(days(-30))
    assert counts["failed"] == 1
    assert not SentMessage.objects.exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert run(days(-29))["sent"] == 1
    assert len(mail.outbox) == 1


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("mail server away")


def test_configured_days_are_used(settings):
    settings.CRM = {**settings.CRM, "MEMBERSHIP_REMINDER_DAYS_BEFORE": [60]}
    member()
    run(days(-45))
    assert "ends in 45 days" in mail.outbox[0].body
    settings.CRM = {**settings.CRM, "MEMBERSHIP_REMINDER_DAYS_BEFORE": []}
    assert due_reminders(today=days(-5)) == []


def test_selection_runs_a_constant_number_of_queries(django_assert_num_queries):
    member("One")
    # ending soon, their contacts' emails, in grace (none, so no emails query)
    with django_assert_num_queries(3):
        assert len(due_reminders(today=days(-30))) == 1
    for name in ("Two", "Three", "Four"):
        member(name)
    with django_assert_num_queries(3):
        assert len(due_reminders(today=days(-30))) == 4


def test_command_and_task_are_idempotent():
    member()
    memberships.update_membership_statuses(today=days(-30))
    out = []
    call_command("crm_send_reminders", "--date", str(days(-30)), stdout=FakeOut(out))
    assert "sent: 1" in out
    out.clear()
    call_command("crm_send_reminders", "--date", str(days(-30)), stdout=FakeOut(out))
    assert "sent: 0" in out and "already_sent: 1" in out
    result = send_reminders_task.enqueue(str(days(-30)))
    assert result.return_value["sent"] == 0
    assert len(mail.outbox) == 1


def test_command_refuses_a_bad_date():
    with pytest.raises(CommandError, match="expected YYYY-MM-DD"):
        call_command("crm_send_reminders", "--date", "31/12/2025")


class FakeOut:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text, *args, **kwargs):
        self.lines.extend(text.strip().splitlines())

    def flush(self):
        pass
