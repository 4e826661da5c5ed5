"""``{% crm_stream page.body %}``: renders a StreamField, CRM forms included.

CRM form blocks need the page and their block id (the placement a submission
is checked against); other blocks render as ``{% include_block %}`` would.
"""

from django import template
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from crm_forms.kinds import get_kind
from crm_forms.placement import Placement, Resolved
from crm_forms.rendering import render_crm_form

from ..blocks import CRMFormBlock

register = template.Library()


@register.simple_tag(takes_context=True)
def crm_stream(context, stream):
    request, page = context.get("request"), context.get("page")
    parts = []
    for child in stream or []:
        if isinstance(child.block, CRMFormBlock):
            parts.append(_render_form(request, page, child))
        else:
            parts.append(child.render(context=context.flatten()))
    # Each part is a rendered template (escaped by the template engine).
    return format_html_join("", "{}", ((mark_safe(part),) for part in parts))  # noqa: S308


def _render_form(request, page, child):
    preview = bool(getattr(request, "is_preview", False))
    revision_id = None if preview else page.live_revision_id
    placement = Placement(page.pk or 0, revision_id, child.id)
    try:
        config = get_kind(child.block.crm_kind).clean_config(child.block.crm_config(child.value))
    except ValidationError:
        # Only a draft can hold settings the block refuses; say so in its preview.
        return format_html("<p>{}</p>", _("This form's settings are not complete yet."))
    resolved = Resolved(
        kind=child.block.crm_kind, config=config, title=page.title, page_url=page.url or ""
    )
    return render_crm_form(request, placement, resolved, preview=preview)
