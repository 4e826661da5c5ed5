"""Rendering a CRM form where an editor placed it."""

from django.template.loader import render_to_string
from django.urls import reverse

from .kinds import get_kind
from .placement import sign_placement


def render_crm_form(request, placement, resolved, *, preview=False):
    """The HTML of the form at ``placement``: a plain POST form that works without
    JavaScript. A bound form left in ``request.crm_bound_forms`` by the submit
    endpoint (invalid input) is shown with its errors and what was typed."""
    bound = getattr(request, "crm_bound_forms", {}).get(placement.block_id)
    form = bound or get_kind(resolved.kind).build_form(request, resolved.config)
    # Ids unique per block: a page may hold several forms.
    form.auto_id = f"crm-{placement.block_id[:8]}-%s"
    return render_to_string(
        f"crm_forms/{resolved.kind}_form.html",
        {
            "form": form,
            "config": resolved.config,
            "placement_token": sign_placement(placement),
            "action": reverse("crm_forms:submit"),
            "back": resolved.page_url,
            "form_id": f"crm-form-{placement.block_id}"[:80],
            "preview": preview,
            "has_errors": bound is not None and bool(bound.errors),
            "form_error": getattr(bound, "crm_error", ""),
        },
        request=request,
    )
