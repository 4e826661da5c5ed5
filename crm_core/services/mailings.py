"""Bulk mailings: who gets one, what it says, and sending each message once.

Who (``build_recipients``)
    The contacts currently in the included groups, minus those in the
    excluded groups, minus anyone who said no or cannot be mailed: deceased,
    "do not email", opted out of bulk mail, every address on hold (bounced),
    unsubscribed (their latest email consent for the mailing's purpose, or
    for ``BULK_PURPOSE`` when it has none, is withdrawn), and, when the
    mailing names a consent purpose, anyone whose latest email consent for it
    is not "granted". One recipient per address (case-insensitive), the
    contact's primary address preferred. Running it again adds whoever joined
    and skips whoever no longer qualifies; it never sends.

What (``render_for_contact``)
    The subject and bodies are Django templates compiled from text by a bare
    engine, rendered with a small context of plain values (no model
    instances, so a template cannot walk the database): ``first_name``,
    ``last_name``, ``display_name``, ``membership_end_date``, ``renew_url``,
    ``update_details_url``, ``manage_subscriptions_url``, ``unsubscribe_url``.
    The HTML body is autoescaped; the subject and plain text are not (they
    are not HTML), and the subject is folded to one line.

Sending (``send_batch``, ``send_mailing``)
    A batch claims up to ``MAILING_BATCH_SIZE`` pending recipients in one
    short transaction (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
    concurrent workers never claim the same row; SQLite serialises writers),
    marking them ``sending`` with a claim token and time. It then sends them
    over one connection of the email backend, each marked ``sent`` in its own
    autocommitted UPDATE (on PostgreSQL sent without waiting for its reply,
    which is read before the next message's final line: ``_SentMarks``).

    The SMTP fast path. With Django's SMTP backend (``isinstance`` of
    ``django.core.mail.backends.smtp.EmailBackend``) the batch talks to the
    backend's ``smtplib.SMTP`` directly (``MAIL FROM``, ``RCPT TO``,
    ``DATA``, the dot-stuffed message and its final ``.`` line in one write)
    with bytes made from a skeleton worked out once per batch
    (``_WireFormat``), not from Django's MIME objects, which cost about half
    a millisecond a message. Other backends (locmem, console, anymail) get
    ``build_email``'s message. Either way the "sent" mark follows the
    server's acceptance.

    Why not mark before the final line (so that a server accepts only what
    is already recorded)? Measured with the SIGKILL benchmark (B8c) against aiosmtpd,
    that lost about one message in three kills: a server may drop a message
    whose final line it had received but not yet processed when the
    connection closed (aiosmtpd cancels the session on EOF), and the window
    runs from PostgreSQL's commit to the server's processing, about as long
    as the duplicate window it replaces. A duplicate is the better failure.

    What "exactly once" means here. No mail system can make "handed to SMTP"
    and "recorded in our database" one atomic step, so:

    - a recipient marked ``sent`` is never sent again, by any worker;
    - two live workers never send to the same recipient (the claim);
    - a worker told to stop (SIGTERM or SIGINT: ``kill``, a deploy, a
      container stop, Ctrl-C) finishes and records the message in hand,
      gives the rest of its batch back and only then stops
      (``_StopOnSignals``): every recipient gets exactly one message;
    - if a worker dies without warning (SIGKILL, out of memory, power lost) its claimed rows stay
      ``sending``. After ``MAILING_CLAIM_TIMEOUT`` seconds another run claims
      them again and sends them. Rows the dead worker had not reached yet are
      sent once. The single message that was in flight when it died may have
      been accepted by the server before the worker could record it: that one
      is sent a second time. So a crash costs at most one duplicate per dead
      worker, never a lost message. The duplicate carries the same
      ``Message-ID`` (made from the recipient row), which lets mailbox
      providers that deduplicate by Message-ID drop it.
    - on PostgreSQL the batch's UPDATEs commit with ``synchronous_commit``
      off: a killed worker loses nothing by it; only a crash of PostgreSQL
      itself may forget the last fraction of a second of marks, and those
      recipients are sent again.
    - a recipient whose sending raised an error is ``failed`` with the error
      when the server refused it for good (5xx) or the backend raised
      something other than a connection problem; a connection problem puts the
      rest of the batch back to ``pending`` and raises
      ``MailingDeliveryInterrupted``: the task retries later.

    Eligibility is checked again when a batch is sent: someone who
    unsubscribed, bounced or was marked "do not email" after the recipients
    were built is ``skipped``, not mailed.
"""

import base64
import contextlib
import datetime
import functools
import logging
import re
import signal
import smtplib
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate, make_msgid
from html.parser import HTMLParser
from urllib.parse import quote, urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import BadHeaderError, EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import forbid_multi_line_headers, sanitize_address
from django.db import DatabaseError, transaction
from django.db import connection as db_connection
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.template import Context
from django.urls import reverse
from django.utils import timezone
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.translation import gettext as _

from ..conf import crm_setting
from ..exceptions import CRMError
from ..links import make_contact_token, read_contact_token
from ..models import (
    Channel,
    ConsentRecord,
    Contact,
    ContactEmail,
    GroupMembership,
    Mailing,
    MailingRecipient,
    MailingStatus,
    Membership,
    MembershipStatus,
    RecipientStatus,
)
from ..models.mailings import TEMPLATE_ENGINE
from .consent import record_consent

logger = logging.getLogger("crm.mailings")

# The consent purpose an unsubscribe from a mailing without a purpose withdraws.
BULK_PURPOSE = "mailings"
# Personal links to forms: the link purpose and query parameter crm_forms.identity
# reads (crm_core cannot import crm_forms; tests/test_mailings.py checks they agree).
FORM_LINK_PURPOSE = "form"
FORM_LINK_PARAMETER = "crm"
# Membership statuses whose end date {{ membership_end_date }} shows.
CURRENT_MEMBERSHIP_STATUSES = (
    MembershipStatus.NEW,
    MembershipStatus.CURRENT,
    MembershipStatus.GRACE,
)
# A connection problem is retried this many times per recipient before it counts as failed.
MAX_ATTEMPTS = 3
SOURCE = "crm:mailings"


