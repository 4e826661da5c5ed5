"""The submit endpoint every CRM form posts to, and the thank-you page."""

import logging

from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from crm_core.exceptions import ContactDeleted, CRMError
from crm_core.money import format_money

from .kinds import get_kind
from .placement import read_placement, resolve_placement
from .services.common import read_thanks_token

logger = logging.getLogger(__name__)
MAX_FIELD_LENGTH = 10_000
NOT_ACCEPTED = gettext_lazy(
    "We could not accept this form with the details given. If you think this is wrong, "
    "please contact us."
)


def _problem(request, message, status=400, title=""):
    return render(
        request, "crm_forms/problem.html", {"message": message, "title": title}, status=status
    )


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


def _form_without(kind, request, config, too_long):
    """The posted form bound again without the values in ``too_long``.

    The visitor keeps everything else they typed and reads which field was
    far too long; the form is only shown again, never submitted.
    """
    data = request.POST.copy()
    for name in too_long:
        data.setlist(
            name, [value for value in data.getlist(name) if len(value) <= MAX_FIELD_LENGTH]
        )
    form = kind.build_form(request, config, data=data)
    form.crm_error = _("Some of what was sent is far too long.")
    for name in too_long:
        if name in form.fields:
            # Only this error: the value is gone, so "required" would mislead.
            form.errors.pop(name, None)
            form.add_error(name, _("This is far too long."))
    return form


def _add_service_errors(form, error):
    """Show a submission service's refusal on the form.

    The core's messages are written for staff: besides what the visitor typed
    they may describe the stored contact the details matched (deceased, in the
    trash, already a member). Errors about a field of this form are shown on
    it; any other gets one message that reveals nothing stored, and the real
    one is logged.
    """
    errors = getattr(error, "message_dict", None) or {"__all__": error.messages}
    hidden = False
    for field, messages in errors.items():
        if field in form.fields:
            form.add_error(field, messages)
        else:
            hidden = True
    if hidden:
        logger.info("CRM form submission refused: %s", errors)
        form.add_error(None, NOT_ACCEPTED)


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
    too_long = [
        name
        for name, values in request.POST.lists()
        if any(len(value) > MAX_FIELD_LENGTH for value in values)
    ]
    if too_long:
        form = _form_without(kind, request, resolved.config, too_long)
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
        _add_service_errors(form, error)
        return _show_again(request, placement, resolved, form)
    except ContactDeleted as error:
        # The visitor's details matched a contact put in the trash just now.
        logger.info("CRM form submission refused: %s", error.message)
        form.crm_error = NOT_ACCEPTED
        return _show_again(request, placement, resolved, form, status=error.status_code)
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
    try:
        confirm_signup(submission)
    except (CRMError, ValidationError) as error:
        # The contact was trashed since (or a group closed just now): the visitor
        # gets a page saying so, never the record's details.
        logger.info("Signup %s not confirmed: %s", submission.reference, error)
        return _problem(
            request,
            _(
                "This subscription can no longer be confirmed. If you still want our emails, "
                "please sign up again."
            ),
            status=409,
            title=_("Your subscription could not be confirmed"),
        )
    return render(request, "crm_forms/confirmed.html", {"submission": submission})
