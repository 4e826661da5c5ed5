"""Transactional emails about core records, each sent once, in editable wording.

- ``send_receipt``: a paid contribution's receipt (what it paid for; the
  membership term it bought; an .ics file for each event it paid seats at).
  ``resend_receipt`` sends it again when staff ask (a new key each time).
- ``send_registration_confirmation``: one registration's seats, held or on
  the waiting list, with the event's .ics file.
- ``send_membership_confirmation``: welcome to a membership, or its renewal.
- ``send_waitlist_offer``: a seat came free for a registration on the
  waiting list; the message carries a signed link to take it.
- renewal reminders (``crm_core.services.reminders``): a membership ends
  soon (or ended and is in its grace period), with the signed renewal link.
- ``send_annual_statement``: a donor's giving in a year, as a PDF.

Receipts carry the PDF receipt (``crm_core.pdf``) as an attachment.

Each message has a key (``receipt:42``); a ``SentMessage`` row with that key
is written in the same transaction as the sending, so running a task twice,
or two workers at once, sends it once. They go to the contact's primary
email unless it is on hold (bounced) or the contact has died; the sending is
recorded on the contact's timeline. Callers enqueue the tasks of
``crm_core.tasks`` after their transaction commits (``enqueue_after_commit``).

Wording. Each kind of message (``MessageKind``) has a subject and a plain
text body, both templates rendered with plain values only (``TOKENS`` lists
them per kind; no model instances, so a template cannot walk the database).
The shipped wording is ``crm_core/email/<kind>_subject.txt`` and
``<kind>.txt``, translated through ``{% blocktranslate %}``; editors replace
it in the admin (``MessageWording``). A replacement that fails to render is
logged and the shipped wording is used, so a typo never stops a receipt.
"""

import datetime
import logging
import uuid

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template import Context, Engine
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..dates import in_zone
from ..ical import event_ics
from ..links import make_registration_token
from ..models import (
    Activity,
    ActivityType,
    Contact,
    Contribution,
    LineItemKind,
    Membership,
    MessageKind,
    MessageWording,
    Participant,
    ParticipantStatus,
    ReceiptStatus,
    SentMessage,
)
from ..money import format_money
from ..pdf import annual_statement_pdf, receipt_pdf
from ..sanitize import plain_text
from ..selectors.contributions import GIFT_STATUSES
from ..selectors.statements import giving_statement, year_bounds
from .contributions import PAID_STATUSES, mark_receipt_sent
from .mailings import site_url

SOURCE = "crm:messages"
logger = logging.getLogger("crm.messages")

# Wording is compiled by a bare engine: Django's built-in tags and filters and
# i18n, no loaders (so no {% include %} of site files), no autoescaping (the
# messages are plain text).
WORDING_ENGINE = Engine(autoescape=False, libraries={"i18n": "django.templatetags.i18n"})

_PERSON = [
    ("first_name", gettext_lazy("the contact's first name")),
    ("last_name", gettext_lazy("the contact's last name")),
    ("display_name", gettext_lazy("the contact's full name")),
    ("site_name", gettext_lazy("the organisation's name")),
]
_EVENT = [
    ("title", gettext_lazy("the event's title")),
    ("starts", gettext_lazy('when it starts (use |date:"j F Y, H:i")')),
    ("ends", gettext_lazy("when it ends")),
    ("time_zone", gettext_lazy("the event's time zone")),
    ("place", gettext_lazy("where it is (location and address, or the online link)")),
]
TOKENS = {
    MessageKind.RECEIPT: [
        *_PERSON,
        ("total", gettext_lazy("the amount paid, with its currency")),
        ("received", gettext_lazy("when it was received")),
        ("receipt_number", gettext_lazy("the receipt number")),
        (
            "lines",
            gettext_lazy(
                "what it paid for: label, amount, membership_type, "
                "membership_end, person of each line"
            ),
        ),
        (
            "events",
            gettext_lazy(
                "the events it paid places at: title, starts, ends, time_zone, place of each"
            ),
        ),
    ],
    MessageKind.REGISTRATION: [
        *_PERSON,
        *_EVENT,
        ("state", gettext_lazy('"registered", "held" (awaiting payment) or "waitlisted"')),
        ("participants", gettext_lazy("who is coming: name and status of each")),
    ],
    MessageKind.MEMBERSHIP: [
        *_PERSON,
        ("renewal", gettext_lazy("true for a renewal, false for a new member")),
        ("membership_type", gettext_lazy("the membership type")),
        ("start_date", gettext_lazy("the term's first day")),
        ("end_date", gettext_lazy("the term's last day (blank for life)")),
    ],
    MessageKind.RENEWAL_REMINDER: [
        *_PERSON,
        ("membership_type", gettext_lazy("the membership type")),
        ("end_date", gettext_lazy("the term's last day")),
        ("days_left", gettext_lazy("days until it ends")),
        ("renew_url", gettext_lazy("the signed one-click renewal link")),
    ],
    MessageKind.GRACE_REMINDER: [
        *_PERSON,
        ("membership_type", gettext_lazy("the membership type")),
        ("end_date", gettext_lazy("the term's last day")),
        ("grace_end", gettext_lazy("the last day of the grace period")),
        ("renew_url", gettext_lazy("the signed one-click renewal link")),
    ],
    MessageKind.WAITLIST_OFFER: [
        *_PERSON,
        *_EVENT,
        ("offer_expires", gettext_lazy("until when the place is held")),
        ("accept_url", gettext_lazy("the signed link that takes the place")),
        ("participants", gettext_lazy("who the place is for: name of each")),
    ],
    MessageKind.ANNUAL_STATEMENT: [
        *_PERSON,
        ("year", gettext_lazy("the year")),
        ("totals", gettext_lazy("the total given, per currency")),
        ("gift_count", gettext_lazy("how many gifts")),
    ],
}


