"""PDF downloads for staff: a contribution's receipt and a contact's giving statement.

``/admin/crm/receipts/<contribution id>/pdf/`` and
``/admin/crm/statements/<contact id>/<year>/pdf/`` answer with the PDF of
``crm_core.pdf`` as an attachment. Both need ``crm_core.view_contribution``;
without it the answer is a plain 403 (not Wagtail's redirect to the
dashboard), since a download link has no page to come back to. A
contribution that was never paid has no receipt: its page says so.
"""

from django.http import Http404, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from wagtail import hooks
from wagtail.admin import messages

from crm_core.models import Contact, Contribution
from crm_core.pdf import ReceiptNotAvailable, annual_statement_pdf, receipt_pdf
from crm_core.selectors.statements import year_bounds
from crm_core.services.contributions import PAID_STATUSES

PERMISSION = "crm_core.view_contribution"
RECEIPT_URL_NAME = "crm_contribution_receipt_pdf"
STATEMENT_URL_NAME = "crm_giving_statement_pdf"


def receipt_url(contribution, user):
    """The receipt download of a paid contribution, for a user who may see it; else None."""
    if contribution.status in PAID_STATUSES and user.has_perm(PERMISSION):
        return reverse(RECEIPT_URL_NAME, args=[contribution.pk])
    return None


def statement_links(contact, user, *, today=None):
    """``(url, label)`` for this year's and last year's statements; [] without permission."""
    if not user.has_perm(PERMISSION):
        return []
    year = (today or timezone.localdate()).year
    return [
        (
            reverse(STATEMENT_URL_NAME, args=[contact.pk, y]),
            _("Giving statement %(year)s (PDF)") % {"year": y},
        )
        for y in (year, year - 1)
    ]


def _forbidden():
    return HttpResponseForbidden(_("You do not have permission to see contributions."))


def _pdf(data, filename):
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    # Donors' names and money: not for shared caches, nor kept on disk.
    patch_cache_control(response, private=True, no_store=True)
    return response


@require_safe
def receipt_view(request, pk):
    if not request.user.has_perm(PERMISSION):
        return _forbidden()
    contribution = get_object_or_404(
        Contribution.objects.filter(contact__is_deleted=False).select_related(
            "contact", "financial_type"
        ),
        pk=pk,
    )
    try:
        data = receipt_pdf(contribution)
    except ReceiptNotAvailable as error:
        messages.error(request, error.message)
        return redirect("wagtailsnippets_crm_core_contribution:inspect", contribution.pk)
    return _pdf(data, f"receipt-{contribution.pk}.pdf")


@require_safe
def statement_view(request, contact_pk, year):
    if not request.user.has_perm(PERMISSION):
        return _forbidden()
    try:
        year_bounds(year)
    except ValueError:
        raise Http404(_("There is no year %(year)s.") % {"year": year}) from None
    contact = get_object_or_404(Contact.objects.prefetch_related("addresses"), pk=contact_pk)
    return _pdf(annual_statement_pdf(contact, year), f"giving-statement-{contact.pk}-{year}.pdf")


def receipt_urls():
    return [
        path("crm/receipts/<int:pk>/pdf/", receipt_view, name=RECEIPT_URL_NAME),
        path(
            "crm/statements/<int:contact_pk>/<int:year>/pdf/",
            statement_view,
            name=STATEMENT_URL_NAME,
        ),
    ]


def register():
    """Register the receipt and statement downloads with the Wagtail admin."""
    hooks.register("register_admin_urls", receipt_urls)
