"""Transactional emails about core records, each sent once.

- ``send_receipt``: a paid contribution's receipt (what it paid for; the
  membership term it bought; an .ics file for each event it paid seats at).
- ``send_registration_confirmation``: one registration's seats, held or on
  the waiting list, with the event's .ics file.
- ``send_membership_confirmation``: welcome to a membership, or its renewal.

Each message has a key (``receipt:42``); a ``SentMessage`` row with that key
is written in the same transaction as the sending, so running a task twice,
or two workers at once, sends it once. They go to the contact's primary
email unless it is on hold (bounced) or the contact has died; the sending is
recorded on the contact's timeline. Callers enqueue the tasks of
``crm_core.tasks`` after their transaction commits (``enqueue_after_commit``).
"""

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from ..ical import event_ics
from ..models import (
    Activity,
    ActivityType,
    Contribution,
    LineItemKind,
    Membership,
    Participant,
    ParticipantStatus,
    ReceiptStatus,
    SentMessage,
)
from ..money import format_money
from ..sanitize import plain_text
from .contributions import PAID_STATUSES, mark_receipt_sent

SOURCE = "crm:messages"


def enqueue_after_commit(task, *args):
    """Enqueue ``task`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: task.enqueue(*args))


def _site_name():
    return getattr(settings, "WAGTAIL_SITE_NAME", "") or "CRM"


def _address(contact):
    if contact is None or contact.is_deceased:
        return ""
    email = contact.primary_email
    if email is None or email.on_hold:
        return ""
    return email.email


def _send_once(key, contact, subject, template, context, attachments=()):
    """Send one message for ``key``; False when it went out before or cannot go."""
    to = _address(contact)
    if not to:
        return False
    subject = plain_text(subject)[:255]
    with transaction.atomic():
        try:
            with transaction.atomic():
                SentMessage.objects.create(key=key, contact=contact, to=to, subject=subject)
        except IntegrityError:
            return False
        body = render_to_string(
            f"crm_core/email/{template}.txt",
            {"contact": contact, "site_name": _site_name(), **context},
        )
        message = EmailMessage(subject, body, to=[to])
        for filename, content, mimetype in attachments:
            message.attach(filename, content, mimetype)
        message.send()
        Activity.objects.create(
            contact=contact,
            activity_type=ActivityType.EMAIL,
            subject=_("Email sent: %(subject)s") % {"subject": subject},
            details=body,
            source=SOURCE,
        )
    return True


def _local(event, moment):
    return timezone.localtime(moment, event.zone)


def _event_context(event):
    return {
        "event": event,
        "starts": _local(event, event.starts_at),
        "ends": _local(event, event.ends_at),
        "place": ", ".join(p for p in (event.location, event.address) if p) or event.online_url,
    }


def _ics(event):
    return (f"{event.slug or 'event'}.ics", event_ics(event), "text/calendar")


def send_receipt(contribution_id):
    """Email the receipt of a paid contribution, once; marks the receipt sent."""
    contribution = (
        Contribution.objects.select_related("contact")
        .prefetch_related("contact__emails")
        .filter(pk=contribution_id)
        .first()
    )
    if contribution is None or contribution.status not in PAID_STATUSES:
        return False
    if contribution.receipt_status == ReceiptStatus.SENT:
        return False
    lines, events = [], {}
    items = contribution.line_items.select_related(
        "membership__membership_type", "participant__event", "participant__contact"
    ).order_by("id")
    for item in items:
        line = {"label": item.label, "amount": format_money(item.line_total, contribution.currency)}
        if item.kind == LineItemKind.MEMBERSHIP and item.membership_id:
            line["membership"] = item.membership
        elif item.kind == LineItemKind.EVENT_FEE and item.participant_id:
            event = item.participant.event
            events.setdefault(event.pk, event)
            line["participant"] = item.participant
        lines.append(line)
    with transaction.atomic():
        sent = _send_once(
            f"receipt:{contribution.pk}",
            contribution.contact,
            _("Receipt for your payment of %(money)s")
            % {"money": format_money(contribution.total_amount, contribution.currency)},
            "receipt",
            {
                "contribution": contribution,
                "total": format_money(contribution.total_amount, contribution.currency),
                "received": timezone.localtime(contribution.received_at or timezone.now()),
                "lines": lines,
                "events": [_event_context(event) for event in events.values()],
            },
            attachments=[_ics(event) for event in events.values()],
        )
        if sent:
            mark_receipt_sent(contribution, source=SOURCE)
    return sent


def send_registration_confirmation(registration):
    """Email whoever made a registration (``Participant.registration``) its seats, once."""
    participants = list(
        Participant.objects.filter(registration=registration)
        .select_related("event", "contact", "registered_by")
        .prefetch_related("registered_by__emails", "contact__emails")
        .order_by("id")
    )
    if not participants:
        return False
    first = participants[0]
    event, booker = first.event, first.registered_by or first.contact
    statuses = {p.status for p in participants}
    if statuses == {ParticipantStatus.WAITLISTED}:
        state, subject = "waitlisted", _("You are on the waiting list for %(event)s")
    elif ParticipantStatus.PENDING_PAYMENT in statuses:
        state, subject = "held", _("Your places at %(event)s are held")
    else:
        state, subject = "registered", _("You are registered for %(event)s")
    attachments = [] if state == "waitlisted" else [_ics(event)]
    return _send_once(
        f"registration:{registration}",
        booker,
        subject % {"event": event.title},
        "registration",
        {"state": state, "participants": participants, **_event_context(event)},
        attachments=attachments,
    )


def send_membership_confirmation(membership_id, *, renewal=False):
    """Welcome a member, or confirm a renewal; once for each term (keyed by its end)."""
    membership = (
        Membership.objects.select_related("contact", "membership_type")
        .prefetch_related("contact__emails")
        .filter(pk=membership_id)
        .first()
    )
    if membership is None or membership.status in ("pending", "cancelled", "deceased"):
        return False
    name = membership.membership_type.name
    if renewal:
        subject = _("Your %(type)s membership is renewed") % {"type": name}
    else:
        subject = _("Welcome: your %(type)s membership") % {"type": name}
    return _send_once(
        f"membership:{membership.pk}:{membership.end_date or 'lifetime'}",
        membership.contact,
        subject,
        "membership",
        {"membership": membership, "renewal": renewal},
    )