class MailingNotEditable(CRMError):
    """The mailing has started sending (or was sent or cancelled)."""

    status_code = 409


class MailingNotSendable(CRMError):
    """The mailing cannot be sent: no audience, nothing to say, or wrong status."""

    status_code = 409


class MailingDeliveryInterrupted(CRMError):
    """The email backend could not be reached; the batch was put back to pending."""

    status_code = 503


# -- audience -------------------------------------------------------------------------------


def audience(mailing):
    """Contacts the mailing is addressed to, before anyone is left out for saying no.

    Static groups (current members) plus smart groups (whoever matches
    ``SmartGroup.contacts()`` now), minus the excluded ones of each kind.
    """
    included = Q(
        pk__in=GroupMembership.objects.current()
        .filter(group__in=mailing.include_groups.all())
        .values("contact_id")
    )
    excluded = Q(
        pk__in=GroupMembership.objects.current()
        .filter(group__in=mailing.exclude_groups.all())
        .values("contact_id")
    )
    for smart_group in mailing.include_smart_groups.all():
        included |= Q(pk__in=smart_group.contacts().values("pk"))
    for smart_group in mailing.exclude_smart_groups.all():
        excluded |= Q(pk__in=smart_group.contacts().values("pk"))
    return Contact.objects.filter(included).exclude(excluded)


def _latest_email_consent(purpose):
    return Subquery(
        ConsentRecord.objects.filter(contact=OuterRef("pk"), purpose=purpose, channel=Channel.EMAIL)
        .order_by("-recorded_at", "-id")
        .values("granted")[:1]
    )


def mailable(contacts, mailing):
    """``contacts`` without anyone the mailing must not reach (see the module docstring)."""
    contacts = contacts.filter(is_deceased=False, do_not_email=False, is_opt_out=False).filter(
        Exists(ContactEmail.objects.filter(contact=OuterRef("pk"), on_hold=False))
    )
    purpose = mailing.consent_purpose or BULK_PURPOSE
    contacts = contacts.annotate(mailing_consent=_latest_email_consent(purpose))
    if mailing.consent_purpose:
        return contacts.filter(mailing_consent=True)
    return contacts.filter(Q(mailing_consent__isnull=True) | Q(mailing_consent=True))


def _choose_addresses(contact_ids):
    """``{contact_id: address}``: one address per contact and per address, primary first."""
    rows = (
        ContactEmail.objects.filter(contact_id__in=contact_ids, on_hold=False)
        .order_by("-is_primary", "contact_id", "id")
        .values_list("contact_id", "email")
    )
    chosen, taken = {}, set()
    for contact_id, email in rows.iterator(chunk_size=2000):
        key = email.strip().lower()
        if contact_id in chosen or key in taken:
            continue
        chosen[contact_id] = email.strip()
        taken.add(key)
    return chosen


def build_recipients(mailing):
    """Write the mailing's recipients; returns how many are pending.

    Idempotent: a second run adds contacts who joined since, marks pending
    recipients who no longer qualify ``skipped``, and leaves sent, failed
    and claimed rows alone. Refused (``MailingNotEditable``) once the mailing
    is sent or cancelled.
    """
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if mailing.status in (MailingStatus.SENT, MailingStatus.CANCELLED):
            raise MailingNotEditable(_("This mailing was already sent or cancelled."))
        contact_ids = list(mailing_contacts(mailing).values_list("pk", flat=True))
        chosen = _choose_addresses(contact_ids)
        existing = dict(mailing.recipients.values_list("email_lower", "status"))
        served = set(
            mailing.recipients.exclude(status=RecipientStatus.SKIPPED).values_list(
                "contact_id", flat=True
            )
        )
        wanted = {email.lower() for email in chosen.values()}
        MailingRecipient.objects.bulk_create(
            [
                MailingRecipient(
                    mailing=mailing, contact_id=contact_id, email=email, email_lower=email.lower()
                )
                for contact_id, email in chosen.items()
                if email.lower() not in existing and contact_id not in served
            ],
            batch_size=1000,
            ignore_conflicts=True,
        )
        mailing.recipients.filter(
            status=RecipientStatus.SKIPPED, email_lower__in=wanted, contact_id__in=chosen
        ).update(status=RecipientStatus.PENDING, error="")
        mailing.recipients.filter(status=RecipientStatus.PENDING).exclude(
            email_lower__in=wanted
        ).update(status=RecipientStatus.SKIPPED, error=_("No longer in the audience."))
        refresh_counts(mailing)
    return mailing.recipients.filter(status=RecipientStatus.PENDING).count()


def mailing_contacts(mailing):
    """The contacts ``build_recipients`` would write today (one query)."""
    return mailable(audience(mailing), mailing)