def sample_context(kind):
    """Made-up values for ``kind``, to check and preview a wording in the admin."""
    now = timezone.now().replace(microsecond=0)
    today = timezone.localdate()
    event = {
        "title": _("Annual general meeting"),
        "starts": now + datetime.timedelta(days=10),
        "ends": now + datetime.timedelta(days=10, hours=2),
        "time_zone": settings.TIME_ZONE,
        "place": _("Town hall, 1 High Street"),
    }
    person = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "display_name": "Ada Lovelace",
        "site_name": _site_name(),
    }
    url = "https://example.org/renew/?link=..."
    values = {
        MessageKind.RECEIPT: {
            "total": "£25.00",
            "received": now,
            "receipt_number": 1234,
            "lines": [
                {"label": _("Donation"), "amount": "£10.00"},
                {
                    "label": _("Membership"),
                    "amount": "£15.00",
                    "membership_type": _("Individual"),
                    "membership_end": today + datetime.timedelta(days=365),
                },
            ],
            "events": [],
        },
        MessageKind.REGISTRATION: {
            **event,
            "state": "registered",
            "participants": [{"name": "Ada Lovelace", "status": _("Registered")}],
        },
        MessageKind.MEMBERSHIP: {
            "renewal": False,
            "membership_type": _("Individual"),
            "start_date": today,
            "end_date": today + datetime.timedelta(days=365),
        },
        MessageKind.RENEWAL_REMINDER: {
            "membership_type": _("Individual"),
            "end_date": today + datetime.timedelta(days=30),
            "days_left": 30,
            "renew_url": url,
        },
        MessageKind.GRACE_REMINDER: {
            "membership_type": _("Individual"),
            "end_date": today - datetime.timedelta(days=7),
            "grace_end": today + datetime.timedelta(days=23),
            "renew_url": url,
        },
        MessageKind.WAITLIST_OFFER: {
            **event,
            "offer_expires": now + datetime.timedelta(hours=48),
            "accept_url": "https://example.org/crm/waitlist/...",
            "participants": [{"name": "Ada Lovelace"}],
        },
        MessageKind.ANNUAL_STATEMENT: {
            "year": today.year - 1,
            "totals": ["£120.00"],
            "gift_count": 4,
        },
    }
    return {**person, **values[kind]}


def default_wording(kind):
    """The shipped ``(subject, body)`` template sources of ``kind``."""
    kind = MessageKind(kind)
    return (
        get_template(f"crm_core/email/{kind.value}_subject.txt").template.source,
        get_template(f"crm_core/email/{kind.value}.txt").template.source,
    )


def check_wording(kind, subject, body):
    """Errors of an editor's wording as ``{field: message}``; empty when it renders."""
    errors = {}
    context = sample_context(kind)
    for field, source in (("subject", subject), ("body", body)):
        try:
            WORDING_ENGINE.from_string(source or "").render(Context(context))
        except Exception as exc:  # noqa: BLE001 - any template error is the editor's to fix
            errors[field] = _("This text has an error: %(error)s") % {"error": exc}
    return errors


