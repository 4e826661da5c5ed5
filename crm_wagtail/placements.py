"""Finds the CRM form a signed placement names in a Wagtail page.

A visitor submits the form as it was in the revision they were shown, so a
price they saw is the price they pay. That revision is only accepted while
the page is live and the revision belongs to it; an editor who removes a
form, or unpublishes the page, stops its submissions at once (the visitor is
asked to reload the page). A republished page with the form still there
keeps taking submissions of the old revision.

A revision's content never changes, so the block's settings read from it
are kept in memory (``_shown_forms``) and the revision is not deserialised
again on every submission. What can change is still checked on every one,
in one query: the page is live, the revision still exists and belongs to it,
and the live page still holds the block. The settings are then cleaned
again (``clean_config``), so the database rows they name (an active fund, a
campaign, membership types, the event...) and the configured payment
methods are as current as before. Settings whose rich text links to pages
or documents are not kept: the addresses of those links can change.
"""

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Subquery
from wagtail.fields import StreamField
from wagtail.models import Page, Revision

from crm_forms.placement import Resolved

#: How many placements' settings each process keeps (least recently used go first).
SHOWN_FORMS_KEPT = 256
# Rich text as stored names the pages and documents it links to by id; the
# addresses they expand to change when those do.
DATABASE_REFERENCES = ("linktype=", "embedtype=")


def stream_fields(page):
    return [f for f in page._meta.get_fields() if isinstance(f, StreamField)]


def find_form_block(page, block_id):
    """(block, value) of the CRM form block with this id in the page's StreamFields."""
    from .blocks import CRMFormBlock

    for field in stream_fields(page):
        for child in getattr(page, field.name) or []:
            if child.id == block_id and isinstance(child.block, CRMFormBlock):
                return child.block, child.value
    return None, None


def holds_form_block(page, block_id):
    """Whether the page's StreamFields hold the CRM form block with this id.

    Reads the stored JSON only: unlike ``find_form_block``, it converts no
    block values (no queries for the snippets they choose)."""
    from .blocks import CRMFormBlock

    for field in stream_fields(page):
        stream = getattr(page, field.name)
        if not stream:
            continue
        child_blocks = stream.stream_block.child_blocks
        for item in stream.raw_data:
            if item.get("id") == block_id and isinstance(
                child_blocks.get(item.get("type")), CRMFormBlock
            ):
                return True
    return False


@dataclass(frozen=True)
class ShownForm:
    """What a revision says about one of its forms: plain data, shared by threads."""

    kind: str
    #: ``block.crm_config(value)``, as JSON text: a fresh copy for each use.
    config_json: str
    page_model: type
    #: Tells this revision apart from a later one given the same id (a test
    #: database rolled back, or restored from a dump).
    revision_created_at: object


class ShownForms:
    """A bounded, thread-safe map from (page id, revision id, block id) to ``ShownForm``."""

    def __init__(self, size):
        self.size = size
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key, item):
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_shown_forms = ShownForms(SHOWN_FORMS_KEPT)


def resolve_wagtail_placement(placement):
    key = (placement.page_id, placement.revision_id, placement.block_id)
    shown_form = _shown_forms.get(key) if placement.revision_id is not None else None
    if shown_form is not None:
        resolved = _resolve_shown_form(placement, shown_form)
        if resolved is not None:
            return resolved
    # Not kept, or something changed: read it all again, and refuse from here.
    return _resolve_from_revision(placement, key)


def _resolve_shown_form(placement, shown_form):
    """The kept form, if the page is still live, with this revision and the block;
    None when anything is not as it was (the caller then reads everything again)."""
    from crm_forms.kinds import get_kind

    revision = Revision.page_revisions.filter(
        pk=placement.revision_id, object_id=str(placement.page_id)
    )
    page = (
        shown_form.page_model.objects.live()
        .filter(pk=placement.page_id)
        .annotate(crm_shown_revision_at=Subquery(revision.values("created_at")[:1]))
        .first()
    )
    if (
        page is None
        or page.crm_shown_revision_at != shown_form.revision_created_at
        or not holds_form_block(page, placement.block_id)
    ):
        return None
    config = get_kind(shown_form.kind).clean_config(json.loads(shown_form.config_json))

    def render_page(request):
        # The page as the visitor saw it, with the bound form in place.
        return _shown_page(page, placement.revision_id).serve(request)

    return Resolved(
        kind=shown_form.kind,
        config=config,
        title=page.title,
        page_url=page.url or "",
        render_page=render_page,
    )


def _shown_page(page, revision_id):
    """The page as the revision the visitor saw has it (as it is now, should that
    revision have been deleted since)."""
    revision = Revision.page_revisions.filter(pk=revision_id, object_id=str(page.pk)).first()
    return revision.as_object() if revision is not None else page


def _resolve_from_revision(placement, key):
    page = Page.objects.live().filter(pk=placement.page_id).first()
    if page is None:
        return None
    page = page.specific
    revision = None
    if placement.revision_id is not None:
        try:
            revision = Revision.page_revisions.get(pk=placement.revision_id, object_id=str(page.pk))
        except (ObjectDoesNotExist, ValueError, OverflowError):
            return None
        shown = revision.as_object()
    else:
        shown = page
    block, value = find_form_block(shown, placement.block_id)
    if block is None or find_form_block(page, placement.block_id)[0] is None:
        return None
    config = block.crm_config(value)
    if revision is not None:
        _keep(key, block, value, config, type(page), revision)
    from crm_forms.kinds import get_kind

    config = get_kind(block.crm_kind).clean_config(config)

    def render_page(request):
        # The page as the visitor saw it, with the bound form in place.
        return shown.serve(request)

    return Resolved(
        kind=block.crm_kind,
        config=config,
        title=page.title,
        page_url=page.url or "",
        render_page=render_page,
    )


def _keep(key, block, value, config, page_model, revision):
    stored = json.dumps(block.get_prep_value(value), cls=DjangoJSONEncoder)
    if any(reference in stored for reference in DATABASE_REFERENCES):
        return
    try:
        config_json = json.dumps(config)
    except TypeError:
        return  # not plain data: read it from the revision each time
    _shown_forms.put(
        key,
        ShownForm(
            kind=block.crm_kind,
            config_json=config_json,
            page_model=page_model,
            revision_created_at=revision.created_at,
        ),
    )
