"""Recording consent, which is only ever appended."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import crm_setting
from ..models import Channel, ConsentRecord
from ..sanitize import plain_text
from .activities import record_system_event, user_or_none


@transaction.atomic
def record_consent(
    contact,
    *,
    purpose,
    channel,
    granted,
    wording="",
    source="",
    source_reference="",
    ip_address=None,
    recorded_at=None,
    actor=None,
):
    """Append a consent record and a timeline entry; the latest record per
    purpose and channel is the contact's current consent."""
    errors = {}
    if channel not in Channel.values:
        errors["channel"] = [_("Choose one of: %(c)s.") % {"c": ", ".join(Channel.values)}]
    if not isinstance(granted, bool):
        errors["granted"] = [_("Expected true or false.")]
    if isinstance(wording, str) and len(wording) > crm_setting("MAX_TEXT_LENGTH"):
        errors["wording"] = [_("The wording is too long.")]
    if recorded_at and recorded_at > timezone.now():
        errors["recorded_at"] = [_("Consent cannot be recorded in the future.")]
    if errors:
        raise ValidationError(errors)
    record = ConsentRecord(
        contact=contact,
        purpose=purpose,
        channel=channel,
        granted=granted,
        wording=plain_text(wording, multiline=True),
        source=plain_text(source)[:100],
        source_reference=plain_text(source_reference)[:255],
        ip_address=ip_address,
        recorded_at=recorded_at or timezone.now(),
        recorded_by=user_or_none(actor),
    )
    record.full_clean(exclude=["contact", "recorded_by"])
    record.save()
    verb = _("given") if granted else _("withdrawn")
    record_system_event(
        contact,
        _("Consent %(verb)s: %(purpose)s by %(channel)s")
        % {"verb": verb, "purpose": purpose, "channel": channel},
        actor=actor,
        source=source,
        changes={f"consent:{purpose}:{channel}": [None, granted]},
    )
    return record
