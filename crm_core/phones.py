"""Phone numbers, normalized to E.164 with phonenumbers."""

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .conf import crm_setting


def normalize_phone(raw, *, region=None):
    """Return ``raw`` in E.164 ("+442079460000") or raise ``ValidationError``.

    Numbers without a leading "+" are read in ``region`` (default: the
    DEFAULT_PHONE_REGION setting).
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(_("Enter a phone number."))
    if len(raw) > 40:
        raise ValidationError(_("A phone number has at most 40 characters."))
    try:
        parsed = phonenumbers.parse(raw, region or crm_setting("DEFAULT_PHONE_REGION"))
    except phonenumbers.NumberParseException:
        raise ValidationError(
            _("“%(value)s” is not a phone number."), params={"value": raw}
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(_("“%(value)s” is not a valid phone number."), params={"value": raw})
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def looks_like_phone(text):
    digits = sum(ch.isdigit() for ch in text)
    return digits >= 5 and all(ch.isdigit() or ch in "+-() ./" for ch in text)
