"""Membership renewal reminders, each sent once per term and offset.

``send_renewal_reminders(today)`` looks at every membership that is not
renewed automatically, not inherited (the household's primary member gets
the reminder) and not for life:

- before the end: while the term is current (new or current) and ends
  within ``MEMBERSHIP_REMINDER_DAYS_BEFORE`` days, the most urgent offset
  reached is due ("30 days before", then "7 days before");
- after the end: while the membership is in grace and ended at least
  ``MEMBERSHIP_REMINDER_DAYS_AFTER`` days ago, the latest offset reached is
  due.

A due reminder is keyed ``reminder:<membership>:<end date>:<offset>``, so
running the command (or its task) any number of times, on any days, sends
each reminder once; a run that missed days still sends the reminder that is
due, once. A renewal moves the end date, and the next term gets its own
reminders. The message carries the signed renewal link
(``PERSONAL_LINK_PAGES["renew"]``).
"""

import datetime
import logging

from django.utils import timezone

from ..conf import crm_setting
from ..memberships_dates import grace_end
from ..models import Membership, MembershipStatus, MessageKind, SentMessage
from .mailings import personal_link
from .messages import send_once

logger = logging.getLogger("crm.messages")

BEFORE_STATUSES = (MembershipStatus.NEW, MembershipStatus.CURRENT)


def _offsets(name, *, allow_zero):
    values = set()
    for value in crm_setting(name) or ():
        days = int(value)
        if days > 0 or (allow_zero and days == 0):
            values.add(days)
    return sorted(values)


def due_reminders(*, today=None):
    """``[(key, membership, kind, offset)]`` due on ``today``; sent or not."""
    today = today or timezone.localdate()
    before = _offsets("MEMBERSHIP_REMINDER_DAYS_BEFORE", allow_zero=True)
    after = _offsets("MEMBERSHIP_REMINDER_DAYS_AFTER", allow_zero=False)
    base = (
        Membership.objects.filter(
            auto_renew=False, inherited_from__isnull=True, end_date__isnull=False
        )
        .select_related("contact", "membership_type")
        .prefetch_related("contact__emails")
        .order_by("end_date", "pk")
    )
    due = []
    if before:
        soon = base.filter(
            status__in=BEFORE_STATUSES,
            end_date__gte=today,
            end_date__lte=today + datetime.timedelta(days=before[-1]),
        )
        for membership in soon:
            days_left = (membership.end_date - today).days
            offset = min(d for d in before if days_left <= d)
            key = f"reminder:{membership.pk}:{membership.end_date}:before-{offset}"
            due.append((key, membership, MessageKind.RENEWAL_REMINDER, offset))
    if after:
        ended = base.filter(
            status=MembershipStatus.GRACE,
            end_date__lte=today - datetime.timedelta(days=after[0]),
        )
        for membership in ended:
            days_since = (today - membership.end_date).days
            offset = max(d for d in after if days_since >= d)
            key = f"reminder:{membership.pk}:{membership.end_date}:after-{offset}"
            due.append((key, membership, MessageKind.GRACE_REMINDER, offset))
    return due


def send_renewal_reminders(*, today=None):
    """Send the reminders due on ``today`` that have not gone out; returns counts."""
    today = today or timezone.localdate()
    due = due_reminders(today=today)
    sent_before = set(
        SentMessage.objects.filter(key__in=[key for key, *_rest in due]).values_list(
            "key", flat=True
        )
    )
    counts = {"due": len(due), "sent": 0, "already_sent": 0, "not_sendable": 0, "failed": 0}
    for key, membership, kind, _offset in due:
        if key in sent_before:
            counts["already_sent"] += 1
            continue
        context = {
            "membership_type": membership.membership_type.name,
            "end_date": membership.end_date,
            "renew_url": personal_link(membership.contact, "renew"),
        }
        if kind == MessageKind.RENEWAL_REMINDER:
            context["days_left"] = (membership.end_date - today).days
        else:
            context["grace_end"] = grace_end(membership.end_date, membership.membership_type)
        try:
            sent = send_once(key, membership.contact, kind, context)
        except Exception:  # noqa: BLE001 - one bad mail server moment must not stop the run
            logger.exception("Renewal reminder %s failed; the next run tries again", key)
            counts["failed"] += 1
            continue
        counts["sent" if sent else "not_sendable"] += 1
    return counts
