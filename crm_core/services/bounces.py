"""Bounces, spam complaints and unsubscribes reported by an email service (ESP).

django-anymail receives the ESP's tracking webhook, checks it (basic auth,
and the ESP's signature where it has one) and turns it into an
``AnymailTrackingEvent``; ``crm_core.signals`` passes each one to
``handle_tracking_event``. What it does:

- a hard bounce (``bounced`` with reject reason ``bounced`` or ``invalid``,
  except what the ESP itself calls a soft bounce, see ``SOFT_BOUNCES``), an
  ESP rejection for a previous bounce or a bad address, and a spam complaint
  put every address equal to the event's recipient (without case) on hold,
  so mailings leave it out;
- a spam complaint and an unsubscribe at the ESP append a "withdrawn" email
  consent for ``BULK_PURPOSE`` (and for the mailing's own purpose when the
  event names a mailing of ours), with the ESP's name as its source;
- each contact concerned gets one system activity (source ``crm:bounces``)
  naming the event; a delay or soft bounce, an open or a click, and an
  address nobody has change nothing.

Idempotent: ESPs retry webhooks, so an event seen before (same ESP and
event id, or the same recipient, type, message and time when the ESP gives
no id) changes nothing and records nothing. One transaction per event.
"""

import logging
import re

from anymail.signals import EventType, RejectReason
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import Activity, Channel, ConsentRecord, ContactEmail, MailingRecipient
from .activities import record_system_event
from .consent import record_consent
from .mailings import BULK_PURPOSE

logger = logging.getLogger("crm.bounces")

SOURCE = "crm:bounces"
# The key in Activity.changes that says which ESP event an activity records.
EVENT_KEY = "esp_event"

BOUNCED, COMPLAINED, UNSUBSCRIBED = "bounced", "complained", "unsubscribed"
# Reject reasons that say the address itself is bad (not a block, a policy or spam content).
HOLDING_REASONS = (RejectReason.BOUNCED, RejectReason.INVALID)


def _sparkpost_soft(raw):
    # Only "invalid recipient" (10) and "no RCPT" (30) are hard in SparkPost's bounce classes.
    events = list((raw.get("msys") or {}).values())
    return not events or events[0].get("bounce_class") not in ("10", "30")


# Anymail reports some soft bounces (mailbox full, temporary failure) as
# "bounced" with reason "bounced"; the ESP's own payload says which they are.
SOFT_BOUNCES = {
    "Postmark": lambda raw: raw.get("Type") == "SoftBounce",
    "Amazon SES": lambda raw: (raw.get("bounce") or {}).get("bounceType") != "Permanent",
    "Brevo": lambda raw: raw.get("event") == "soft_bounce",
    "SendinBlue": lambda raw: raw.get("event") == "soft_bounce",
    "SparkPost": _sparkpost_soft,
}
# Message-IDs of mailings, as crm_core.services.mailings._message_id makes them.
MAILING_MESSAGE_ID = re.compile(r"<?crm-mailing-([0-9]+)-([0-9]+)@")
ROW_ID = re.compile(r"[0-9]+")
METADATA_KEY = "crm_recipient"


def handle_tracking_event(event, esp_name):
    """Apply one anymail tracking event; returns how many contacts it changed.

    Never raises for an event it does not act on (unknown type, no or
    unknown recipient). Database errors propagate, so the webhook answers
    5xx and the ESP sends the event again later.
    """
    kind = _kind(event, esp_name)
    address = event.recipient.strip().lower() if isinstance(event.recipient, str) else ""
    if kind is None or not address:
        return 0
    key = _event_key(event, esp_name, kind, address)
    with transaction.atomic():
        emails = list(
            ContactEmail.objects.select_for_update()
            .filter(email_normalized=address)
            .select_related("contact")
            .order_by("contact_id", "id")
        )
        if not emails:
            logger.info("%s %s event for an unknown address; ignored", esp_name, kind)
            return 0
        mailing_recipient = _mailing_recipient(event, address)
        by_contact = {}
        for email in emails:
            by_contact.setdefault(email.contact_id, []).append(email)
        changed = 0
        for contact_emails in by_contact.values():
            contact = contact_emails[0].contact
            seen = Activity.objects.filter(
                contact=contact, source=SOURCE, **{f"changes__{EVENT_KEY}__1": key}
            ).exists()
            if seen:
                continue
            _apply(contact, contact_emails, kind, event, esp_name, key, mailing_recipient)
            changed += 1
    return changed


