"""The submit endpoint every CRM form posts to, and the thank-you page."""

import logging

from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from crm_core.exceptions import CRMError
from crm_core.money import format_money

from .kinds import get_kind
from .placement import read_placement, resolve_placement
from .services.common import read_thanks_token

logger = logging.getLogger(__name__)
MAX_FIELD_LENGTH = 10_000


def _problem(request, message, status=400):
    return render(request, "crm_forms/problem.html", {"message": message}, status=status)


def _show_again(request, placement, resolved, form, status=400):
    request.crm_bound_forms = {placement.block_id: form}
    if resolved.render_page is not None:
        response = resolved.render_page(request)
        response.status_code = status
        return response
    from .rendering import render_crm_form

    return render(
        request,
        "crm_forms/form_page.html",
        {"title": resolved.title, "form_html": render_crm_form(request, placement, resolved)},
        status=status,
    )


@never_cache
@require_POST
def submit(request):
    """Validate a posted CRM form against its placement's configuration and submit it."""
    try:
        placement = read_placement(request.POST.get("placement", ""))
        resolved = resolve_placement(placement)
        kind = get_kind(resolved.kind)
    except (CRMError, ValidationError) as error:
        return _problem(request, getattr(error, "message", None) or "; ".join(error.messages))
    if any(len(value) > MAX_FIELD_LENGTH for value in request.POST.values()):
        form = kind.build_form(request, resolved.config)
        form.crm_error = _("Some of what was sent is far too long.")
        return _show_again(request, placement, resolved, form)
    form = kind.build_form(request, resolved.config, data=request.POST)
    if form.is_bot:
        # Pretend it worked: a bot learns nothing, and nothing is saved.
        logger.info("CRM form honeypot filled at %s", placement)
        return render(request, "crm_forms/thanks.html", {"submission": None})
    if not form.is_valid():
        return _show_again(request, placement, resolved, form)
    try:
        result = kind.submit(request, form, placement, resolved.config)
    except ValidationError as error:
        for field, messages in getattr(error, "message_dict", {"__all__": error.messages}).items():
            form.add_error(field if field in form.fields else None, messages)
        return _show_again(request, placement, resolved, form)
    except CRMError as error:
        form.crm_error = error.message
        return _show_again(request, placement, resolved, form, status=error.status_code)
    return HttpResponseRedirect(result.next_url)


@never_cache
@require_GET
def thanks(request, token):
    submission = read_thanks_token(token)
    if submission is None:
        return _problem(request, _("This page does not exist."), status=404)
    contribution = submission.contribution
    return render(
        request,
        "crm_forms/thanks.html",
        {
            "submission": submission,
            "contribution": contribution,
            "renewal": submission.pending.get("renewal", False),
            "amount": format_money(contribution.total_amount, contribution.currency)
            if contribution
            else "",
        },
    )


@never_cache
@require_GET
def confirm(request, token):
    """The double opt-in link of a newsletter signup."""
    from .services.signups import confirm_signup, read_confirm_token

    submission = read_confirm_token(token)
    if submission is None:
        return _problem(
            request, _("This confirmation link is not valid or has expired."), status=404
        )
    confirm_signup(submission)
    return render(request, "crm_forms/confirmed.html", {"submission": submission})
