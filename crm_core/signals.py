"""Receivers of django-anymail's signals, connected in ``CrmCoreConfig.ready``.

Anymail sends ``tracking`` for every event an ESP's webhook reports and
``pre_send`` before it hands a message to the ESP's API.
"""

import logging

from django.db import DatabaseError

from .services.bounces import handle_tracking_event, mailing_metadata

logger = logging.getLogger("crm.bounces")


def apply_tracking_event(sender, event, esp_name, **kwargs):
    """Bounces and complaints put addresses on hold (``crm_core.services.bounces``).

    An event we cannot make sense of is logged and dropped: raising would make
    anymail answer 500 and the ESP send the same bad event again for days.
    A database error does propagate, so the ESP retries once it is over.
    """
    try:
        handle_tracking_event(event, esp_name)
    except DatabaseError:
        raise
    except Exception:
        logger.exception(
            "%s tracking event %s not applied", esp_name, getattr(event, "event_id", None)
        )


def add_mailing_metadata(sender, message, esp_name, **kwargs):
    """Tag a mailing's message with its recipient row, for ESPs that replace the Message-ID."""
    metadata = mailing_metadata(message)
    if metadata:
        message.metadata = {**(getattr(message, "metadata", None) or {}), **metadata}
