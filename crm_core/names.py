"""Contact names: how they are displayed, sorted and compared."""

import re
import unicodedata

from .models.contacts import ContactKind

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def name_key(text):
    """Fold accents, case, punctuation and spacing: "Zoë  O'Brien" -> "zoe o brien"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub(" ", stripped.casefold()).strip()


def contact_names(
    *, kind, first_name="", last_name="", organization_name="", household_name="", fallback=""
):
    """Return (display_name, sort_name, name_key) for a contact's name fields.

    ``fallback`` (usually the primary email) names an individual who gave no
    name, so every contact has something to show.
    """
    if kind == ContactKind.ORGANIZATION:
        display = sort = organization_name
    elif kind == ContactKind.HOUSEHOLD:
        display = sort = household_name
    else:
        display = " ".join(p for p in (first_name, last_name) if p)
        sort = ", ".join(p for p in (last_name, first_name) if p)
    # The key is of the name alone: an email standing in for it matches nothing.
    key = name_key(display)
    display = display or fallback
    sort = sort or fallback
    return display[:255], sort[:255], key[:255]