def _render(subject_source, body_source, context):
    subject = WORDING_ENGINE.from_string(subject_source).render(Context(context))
    # Template.render marks its output safe for HTML; this text is not HTML,
    # so it leaves as a plain str and is escaped wherever a page shows it.
    body = "".join([WORDING_ENGINE.from_string(body_source).render(Context(context))])
    # A header: one line, no control characters.
    return plain_text(" ".join(subject.split()))[:255], body


def render_message(kind, context):
    """``(subject, body)`` of ``kind`` for ``context``, in the editors' wording when set."""
    wording = MessageWording.objects.filter(kind=kind).first()
    default_subject, default_body = default_wording(kind)
    if wording is not None and wording.is_custom:
        try:
            return _render(
                wording.subject.strip() or default_subject,
                wording.body.strip() or default_body,
                context,
            )
        except Exception:  # noqa: BLE001 - fall back to the shipped wording, loudly
            logger.exception("The wording of %s failed to render; using the shipped one", kind)
    return _render(default_subject, default_body, context)


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


def person_context(contact):
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "display_name": contact.display_name,
        "site_name": _site_name(),
    }


def send_once(key, contact, kind, context, attachments=()):
    """Send message ``kind`` for ``key`` once; False when it went out before or cannot go."""
    to = _address(contact)
    if not to:
        return False
    subject, body = render_message(kind, {**person_context(contact), **context})
    with transaction.atomic():
        try:
            with transaction.atomic():
                SentMessage.objects.create(key=key, contact=contact, to=to, subject=subject)
        except IntegrityError:
            return False
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
    return in_zone(moment, event.zone)


def event_context(event):
    return {
        "title": event.title,
        "starts": _local(event, event.starts_at),
        "ends": _local(event, event.ends_at),
        "time_zone": event.time_zone,
        "place": ", ".join(p for p in (event.location, event.address) if p) or event.online_url,
    }


def _ics(event):
    return (f"{event.slug or 'event'}.ics", event_ics(event), "text/calendar")


def _paid_contribution(contribution_id):
    contribution = (
        Contribution.objects.select_related("contact")
        .prefetch_related("contact__emails")
        .filter(pk=contribution_id)
        .first()
    )
    if contribution is None or contribution.status not in PAID_STATUSES:
        return None
    return contribution


def _send_receipt(contribution, key, *, actor=None):
    """Email ``contribution``'s receipt under ``key``; marks the receipt sent if it was not."""
    lines, events = [], {}
    items = contribution.line_items.select_related(
        "membership__membership_type", "participant__event", "participant__contact"
    ).order_by("id")
    for item in items:
        line = {"label": item.label, "amount": format_money(item.line_total, contribution.currency)}
        if item.kind == LineItemKind.MEMBERSHIP and item.membership_id:
            line["membership_type"] = item.membership.membership_type.name
            line["membership_end"] = item.membership.end_date
        elif item.kind == LineItemKind.EVENT_FEE and item.participant_id:
            event = item.participant.event
            events.setdefault(event.pk, event)
            line["person"] = item.participant.contact.display_name
        lines.append(line)
    with transaction.atomic():
        sent = send_once(
            key,
            contribution.contact,
            MessageKind.RECEIPT,
            {
                "total": format_money(contribution.total_amount, contribution.currency),
                "received": timezone.localtime(contribution.received_at or timezone.now()),
                "receipt_number": contribution.pk,
                "lines": lines,
                "events": [event_context(event) for event in events.values()],
            },
            attachments=[
                (f"receipt-{contribution.pk}.pdf", receipt_pdf(contribution), "application/pdf"),
                *[_ics(event) for event in events.values()],
            ],
        )
        if sent and contribution.receipt_status != ReceiptStatus.SENT:
            mark_receipt_sent(contribution, actor=actor, source=SOURCE)
    return sent


def send_receipt(contribution_id):
    """Email the receipt of a paid contribution, once; marks the receipt sent."""
    contribution = _paid_contribution(contribution_id)
    if contribution is None or contribution.receipt_status == ReceiptStatus.SENT:
        return False
    return _send_receipt(contribution, f"receipt:{contribution.pk}")


