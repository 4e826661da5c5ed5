"""The demo's mail catcher: messages the demo sends, kept as .eml files to look at.

``make demo`` points Django's SMTP backend at ``manage.py demo_mail_catcher``
(an aiosmtpd server on 127.0.0.1:1025), which stores every message it
receives in ``mail_dir()``; staff read them at ``/demo-mail/``. Nothing here
is meant for a real deployment: it is on only when ``DEBUG`` is on or
``DEMO_MAIL_DIR`` is set.
"""

import email
import email.policy
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

from django.conf import settings

# The only names the catcher writes, and so the only ones the pages open.
FILENAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9]{6}-[0-9a-f]{12}\.eml$")
LISTED = 200


def mail_dir():
    """Where caught mail lives: ``DEMO_MAIL_DIR``, else ``var/demo-mail`` under DEBUG; or None."""
    configured = getattr(settings, "DEMO_MAIL_DIR", "")
    if configured:
        return Path(configured)
    if settings.DEBUG:
        return Path(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var")) / "demo-mail"
    return None


class MailCatcher:
    """aiosmtpd handler that keeps each message as ``<time>-<random>.eml`` in ``directory``.

    The envelope is recorded in ``X-MailFrom`` and ``X-RcptTo`` headers put in
    front of the message (as aiosmtpd's own ``Message`` handler does), so
    blind copies show who they went to.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        content = envelope.original_content or envelope.content
        if isinstance(content, str):  # only when the server decodes data
            content = content.encode("utf-8", "surrogateescape")
        self.store(envelope.mail_from, envelope.rcpt_tos, content)
        return "250 OK"

    def store(self, mail_from, rcpt_tos, content):
        now = datetime.now(UTC)
        name = f"{now:%Y%m%dT%H%M%S-%f}-{uuid.uuid4().hex[:12]}.eml"
        envelope = (
            f"X-MailFrom: {_one_line(mail_from)}\r\nX-RcptTo: {_one_line(', '.join(rcpt_tos))}\r\n"
        ).encode()
        # Written under another name and renamed: the pages never see half a file.
        partial = self.directory / f".{name}.partial"
        partial.write_bytes(envelope + content)
        os.replace(partial, self.directory / name)
        return name


def _one_line(value):
    return " ".join(str(value or "").split())


def start_catcher(directory, *, host="127.0.0.1", port=1025):
    """Start the SMTP server in a thread of its own; returns the aiosmtpd controller."""
    from aiosmtpd.controller import Controller

    controller = Controller(MailCatcher(directory), hostname=host, port=port)
    controller.start()
    return controller


@dataclass(frozen=True)
class CaughtMessage:
    name: str
    received_at: datetime
    to: str
    subject: str


def _received_at(name):
    return datetime.strptime(name[:22], "%Y%m%dT%H%M%S-%f").replace(tzinfo=UTC)


def list_messages(directory, limit=LISTED):
    """The newest ``limit`` messages in ``directory``, newest first (headers only)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    names = sorted((n for n in os.listdir(directory) if FILENAME.match(n)), reverse=True)
    parser = BytesHeaderParser(policy=email.policy.default)
    messages = []
    for name in names[:limit]:
        with open(directory / name, "rb") as handle:
            headers = parser.parse(handle)
        messages.append(
            CaughtMessage(
                name=name,
                received_at=_received_at(name),
                to=str(headers.get("To") or headers.get("X-RcptTo") or ""),
                subject=str(headers.get("Subject") or ""),
            )
        )
    return messages


def read_message(directory, name):
    """The parsed message called ``name``, or None if no such message (or not a catcher name)."""
    if not FILENAME.match(name or ""):
        return None
    path = Path(directory) / name
    if not path.is_file():
        return None
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def message_parts(message):
    """``(headers, text, html)`` of a parsed message; text and html are "" when absent."""
    headers = [(key, str(value)) for key, value in message.items()]
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    return headers, _content(text_part), _content(html_part)


def _content(part):
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
