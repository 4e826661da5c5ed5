"""Signed personal links: identify a contact without a login.

Receipts, renewal reminders and mailings carry links such as "renew my
membership" or "manage my subscriptions". The token in such a link names
the contact and the one purpose it was made for, is signed with the site's
SECRET_KEY and expires after ``CONTACT_LINK_MAX_AGE`` seconds. A token made
for one purpose is refused for any other, so an unsubscribe link cannot be
used to read someone's details.

A token stays valid after its contact is merged into another: it then
identifies the contact that was kept.
"""

from django.core import signing
from django.utils.translation import gettext as _

from .conf import crm_setting
from .exceptions import InvalidLink

SALT = "crm_core.links"


def _salt(purpose):
    if not purpose or ":" in purpose:
        raise ValueError("A link purpose is a non-empty word without ':'.")
    return f"{SALT}:{purpose}"


def make_contact_token(contact, purpose):
    """A URL-safe token naming ``contact`` for ``purpose`` (e.g. "renew")."""
    return signing.dumps({"c": contact.pk}, salt=_salt(purpose), compress=True)


def read_contact_token(token, purpose, *, max_age=None):
    """The live contact a token made by ``make_contact_token`` names.

    Raises ``InvalidLink`` when the token is forged, made for another purpose,
    older than ``max_age`` seconds (default ``CONTACT_LINK_MAX_AGE``), or names
    a contact that is in the trash and was not merged into another.
    """
    if max_age is None:
        max_age = crm_setting("CONTACT_LINK_MAX_AGE")
    try:
        payload = signing.loads(str(token), salt=_salt(purpose), max_age=max_age)
    except signing.SignatureExpired as exc:
        raise InvalidLink(_("This link has expired."), code="link_expired") from exc
    except signing.BadSignature as exc:
        raise InvalidLink(_("This link is not valid."), code="link_invalid") from exc
    contact_id = payload.get("c") if isinstance(payload, dict) else None
    if not isinstance(contact_id, int):
        raise InvalidLink(_("This link is not valid."), code="link_invalid")
    contact = contact_after_merges(contact_id)
    if contact is None:
        raise InvalidLink(_("This link no longer points at anyone."), code="link_no_contact")
    return contact


def contact_after_merges(contact_id):
    """The live contact ``contact_id`` names now: itself, or the contact it was
    merged into (following later merges too); None when it is in the trash and
    was not merged, or no longer exists.

    Whatever keeps a contact's id for later (a link, a pending confirmation)
    reads it back through this, so a merge in between does not lose the person.
    """
    from .models import Contact, MergeRecord

    # A chain at most as long as the merges done since.
    seen = set()
    while contact_id is not None and contact_id not in seen:
        seen.add(contact_id)
        contact = Contact.all_objects.filter(pk=contact_id).first()
        if contact is not None and not contact.is_deleted:
            return contact
        contact_id = (
            MergeRecord.objects.filter(removed_contact_ref=contact_id)
            .order_by("-pk")
            .values_list("kept_contact_ref", flat=True)
            .first()
        )
    return None


REGISTRATION_SALT = "crm_core.links:waitlist-offer"


def make_registration_token(registration):
    """A URL-safe token naming one registration (its UUID), for its waiting-list offer."""
    return signing.dumps({"r": str(registration)}, salt=REGISTRATION_SALT)


def read_registration_token(token, *, max_age=None):
    """The registration UUID a ``make_registration_token`` token names.

    Raises ``InvalidLink`` when it is forged or older than ``max_age`` seconds
    (default ``CONTACT_LINK_MAX_AGE``).
    """
    import uuid

    if max_age is None:
        max_age = crm_setting("CONTACT_LINK_MAX_AGE")
    try:
        payload = signing.loads(str(token), salt=REGISTRATION_SALT, max_age=max_age)
        return uuid.UUID(payload["r"])
    except signing.SignatureExpired as exc:
        raise InvalidLink(_("This link has expired."), code="link_expired") from exc
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidLink(_("This link is not valid."), code="link_invalid") from exc