def _kind(event, esp_name):
    """``bounced``, ``complained``, ``unsubscribed`` or None (nothing to do)."""
    event_type, reason = event.event_type, event.reject_reason
    if event_type == EventType.BOUNCED and reason in HOLDING_REASONS:
        raw = event.esp_event if isinstance(event.esp_event, dict) else {}
        soft = SOFT_BOUNCES.get(esp_name)
        return None if soft is not None and soft(raw) else BOUNCED
    if event_type == EventType.REJECTED and reason in HOLDING_REASONS:
        return BOUNCED
    if event_type == EventType.COMPLAINED:
        return COMPLAINED
    if event_type == EventType.UNSUBSCRIBED:
        return UNSUBSCRIBED
    return None


def _event_key(event, esp_name, kind, address):
    if event.event_id:
        return f"{esp_name}:{event.event_id}"[:255]
    when = event.timestamp.isoformat() if event.timestamp else ""
    return f"{esp_name}:{kind}:{address}:{event.message_id or ''}:{when}"[:255]


def _mailing_recipient(event, address):
    """The ``MailingRecipient`` the event is about, when it names one of ours for ``address``."""
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    lookup = None
    match = MAILING_MESSAGE_ID.match(str(event.message_id or ""))
    if match:
        lookup = {"mailing_id": int(match[1]), "pk": int(match[2])}
    elif ROW_ID.fullmatch(str(metadata.get(METADATA_KEY, ""))):
        lookup = {"pk": int(metadata[METADATA_KEY])}
    if lookup is None:
        return None
    # The address must agree: an id alone could name someone else's row.
    return (
        MailingRecipient.objects.filter(email_lower=address, **lookup)
        .select_related("mailing")
        .first()
    )


def _apply(contact, emails, kind, event, esp_name, key, mailing_recipient):
    changes = {EVENT_KEY: [None, key]}
    if kind in (BOUNCED, COMPLAINED):
        held = [email for email in emails if not email.on_hold]
        ContactEmail.objects.filter(pk__in=[email.pk for email in held]).update(on_hold=True)
        for email in held:
            changes[f"on_hold:{email.email}"] = [False, True]
    if kind in (COMPLAINED, UNSUBSCRIBED):
        purposes = [BULK_PURPOSE]
        if mailing_recipient and mailing_recipient.mailing.consent_purpose:
            purposes.append(mailing_recipient.mailing.consent_purpose)
        for purpose in dict.fromkeys(purposes):
            _withdraw(contact, purpose, kind, esp_name, key)
    subjects = {
        BOUNCED: _("Email to %(email)s bounced; address put on hold"),
        COMPLAINED: _("%(email)s reported an email as spam; address put on hold"),
        UNSUBSCRIBED: _("%(email)s unsubscribed at the email service"),
    }
    details = [_("Reported by %(esp)s.") % {"esp": esp_name}]
    if mailing_recipient:
        details.append(_("Mailing: %(name)s") % {"name": mailing_recipient.mailing.name})
    for text in (event.description, event.mta_response):
        if isinstance(text, str) and text.strip():
            details.append(text.strip()[:1000])
    record_system_event(
        contact,
        subjects[kind] % {"email": emails[0].email},
        source=SOURCE,
        changes=changes,
        details="\n".join(details),
    )


def _withdraw(contact, purpose, kind, esp_name, key):
    """Append a withdrawal unless the latest email consent for ``purpose`` is one already."""
    latest = (
        ConsentRecord.objects.filter(contact=contact, purpose=purpose, channel=Channel.EMAIL)
        .order_by("-recorded_at", "-id")
        .first()
    )
    if latest is not None and not latest.granted:
        return
    wording = {
        COMPLAINED: _("Marked an email as spam (reported by the email service)."),
        UNSUBSCRIBED: _("Unsubscribed at the email service."),
    }[kind]
    record_consent(
        contact,
        purpose=purpose,
        channel=Channel.EMAIL,
        granted=False,
        wording=wording,
        source=esp_name,
        source_reference=key,
    )


def mailing_metadata(message):
    """Metadata naming the mailing recipient a message goes to, from its Message-ID; or {}.

    ESPs that send through an API replace the Message-ID with their own id,
    and their webhooks report that id; the metadata comes back unchanged.
    """
    headers = getattr(message, "extra_headers", None) or {}
    message_id = next(
        (value for name, value in headers.items() if name.lower() == "message-id"), ""
    )
    match = MAILING_MESSAGE_ID.match(str(message_id))
    return {METADATA_KEY: match[2]} if match else {}