def resend_receipt(contribution_id, *, actor=None):
    """Email a paid contribution's receipt again, when staff ask for it.

    ``send_receipt`` sends once per contribution; this sends under a new key
    each time (``receipt:<pk>:resend:<uuid>``), so every resend is a
    deliberate act, recorded on the donor's timeline like any email. Returns
    False, sending nothing, for a contribution that is missing or unpaid,
    or a donor without a usable address. A receipt never marked sent is
    marked sent (by ``actor``).
    """
    contribution = _paid_contribution(contribution_id)
    if contribution is None:
        return False
    return _send_receipt(
        contribution, f"receipt:{contribution.pk}:resend:{uuid.uuid4().hex}", actor=actor
    )


def send_annual_statement(contact_id, year):
    """Email a donor's giving statement for ``year`` as a PDF, once; False without gifts."""
    contact = Contact.objects.prefetch_related("emails").filter(pk=contact_id).first()
    if contact is None:
        return False
    statement = giving_statement(contact, year)
    if not statement.rows:
        return False
    return send_once(
        f"statement:{contact.pk}:{year}",
        contact,
        MessageKind.ANNUAL_STATEMENT,
        {
            "year": year,
            "totals": [
                format_money(total, currency) for currency, total in statement.totals.items()
            ],
            "gift_count": len(statement.rows),
        },
        attachments=[
            (
                f"giving-statement-{year}.pdf",
                annual_statement_pdf(contact, year),
                "application/pdf",
            )
        ],
    )


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
        state = "waitlisted"
    elif ParticipantStatus.PENDING_PAYMENT in statuses:
        state = "held"
    else:
        state = "registered"
    attachments = [] if state == "waitlisted" else [_ics(event)]
    return send_once(
        f"registration:{registration}",
        booker,
        MessageKind.REGISTRATION,
        {
            "state": state,
            "participants": [
                {"name": p.contact.display_name, "status": p.get_status_display()}
                for p in participants
            ],
            **event_context(event),
        },
        attachments=attachments,
    )


def waitlist_accept_url(registration):
    """The signed public link that takes up a registration's seat offer."""
    token = make_registration_token(registration)
    return site_url(reverse("crm_core:waitlist_offer", args=[token]))


def send_waitlist_offer(registration):
    """Tell whoever made a waiting registration that seats are offered, once per offer.

    Keyed by the offer's expiry, so a later offer (after this one lapsed) is
    sent again. Returns False when no seat of the registration is on offer.
    """
    now = timezone.now()
    participants = list(
        Participant.objects.filter(
            registration=registration,
            status=ParticipantStatus.WAITLISTED,
            offer_expires_at__gt=now,
        )
        .select_related("event", "contact", "registered_by")
        .prefetch_related("registered_by__emails", "contact__emails")
        .order_by("id")
    )
    if not participants:
        return False
    first = participants[0]
    event, booker = first.event, first.registered_by or first.contact
    until = first.offer_expires_at
    return send_once(
        f"waitlist-offer:{registration}:{until.isoformat()}",
        booker,
        MessageKind.WAITLIST_OFFER,
        {
            **event_context(event),
            "offer_expires": _local(event, until),
            "accept_url": waitlist_accept_url(registration),
            "participants": [{"name": p.contact.display_name} for p in participants],
        },
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
    return send_once(
        f"membership:{membership.pk}:{membership.end_date or 'lifetime'}",
        membership.contact,
        MessageKind.MEMBERSHIP,
        {
            "renewal": renewal,
            "membership_type": membership.membership_type.name,
            "start_date": membership.start_date,
            "end_date": membership.end_date,
        },
    )


def send_annual_statements(year):
    """Send ``send_annual_statement`` to everyone who gave in ``year``; returns counts.

    Raises ``ValueError`` for a year no date can hold.
    """
    start, end = year_bounds(year)
    donors = (
        Contribution.objects.filter(
            status__in=GIFT_STATUSES, received_at__gte=start, received_at__lt=end
        )
        .order_by("contact_id")
        .values_list("contact_id", flat=True)
        .distinct()
    )
    counts = {"donors": 0, "sent": 0, "not_sent": 0, "failed": 0}
    for contact_id in list(donors):
        counts["donors"] += 1
        try:
            sent = send_annual_statement(contact_id, year)
        except Exception:  # noqa: BLE001 - one failure must not stop the others
            logger.exception("The %s statement of contact %s failed", year, contact_id)
            counts["failed"] += 1
            continue
        counts["sent" if sent else "not_sent"] += 1
    return counts
