"""Who is filling in a form: a signed personal link, a logged-in user, or a stranger.

A visitor is *identified* by a signed, expiring link made for them
(``personal_form_url``, sent in receipts and renewal reminders) or by being
logged in with an email address that exactly one contact has as its primary
email. An identified visitor's form shows their own name and email instead of
asking for them, and the submission is theirs without matching; a membership
form offers to renew what they hold.

Anyone else is a stranger: the form is empty (a logged-in user's own name and
email from their account are filled in) and ``match_contact`` decides. A
stranger is never shown anything stored about the contact their email
matches.
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from crm_core.exceptions import InvalidLink
from crm_core.links import make_contact_token, read_contact_token

LINK_PURPOSE = "form"
QUERY_PARAMETER = "crm"


@dataclass(frozen=True)
class Visitor:
    contact: object
    email: str
    token: str = ""  # the personal link's token, posted back with the form

    @property
    def name(self):
        return str(self.contact)


def personal_form_url(url, contact):
    """``url`` (a page with a CRM form) with a token that identifies ``contact``."""
    token = make_contact_token(contact, LINK_PURPOSE)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode({QUERY_PARAMETER: token})}"


def _with_email(contact):
    email = contact.primary_email if contact is not None else None
    return email.email if email is not None else ""


def identify(request):
    """The ``Visitor`` a request comes from, or None for a stranger.

    A token in the query string (the page) or in the posted ``who`` field
    (the submission) wins over a login. A bad or expired token identifies no
    one: the form is then the stranger's form, and nothing is revealed.
    """
    token = request.POST.get("who") or request.GET.get(QUERY_PARAMETER) or ""
    if token and len(token) < 500:
        try:
            contact = read_contact_token(token, LINK_PURPOSE)
        except InvalidLink:
            contact = None
        email = _with_email(contact)
        if email:
            return Visitor(contact, email, token)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.email:
        contact = _only_contact_with_email(user.email)
        email = _with_email(contact)
        if email:
            return Visitor(contact, email)
    return None


def stranger_prefill(request):
    """Initial values a logged-in user's own account gives a stranger's form."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"first_name": user.first_name, "last_name": user.last_name, "email": user.email}


def _only_contact_with_email(email):
    from crm_core.models import Contact

    contacts = list(
        Contact.objects.filter(
            emails__email_normalized=email.strip().lower(), emails__is_primary=True
        ).prefetch_related("emails")[:2]
    )
    return contacts[0] if len(contacts) == 1 else None
