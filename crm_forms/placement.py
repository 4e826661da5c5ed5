"""Where a form was placed, signed, so a submission can re-read its configuration.

A CRM form rendered on a page carries a signed ``Placement`` (page, revision,
block id). The submit endpoint reads it back and asks the registered
resolvers (crm_wagtail registers one for Wagtail pages) for the
configuration stored there: prices, funds and choices always come from the
server, never from what was posted.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.core import signing
from django.utils.translation import gettext as _

from .exceptions import InvalidPlacement

SALT = "crm_forms.placement"


@dataclass(frozen=True)
class Placement:
    page_id: int
    revision_id: int | None
    block_id: str


@dataclass
class Resolved:
    """A placement's form: its kind, its configuration and where it lives."""

    kind: str
    config: dict
    title: str = ""
    page_url: str = ""
    #: Serves the page again (``request.crm_bound_forms`` holds the bound form),
    #: so errors show in place; None falls back to a page of the form alone.
    render_page: Callable | None = field(default=None, repr=False)


_resolvers = []


def register_placement_resolver(resolver):
    """Add ``resolver(placement) -> Resolved | None``; returns it (usable as a decorator)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)
    return resolver


def unregister_placement_resolver(resolver):
    if resolver in _resolvers:
        _resolvers.remove(resolver)


def sign_placement(placement):
    return signing.dumps(
        [placement.page_id, placement.revision_id, placement.block_id], salt=SALT, compress=True
    )


def read_placement(token):
    """The ``Placement`` a token names; ``InvalidPlacement`` if it was altered."""
    try:
        page_id, revision_id, block_id = signing.loads(str(token), salt=SALT)
    except (signing.BadSignature, TypeError, ValueError) as exc:
        raise InvalidPlacement(
            _("This form is out of date or was altered. Please reload the page.")
        ) from exc
    if not (
        isinstance(page_id, int)
        and (revision_id is None or isinstance(revision_id, int))
        and isinstance(block_id, str)
    ):
        raise InvalidPlacement(
            _("This form is out of date or was altered. Please reload the page.")
        )
    return Placement(page_id, revision_id, block_id)


def resolve_placement(placement):
    """The form at ``placement``; ``InvalidPlacement`` when no resolver knows it."""
    for resolver in _resolvers:
        resolved = resolver(placement)
        if resolved is not None:
            return resolved
    raise InvalidPlacement(_("This form is no longer on the site. Please reload the page."))