def refresh_counts(mailing):
    """Store the recipients' counts by status on the mailing (one query, one update)."""
    counts = dict(
        mailing.recipients.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    values = {
        "recipients_count": sum(counts.values()) - counts.get(RecipientStatus.SKIPPED, 0),
        "sent_count": counts.get(RecipientStatus.SENT, 0),
        "failed_count": counts.get(RecipientStatus.FAILED, 0),
        "skipped_count": counts.get(RecipientStatus.SKIPPED, 0),
    }
    Mailing.objects.filter(pk=mailing.pk).update(**values)
    for name, value in values.items():
        setattr(mailing, name, value)
    return counts


# -- rendering ------------------------------------------------------------------------------


_WHITE_SPACE = re.compile(r"\s+")


class _TextFromHTML(HTMLParser):
    BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol"}
    SKIP = {"style", "script", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.links, self.skipping = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href.startswith(("http://", "https://", "mailto:")):
                self.parts.append(f" ({href.removeprefix('mailto:')})")

    def handle_data(self, data):
        if not self.skipping:
            # Runs of white space become one space, kept at the edges:
            # "Ann <b>and</b> Bob" must not read "AnnandBob".
            self.parts.append(_WHITE_SPACE.sub(" ", data))


def text_from_html(html):
    """A readable plain text version of an HTML email: paragraphs kept, links spelled out."""
    parser = _TextFromHTML()
    parser.feed(html or "")
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text, blank = [], False
    for line in lines:
        if line or not blank:
            text.append(line)
        blank = not line
    return "\n".join(text).strip() + "\n"


def site_url(path):
    base = crm_setting("SITE_BASE_URL") or getattr(settings, "WAGTAILADMIN_BASE_URL", "")
    return f"{base.rstrip('/')}{path}"


def unsubscribe_url(mailing, contact):
    """The signed one-click unsubscribe address of ``mailing`` for ``contact``."""
    return _MailingLinks(mailing).unsubscribe_url(contact)


def _unsubscribe_purpose(mailing_id):
    return f"unsubscribe-{mailing_id}"


def personal_link(contact, page):
    """A signed link to one of ``PERSONAL_LINK_PAGES`` that identifies ``contact``; "" if unset."""
    base = _personal_link_base(page)
    if not base:
        return ""
    return _with_form_token(base, make_contact_token(contact, FORM_LINK_PURPOSE))


def _personal_link_base(page):
    """The page's address up to its token (ending in "?" or "&"); "" when the page is unset."""
    path = (crm_setting("PERSONAL_LINK_PAGES") or {}).get(page) or ""
    if not path:
        return ""
    url = path if urlsplit(path).scheme else site_url(path)
    return f"{url}{'&' if '?' in url else '?'}"


def _with_form_token(base, token):
    return f"{base}{urlencode({FORM_LINK_PARAMETER: token})}"


# The pages a mailing links to for the contact, as {{ <page>_url }}.
PERSONAL_LINK_TOKENS = ("renew", "update_details", "manage_subscriptions")


class _MailingLinks:
    """A mailing's personal links, with everything but the contacts' tokens worked out once.

    Only the signed token differs between two contacts' links, so ``reverse``
    and the settings are read once per batch, not once per message.
    """

    _PLACEHOLDER = "crm-token-placeholder"

    def __init__(self, mailing, *, used_by=None):
        self.unsubscribe_purpose = _unsubscribe_purpose(mailing.pk)
        path = reverse("crm_core:mailing_unsubscribe", args=[mailing.pk, self._PLACEHOLDER])
        self.unsubscribe_head, self.unsubscribe_tail = site_url(path).rsplit(self._PLACEHOLDER, 1)
        self.pages = {page: _personal_link_base(page) for page in PERSONAL_LINK_TOKENS}
        if used_by is not None:
            # Signing a token costs as much as rendering: a link no template
            # names is left empty (its name must appear in the source to be used).
            self.pages = {
                page: base if f"{page}_url" in used_by else "" for page, base in self.pages.items()
            }

    def unsubscribe_url(self, contact):
        token = make_contact_token(contact, self.unsubscribe_purpose)
        # As reverse() quotes a path argument.
        token = quote(token, safe=RFC3986_SUBDELIMS + "/~:@")
        return f"{self.unsubscribe_head}{token}{self.unsubscribe_tail}"

    def context(self, contact, membership_end_date=None):
        form_token = (
            make_contact_token(contact, FORM_LINK_PURPOSE) if any(self.pages.values()) else ""
        )
        context = {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "display_name": contact.display_name,
            "membership_end_date": membership_end_date,
        }
        for page, base in self.pages.items():
            context[f"{page}_url"] = _with_form_token(base, form_token) if base else ""
        context["unsubscribe_url"] = self.unsubscribe_url(contact)
        return context


def _membership_end_dates(contact_ids):
    rows = (
        Membership.objects.filter(
            contact_id__in=contact_ids, status__in=CURRENT_MEMBERSHIP_STATUSES
        )
        .order_by("contact_id", F("end_date").asc(nulls_last=True))
        .values_list("contact_id", "end_date")
    )
    # The latest end of a current membership; a lifetime one (no end) has no date.
    return dict(rows)


def token_context(mailing, contact, *, membership_end_date=None):
    """The values a mailing's templates may use, all plain text or dates."""
    return _MailingLinks(mailing).context(contact, membership_end_date)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str
    text: str
    unsubscribe_url: str


class _CompiledMailing:
    """A mailing's templates compiled once for a whole batch."""

    def __init__(self, mailing):
        html, text = mailing.effective_bodies
        self.source = f"{mailing.effective_subject}\n{html}\n{text}"
        try:
            self.subject = TEMPLATE_ENGINE.from_string(mailing.effective_subject or "")
            self.html = TEMPLATE_ENGINE.from_string(html or "")
            self.text = TEMPLATE_ENGINE.from_string(text) if text.strip() else None
        except Exception as exc:  # noqa: BLE001 - a template error is the staff's to fix
            raise MailingNotSendable(
                _("The message has a template error: %(error)s") % {"error": exc}
            ) from exc

    def render(self, context):
        # A header: one line, no control characters; "<" is not markup here.
        subject = " ".join(self.subject.render(Context(context, autoescape=False)).split())[:255]
        html = self.html.render(Context(context, autoescape=True))
        if self.text is not None:
            # Template.render marks its output HTML-safe; plain text is not HTML.
            text = "".join([self.text.render(Context(context, autoescape=False))])
        else:
            text = text_from_html(html)
        return RenderedMessage(subject, html, text, context["unsubscribe_url"])


def render_for_contact(mailing, contact):
    """What ``mailing`` says to ``contact`` (for previews and tests)."""
    end = _membership_end_dates([contact.pk]).get(contact.pk)
    context = token_context(mailing, contact, membership_end_date=end)
    return _CompiledMailing(mailing).render(context)


def _from_email(mailing):
    return mailing.from_email or settings.DEFAULT_FROM_EMAIL


def build_email(mailing, rendered, to, *, message_id=None, connection=None):
    """A multipart (text + HTML) message with RFC 8058 one-click unsubscribe headers."""
    unsubscribe = [f"<{rendered.unsubscribe_url}>"]
    mailto = crm_setting("MAILING_UNSUBSCRIBE_MAILTO")
    if mailto:
        unsubscribe.append(f"<mailto:{mailto}?subject=unsubscribe>")
    headers = {
        "List-Unsubscribe": ", ".join(unsubscribe),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
        "Auto-Submitted": "auto-generated",
    }
    if message_id:
        headers["Message-ID"] = message_id
    message = EmailMultiAlternatives(
        rendered.subject,
        rendered.text,
        _from_email(mailing),
        [to],
        reply_to=[mailing.reply_to] if mailing.reply_to else None,
        headers=headers,
        connection=connection,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def _message_id_domain():
    return urlsplit(site_url("/")).hostname or "crm.invalid"


def _message_id(recipient, domain=None):
    domain = domain or _message_id_domain()
    return f"<crm-mailing-{recipient.mailing_id}-{recipient.pk}@{domain}>"


# An address that needs no quoting or encoding: Django's sanitize_address
# would return it as it is, so the (slow) parse is skipped.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\Z")
_LINE_END = re.compile(r"\r\n|\r|\n")
_LEADING_DOT = re.compile(r"(?m)^\.")
# RFC 5322: a line is at most 998 characters without its CRLF.
_MAX_LINE = 998


@dataclass(frozen=True)
class _Envelope:
    sender: str
    recipient: str
    data: bytes  # CRLF line ends, leading dots doubled, without the final "." line


def _refuse_line_breaks(name, value):
    if "\n" in value or "\r" in value:
        raise BadHeaderError(f"Header values can't contain newlines (got {value!r} for {name})")
    return value


class _WireFormat:
    """What ``build_email`` makes, written straight to SMTP bytes for the fast path.

    The same headers and parts as Django's ``EmailMultiAlternatives`` (From,
    To, Subject, Date, Message-ID, MIME-Version, Reply-To, the unsubscribe
    headers; multipart/alternative with a text/plain then a text/html UTF-8
    part), from a skeleton worked out once per batch: Django's MIME objects
    and the ``email`` package's generator cost about half a millisecond a
    message. A value with a line break is refused (``BadHeaderError``), as
    Django refuses it.
    """

    def __init__(self, mailing):
        self.encoding = settings.DEFAULT_CHARSET
        self.error = None
        self.localtime = settings.EMAIL_USE_LOCALTIME
        self.boundary = f"=_crm_{uuid.uuid4().hex}"
        from_email = _from_email(mailing)
        try:
            self.sender = sanitize_address(from_email, self.encoding)
            fixed = [("From", forbid_multi_line_headers("From", from_email, self.encoding)[1])]
            if mailing.reply_to:
                fixed.append(
                    (
                        "Reply-To",
                        forbid_multi_line_headers("Reply-To", mailing.reply_to, self.encoding)[1],
                    )
                )
            mailto = crm_setting("MAILING_UNSUBSCRIBE_MAILTO")
            self.unsubscribe_mailto = (
                f", <mailto:{_refuse_line_breaks('List-Unsubscribe', mailto)}?subject=unsubscribe>"
                if mailto
                else ""
            )
        except (ValueError, BadHeaderError) as exc:
            # Every message of the batch fails with it, as Django would refuse each.
            self.error = exc
            return
        self.fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed)
        self.tail = (
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            "Precedence: bulk\r\n"
            "Auto-Submitted: auto-generated\r\n"
        )

    def envelope(self, rendered, to, message_id):
        """The envelope and message bytes for one recipient (raises on a bad header)."""
        if self.error is not None:
            raise self.error
        _refuse_line_breaks("To", to)
        if _PLAIN_ADDRESS.match(to):
            recipient = to_header = to
        else:
            recipient = sanitize_address(to, self.encoding)
            to_header = forbid_multi_line_headers("To", to, self.encoding)[1]
        subject = _refuse_line_breaks("Subject", rendered.subject)
        if not subject.isascii() or len(subject) > 70:
            subject = Header(subject, self.encoding).encode(linesep="\r\n")
        unsubscribe = _refuse_line_breaks("List-Unsubscribe", rendered.unsubscribe_url)
        boundary = self.boundary
        head = (
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
            "MIME-Version: 1.0\r\n"
            f"Subject: {subject}\r\n"
            f"{self.fixed}"
            f"To: {to_header}\r\n"
            f"Date: {formatdate(localtime=self.localtime)}\r\n"
            f"Message-ID: {_refuse_line_breaks('Message-ID', message_id)}\r\n"
            f"List-Unsubscribe: <{unsubscribe}>{self.unsubscribe_mailto}\r\n"
            f"{self.tail}\r\n"
        )
        text = _LINE_END.sub("\r\n", self._part("plain", rendered.text))
        html = _LINE_END.sub("\r\n", self._part("html", rendered.html))
        data = f"{head}{text}{html}--{boundary}--\r\n"
        return _Envelope(self.sender, recipient, _LEADING_DOT.sub("..", data).encode("ascii"))

    def _part(self, subtype, body):
        if (
            body.isascii()
            and self.boundary not in body
            and all(len(line) <= _MAX_LINE for line in _LINE_END.split(body))
        ):
            encoding, payload = "7bit", body
        else:
            encoding = "base64"
            payload = base64.encodebytes(body.encode(self.encoding)).decode("ascii")
        return (
            f"--{self.boundary}\r\n"
            f'Content-Type: text/{subtype}; charset="{self.encoding}"\r\n'
            "MIME-Version: 1.0\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
            f"{payload}\r\n"
        )


def send_test(mailing, contact, to):
    """Send what ``contact`` would get to ``to``, subject marked as a test; records nothing."""
    rendered = render_for_contact(mailing, contact)
    rendered = RenderedMessage(
        _("[Test] %(subject)s") % {"subject": rendered.subject},
        rendered.html,
        rendered.text,
        rendered.unsubscribe_url,
    )
    return build_email(mailing, rendered, to, message_id=make_msgid()).send()


# -- sending --------------------------------------------------------------------------------


def send_mailing(mailing, *, actor=None):
    """Build the recipients and start sending: status ``sending``; returns how many are pending.

    The caller enqueues ``crm_core.tasks.send_mailing_task`` (after commit);
    running this twice does not send anything twice.
    """
    with transaction.atomic():
        locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if locked.status not in (MailingStatus.DRAFT, MailingStatus.SCHEDULED):
            raise MailingNotSendable(_("This mailing was already sent or is being sent."))
        _CompiledMailing(locked)  # a template error stops it here, not mid-mailing
        pending = build_recipients(locked)
        if not pending:
            raise MailingNotSendable(_("Nobody in these groups can receive this mailing."))
        Mailing.objects.filter(pk=locked.pk).update(
            status=MailingStatus.SENDING, started_at=timezone.now()
        )
        logger.info("mailing %s: sending to %s recipients (by %s)", locked.pk, pending, actor)
    mailing.refresh_from_db()
    return pending


def cancel_mailing(mailing):
    """Stop a mailing: pending recipients are skipped; claimed ones finish their batch."""
    with transaction.atomic():
        locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if locked.status in (MailingStatus.SENT, MailingStatus.CANCELLED):
            raise MailingNotEditable(_("This mailing was already sent or cancelled."))
        Mailing.objects.filter(pk=locked.pk).update(
            status=MailingStatus.CANCELLED, finished_at=timezone.now()
        )
        locked.recipients.filter(status=RecipientStatus.PENDING).update(
            status=RecipientStatus.SKIPPED, error=_("Mailing cancelled.")
        )
        refresh_counts(locked)
    mailing.refresh_from_db()


def _claim(mailing, batch_size):
    """Mark up to ``batch_size`` recipients as ours; returns them (with their contacts)."""
    stale = timezone.now() - datetime.timedelta(seconds=crm_setting("MAILING_CLAIM_TIMEOUT"))
    claimable = Q(status=RecipientStatus.PENDING) | Q(
        status=RecipientStatus.SENDING, claimed_at__lt=stale
    )
    token = uuid.uuid4()
    with transaction.atomic():
        rows = MailingRecipient.objects.filter(claimable, mailing=mailing).order_by("id")
        if db_connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        ids = list(rows.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return []
        # The status condition again: without SKIP LOCKED (SQLite) a row is
        # only ours if nobody changed it since we read it.
        MailingRecipient.objects.filter(claimable, pk__in=ids).update(
            status=RecipientStatus.SENDING, claimed_at=timezone.now(), claim_token=token
        )
    return list(
        MailingRecipient.objects.filter(claim_token=token, status=RecipientStatus.SENDING)
        .select_related("contact")
        # What a message needs of its contact (the token context): building
        # 500 whole contacts took longer than the query.
        .defer(
            *(
                f"contact__{field.name}"
                for field in Contact._meta.concrete_fields
                if field.name not in _CONTACT_FIELDS_USED
            )
        )
        .order_by("id")
    )


_CONTACT_FIELDS_USED = {"id", "first_name", "last_name", "display_name"}


def _reset(smtp):
    """RSET after a refusal, so the connection serves the next message."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.rset()


def _drop(connection):
    """Close the SMTP connection without a word: the server discards an unfinished DATA."""
    with contextlib.suppress(OSError):
        connection.connection.close()
    connection.close()  # QUIT finds the socket closed; Django forgets the connection


_quoted_sender = functools.lru_cache(maxsize=64)(smtplib.quoteaddr)


def _send_over_smtp(connection, envelope, recipient, marks, while_waiting=None):
    """Send one message over the backend's open ``smtplib.SMTP``; mark it sent once accepted.

    The previous message's "sent" mark is settled (``marks``) before this
    message's final line goes out, so at most one accepted message is ever
    unrecorded. ``while_waiting`` runs while the server processes the
    message (the next message is rendered then). Raises the SMTP error when
    the server refused it (after ``RSET``, so the connection serves the next
    message); the row is then still ``sending`` for the caller to settle.
    """
    smtp = connection.connection
    if smtp.helo_resp is None and smtp.ehlo_resp is None:
        smtp.ehlo_or_helo_if_needed()
        # Small writes go out at once, never waiting for the server's
        # delayed ACK (Nagle's algorithm: up to 40 ms a message).
        with contextlib.suppress(OSError, AttributeError):
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # What smtplib's mail() and rcpt() send, with the address parsed once a batch.
    smtp.putcmd("mail", f"FROM:{_quoted_sender(envelope.sender)}")
    marks.flush()  # the previous message's mark goes out while the server reads MAIL
    code, reply = smtp.getreply()
    if code != 250:
        _reset(smtp)
        raise smtplib.SMTPSenderRefused(code, reply, envelope.sender)
    if _PLAIN_ADDRESS.match(envelope.recipient):
        smtp.putcmd("rcpt", f"TO:<{envelope.recipient}>")
    else:
        smtp.putcmd("rcpt", f"TO:{smtplib.quoteaddr(envelope.recipient)}")
    code, reply = smtp.getreply()
    if code not in (250, 251):
        _reset(smtp)
        raise smtplib.SMTPRecipientsRefused({envelope.recipient: (code, reply)})
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        _reset(smtp)
        raise smtplib.SMTPDataError(code, reply)
    try:
        marks.settle()
        smtp.send(envelope.data + b".\r\n")
    except BaseException:
        # Mid-DATA nothing but dropping the connection abandons the message.
        _drop(connection)
        raise
    if while_waiting is not None:
        while_waiting()
    code, reply = smtp.getreply()
    if code != 250:
        _reset(smtp)
        raise smtplib.SMTPDataError(code, reply)
    marks.sent(recipient)


@contextlib.contextmanager
def _asynchronous_commits():
    """PostgreSQL: commit the batch's UPDATEs without waiting for the WAL flush.

    A killed worker loses nothing (PostgreSQL has the commit); only a crash
    of PostgreSQL itself may forget the last fraction of a second of marks,
    and the recipients concerned are sent again.
    """
    if db_connection.vendor != "postgresql" or db_connection.in_atomic_block:
        yield
        return
    with db_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    try:
        yield
    finally:
        with contextlib.suppress(DatabaseError), db_connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def _finish(recipient, status, error=""):
    """One autocommitted UPDATE, only while the row is still ours.

    Written as SQL once (``_finish_sql``): it runs once a message, and the
    ORM's building of the same statement cost as much as the round trip.
    """
    sets = [RecipientStatus(status).value, error[:2000]]
    if status == RecipientStatus.SENT:
        sets.append(db_connection.ops.adapt_datetimefield_value(timezone.now()))
    claim_token = MailingRecipient._meta.get_field("claim_token").get_db_prep_value(
        recipient.claim_token, db_connection
    )
    with db_connection.cursor() as cursor:
        cursor.execute(
            _finish_sql(status == RecipientStatus.SENT),
            [*sets, recipient.pk, claim_token, RecipientStatus.SENDING.value],
        )


@functools.cache
def _finish_sql(sent):
    meta, quote_name = MailingRecipient._meta, db_connection.ops.quote_name

    def column(name):
        return quote_name(meta.get_field(name).column)

    sets = ["status", "error", *(["sent_at"] if sent else [])]
    return (
        f"UPDATE {quote_name(meta.db_table)} SET "  # noqa: S608 - our own names
        + ", ".join(f"{column(name)} = %s" for name in sets)
        + f" WHERE {column('id')} = %s AND {column('claim_token')} = %s"
        f" AND {column('status')} = %s"
    )


class _SentMarks:
    """The batch's "sent" marks, each sent to PostgreSQL without waiting for its reply.

    On PostgreSQL with psycopg 3 in autocommit (a worker, not a test's
    transaction) ``sent`` hands the UPDATE to libpq and returns; the reply is
    read by ``settle``, which ``_send_over_smtp`` calls before the next
    message's final line and ``send_batch`` before anything else touches the
    database. The round trip and PostgreSQL's work overlap the next
    message's SMTP commands instead of adding to them, and the promise is
    unchanged: a message is marked after the server accepted it, and the
    mark is committed before the next message can be accepted. Anywhere
    else ``sent`` is ``_finish`` itself.
    """

    def __init__(self):
        self.pgconn = self.pending = self.unsent = None
        if db_connection.vendor != "postgresql" or db_connection.in_atomic_block:
            return
        db_connection.ensure_connection()
        raw = db_connection.connection
        if getattr(raw, "autocommit", False) and hasattr(raw, "pgconn"):  # psycopg 3
            from psycopg import pq

            self.pgconn, self.command_ok = raw.pgconn, pq.ExecStatus.COMMAND_OK

    def sent(self, recipient):
        """Mark ``recipient`` sent: now, or (PostgreSQL) with the next ``flush`` or ``settle``."""
        if self.pgconn is None:
            _finish(recipient, RecipientStatus.SENT)
            return
        self.settle()
        self.unsent = recipient

    def flush(self):
        """Hand the waiting mark to PostgreSQL without reading its reply."""
        recipient = self.unsent
        if recipient is None:
            return
        self.unsent = None
        params = [
            RecipientStatus.SENT.value,
            "",
            timezone.now().isoformat(),
            str(recipient.pk),
            str(recipient.claim_token),
            RecipientStatus.SENDING.value,
        ]
        self.pgconn.send_query_params(_finish_sql_numbered(), [v.encode() for v in params])
        self.pending = recipient

    def settle(self):
        """Send the waiting mark and read its reply; raises ``DatabaseError`` if it failed."""
        self.flush()
        if self.pending is None:
            return
        recipient, self.pending, errors = self.pending, None, []
        while (result := self.pgconn.get_result()) is not None:
            if result.status != self.command_ok:
                errors.append(result.error_message.decode(errors="replace"))
        if errors:
            raise _MarkFailed(recipient, " ".join(errors))


class _MarkFailed(DatabaseError):
    """The "sent" mark of ``recipient`` (already accepted by the server) failed.

    Not the fault of the message being sent when it surfaced: that one is
    given back with the rest of the batch, and ``recipient`` stays
    ``sending`` (sent again after the claim timeout: the one duplicate a
    worker's failure may cost).
    """

    def __init__(self, recipient, error):
        super().__init__(f"Could not record mailing recipient {recipient.pk} as sent: {error}")
        self.recipient = recipient


@functools.cache
def _finish_sql_numbered():
    """``_finish_sql(sent=True)`` with libpq's ``$1``, ``$2``... placeholders."""
    numbers = iter(range(1, 100))
    return re.sub(r"%s", lambda _match: f"${next(numbers)}", _finish_sql(True)).encode()


def _release(recipients):
    MailingRecipient.objects.filter(
        pk__in=[r.pk for r in recipients], status=RecipientStatus.SENDING
    ).update(status=RecipientStatus.PENDING, claim_token=None, claimed_at=None)


def _is_connection_problem(exc):
    """True when trying again later may work: a lost connection or a 4xx reply."""
    if isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPException):  # refused recipients, and the like
        return False
    return isinstance(exc, OSError)  # sockets: refused, reset, timed out


def _still_mailable(mailing, recipients):
    """The recipients that may still be mailed now (one query each for contacts and holds)."""
    contact_ids = {r.contact_id for r in recipients if r.contact_id}
    allowed = set(
        mailable(Contact.objects.filter(pk__in=contact_ids), mailing).values_list("pk", flat=True)
    )
    on_hold = set(
        ContactEmail.objects.filter(contact_id__in=contact_ids, on_hold=True).values_list(
            "contact_id", "email_normalized"
        )
    )
    return {
        r.pk
        for r in recipients
        if r.contact_id in allowed and (r.contact_id, r.email_lower) not in on_hold
    }


class _Pacer:
    """Keeps to ``MAILING_RATE_LIMIT`` messages per second."""

    def __init__(self):
        rate = float(crm_setting("MAILING_RATE_LIMIT") or 0)
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = time.monotonic()

    def wait(self):
        if not self.interval:
            return
        now = time.monotonic()
        if now < self.next_at:
            time.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


def send_batch(mailing, batch_size=None, *, connection=None, stop=None):
    """Claim and send one batch; returns how many recipients it handled (0: nothing left).

    Uses one connection of the email backend for the whole batch. See the
    module docstring for what is guaranteed when a worker dies. When
    ``stop()`` turns true the batch ends before its next message and gives
    the rest of its recipients back.
    """
    mailing = Mailing.objects.select_related("template").get(pk=mailing.pk)
    if mailing.status != MailingStatus.SENDING:
        return 0
    recipients = _claim(mailing, batch_size or crm_setting("MAILING_BATCH_SIZE"))
    if not recipients:
        return 0
    compiled = _CompiledMailing(mailing)
    links = _MailingLinks(mailing, used_by=compiled.source)
    allowed = _still_mailable(mailing, recipients)
    ends = _membership_end_dates([r.contact_id for r in recipients if r.contact_id])
    connection = connection or get_connection()
    # Django's own SMTP backend: the fast path (module docstring). Any other
    # backend (locmem, console, anymail...) gets Django's message objects.
    wire = _WireFormat(mailing) if isinstance(connection, SMTPBackend) else None
    domain = _message_id_domain()
    pacer = _Pacer()
    marks = _SentMarks()
    ahead = {}  # index -> envelope made while the server was busy with the one before

    def prepare(index):
        recipient = recipients[index]
        rendered = compiled.render(links.context(recipient.contact, ends.get(recipient.contact_id)))
        return rendered, _message_id(recipient, domain)

    def render_next(index):
        # Errors are left for the recipient's own turn, which renders again.
        following = index + 1
        if following < len(recipients) and recipients[following].pk in allowed:
            with contextlib.suppress(Exception):
                rendered, message_id = prepare(following)
                ahead[following] = wire.envelope(rendered, recipients[following].email, message_id)

    done, opened = 0, False
    try:
        with _asynchronous_commits():
            try:
                for index, recipient in enumerate(recipients):
                    if stop is not None and stop():
                        marks.settle()
                        _release(recipients[index:])
                        break
                    if recipient.pk not in allowed:
                        marks.settle()
                        _finish(
                            recipient, RecipientStatus.SKIPPED, _("Unsubscribed or not mailable.")
                        )
                        done += 1
                        continue
                    envelope = ahead.pop(index, None)
                    if envelope is None:
                        rendered, message_id = prepare(index)
                    pacer.wait()
                    if not opened or (wire is not None and connection.connection is None):
                        # Opened here and closed after the batch: Django's SMTP
                        # backend would otherwise connect again for every message.
                        # (The fast path drops a connection left inside a DATA.)
                        try:
                            connection.open()
                        except Exception as exc:  # noqa: BLE001 - settled there
                            marks.settle()
                            _interrupt_or_fail(mailing, recipients, done, exc)
                            done += 1
                            continue
                        opened = True
                    if wire is not None:
                        try:
                            if envelope is None:
                                envelope = wire.envelope(rendered, recipient.email, message_id)
                            _send_over_smtp(
                                connection,
                                envelope,
                                recipient,
                                marks,
                                functools.partial(render_next, index),
                            )
                        except _MarkFailed:
                            raise
                        except Exception as exc:  # noqa: BLE001 - settled there
                            marks.settle()
                            _interrupt_or_fail(mailing, recipients, done, exc)
                    else:
                        message = build_email(
                            mailing,
                            rendered,
                            recipient.email,
                            message_id=message_id,
                            connection=connection,
                        )
                        try:
                            sent = connection.send_messages([message])
                        except Exception as exc:  # noqa: BLE001 - settled there
                            _interrupt_or_fail(mailing, recipients, done, exc)
                        else:
                            if sent:
                                _finish(recipient, RecipientStatus.SENT)
                            else:
                                _finish(
                                    recipient,
                                    RecipientStatus.FAILED,
                                    _("The email backend refused it."),
                                )
                    done += 1
            except _MarkFailed:
                # The message in hand (if any) was abandoned mid-DATA.
                _release(recipients[done:])
                raise
            finally:
                marks.settle()
    finally:
        connection.close()
        refresh_counts(mailing)
    return done


def _interrupt_or_fail(mailing, recipients, done, exc):
    """Settle ``recipients[done]`` after ``exc``: failed, or the rest of the batch released.

    A connection problem (or a 4xx reply) puts the rest of the batch back to
    pending and raises ``MailingDeliveryInterrupted``, until the recipient
    has had ``MAX_ATTEMPTS``; anything else marks it failed with the error.
    """
    recipient = recipients[done]
    if _is_connection_problem(exc) and recipient.attempts + 1 < MAX_ATTEMPTS:
        MailingRecipient.objects.filter(pk=recipient.pk).update(attempts=recipient.attempts + 1)
        _release(recipients[done:])
        raise MailingDeliveryInterrupted(
            _("The mail server could not be reached: %(error)s") % {"error": exc}
        ) from exc
    logger.warning("mailing %s: %s refused: %s", mailing.pk, recipient.email, exc)
    _finish(recipient, RecipientStatus.FAILED, f"{type(exc).__name__}: {exc}")


def finish_if_done(mailing):
    """Mark a sending mailing ``sent`` once no recipient is pending or claimed; True if so."""
    with transaction.atomic():
        locked = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if locked.status != MailingStatus.SENDING:
            return locked.status == MailingStatus.SENT
        if locked.recipients.filter(
            status__in=(RecipientStatus.PENDING, RecipientStatus.SENDING)
        ).exists():
            return False
        refresh_counts(locked)
        Mailing.objects.filter(pk=locked.pk).update(
            status=MailingStatus.SENT, finished_at=timezone.now()
        )
    return True


@dataclass
class SendProgress:
    handled: int = 0
    finished: bool = False
    out_of_time: bool = False  # stopped early (time budget, or asked to stop): more to send
    stopped_by_signal: int = 0

    def as_dict(self):
        return {"handled": self.handled, "finished": self.finished, "more": self.out_of_time}


class _StopOnSignals:
    """SIGTERM or SIGINT while sending: finish the message in hand, then stop.

    A worker told to stop (``kill``, a deploy, Ctrl-C, a container stop) would
    otherwise die wherever the signal finds it, perhaps between the server's
    "250" and the "sent" mark, and that message would go out again. While
    ``send_pending`` runs (in the main thread, where signal handlers live) the
    first signal only sets a flag; the batch stops before its next message,
    gives its other recipients back, and the handler that was there before
    (the task worker's, Python's ``KeyboardInterrupt``, or the default
    "terminate") then gets the signal, from that safe point. A second signal
    goes to that handler at once (a stuck mail server must not make a worker
    unstoppable; the message in hand may then be sent twice). A signal whose
    handler was not set from Python is left alone.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self.previous = {}  # signal -> the handler it had before ours
        self.installed = self.passed_on = False

    def __call__(self):
        return bool(self.received)

    def _handle(self, signum, _frame):
        if not self.received:
            self.received = signum
            return
        # A second signal: the handler that was there hears both, now (the
        # task worker's second one means "stop at once").
        self.restore()
        self._deliver(self.received)
        self._deliver(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not None:
                    self.previous[signum] = signal.signal(signum, self._handle)
            self.installed = True
        return self

    def __exit__(self, *_exc):
        self.restore()
        return False

    def restore(self):
        if self.installed:
            self.installed = False
            for signum, handler in self.previous.items():
                signal.signal(signum, handler)

    def pass_on(self):
        """Give the caught signal (once) to the handler that was there before."""
        if self.received and not self.passed_on:
            self._deliver(self.received)

    def _deliver(self, signum):
        self.passed_on = True
        handler = self.previous.get(signum)
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


def send_pending(mailing, *, time_budget=None, batch_size=None, on_stop=None):
    """Send batches until none is left, ``time_budget`` seconds have passed or a stop signal came.

    A SIGTERM or SIGINT (``_StopOnSignals``) ends the run after the message in
    hand; the rest stays pending (``out_of_time``), ``on_stop(progress)`` runs
    (the task enqueues itself again there), and the signal is then passed on,
    also when the run ends with an error.
    """
    budget = crm_setting("MAILING_TASK_TIME_BUDGET") if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    progress = SendProgress()
    stop = _StopOnSignals()
    try:
        with stop:
            while True:
                handled = send_batch(mailing, batch_size, stop=stop)
                progress.handled += handled
                if stop():
                    progress.out_of_time = True
                    progress.stopped_by_signal = stop.received
                    break
                if not handled:
                    break
                if time.monotonic() >= deadline:
                    progress.out_of_time = True
                    break
            progress.finished = finish_if_done(mailing)
    except BaseException:
        # The caller handles the error (the task retries a lost mail server);
        # the worker must still hear that it was told to stop.
        stop.pass_on()
        raise
    if stop() and not stop.passed_on:
        if on_stop is not None:
            on_stop(progress)
        stop.pass_on()
    return progress


# -- unsubscribing --------------------------------------------------------------------------


def read_unsubscribe_token(mailing_id, token):
    """The contact an unsubscribe link names; ``InvalidLink`` when forged or expired."""
    return read_contact_token(
        token,
        _unsubscribe_purpose(mailing_id),
        max_age=crm_setting("MAILING_UNSUBSCRIBE_MAX_AGE"),
    )


def unsubscribe(contact, mailing, *, ip_address=None):
    """Withdraw ``contact``'s email consent for what ``mailing`` was about; idempotent.

    The purpose is the mailing's consent purpose, or ``BULK_PURPOSE`` when it
    has none. Appends a withdrawal only when the latest record is not one
    already; returns the record appended, or None.
    """
    purpose = (mailing.consent_purpose if mailing else "") or BULK_PURPOSE
    with transaction.atomic():
        # Serialise two clicks on the same link (mail clients may POST and GET at once).
        Contact.all_objects.select_for_update().filter(pk=contact.pk).first()
        latest = (
            ConsentRecord.objects.filter(contact=contact, purpose=purpose, channel=Channel.EMAIL)
            .order_by("-recorded_at", "-id")
            .first()
        )
        if latest is not None and not latest.granted:
            return None
        try:
            return record_consent(
                contact,
                purpose=purpose,
                channel=Channel.EMAIL,
                granted=False,
                wording=_("Unsubscribed with the link in a mailing."),
                source="unsubscribe",
                source_reference=f"mailing:{mailing.pk}" if mailing else "",
                ip_address=ip_address,
            )
        except ValidationError as exc:  # pragma: no cover - our own values are valid
            raise CRMError(" ".join(exc.messages)) from exc
