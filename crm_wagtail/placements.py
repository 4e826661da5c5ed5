"""Finds the CRM form a signed placement names in a Wagtail page.

A visitor submits the form as it was in the revision they were shown, so a
price they saw is the price they pay. That revision is only accepted while
the page is live and the revision belongs to it; an editor who removes a
form, or unpublishes the page, stops its submissions at once (the visitor is
asked to reload the page). A republished page with the form still there
keeps taking submissions of the old revision.
"""

from django.core.exceptions import ObjectDoesNotExist
from wagtail.fields import StreamField
from wagtail.models import Page, Revision

from crm_forms.placement import Resolved


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


def resolve_wagtail_placement(placement):
    page = Page.objects.live().filter(pk=placement.page_id).first()
    if page is None:
        return None
    page = page.specific
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
