"""Create, edit, delete and action views whose writes go through a CRM service.

Wagtail's generic views save the model form directly. These subclasses
hand the validated form to a service instead and turn the service's
``ValidationError`` (keyed by field) back into form errors, so staff see
what is wrong next to the field without losing what they typed.
"""

import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.generic import FormView
from wagtail.admin import messages
from wagtail.admin.ui.tables import BulkActionsCheckboxColumn
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.log_actions import log
from wagtail.snippets.views import snippets

from crm_core.exceptions import CRMError
from crm_core.models import Contact

from ..models import UsedActionToken

# Larger ids cannot be a row's id on any database we support (64-bit keys);
# looking one up would raise OverflowError on SQLite.
MAX_ID_DIGITS = 18
# The hidden field that makes a staff action form work once (UsedActionToken).
ONCE_FIELD = "action_token"


def add_service_errors(form, error):
    """Attach a service's ValidationError to ``form``, by field where the form has it."""
    if hasattr(error, "error_dict"):
        for name, messages in error.message_dict.items():
            field = name if name in form.fields else None
            if field is None and name != NON_FIELD_ERRORS:
                messages = [f"{name}: {message}" for message in messages]
            form.add_error(field, messages)
    else:
        form.add_error(None, error.messages)


class ServiceFormMixin:
    """For a create or edit view: ``save_with_service()`` replaces ``form.save()``."""

    log_action = None

    def save_with_service(self):
        raise NotImplementedError

    def save_instance(self):
        instance = self.save_with_service()
        # Keep Wagtail's own history and "last updated" information in step.
        log(instance=instance, action=self.log_action, user=self.request.user)
        return instance

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except ValidationError as error:
            # The service raised before writing; the transaction was rolled back.
            add_service_errors(form, error)
            self.produced_error_code = "validation_error"
            self.produced_error_message = self.get_error_message()
            return self.form_invalid(form)


def safe_next_url(request):
    """The ``?next=`` address of ``request`` if it stays on this site, else None."""
    url = request.GET.get("next", "")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def contact_from_query(request):
    """The live contact whose id is ``?contact=``; None for a missing, malformed,
    oversized, unknown or trashed id (a link is a hint, never a reason for a 500)."""
    value = request.GET.get("contact", "")
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS):
        return None
    return Contact.objects.filter(pk=int(value)).first()


class ContactPrefillMixin:
    """For a create view linked from a contact's summary.

    ``?contact=<pk>`` fills in the form's ``contact`` field, and ``?next=``
    (an address on this site only) is where staff land after saving: back on
    the summary. Both survive the POST, because the form posts to the same
    address. Staff can still choose another contact before saving.
    """

    prefill_field = "contact"

    @cached_property
    def prefill_contact(self):
        return contact_from_query(self.request)

    def get_initial(self):
        initial = super().get_initial()
        if self.prefill_contact is not None:
            initial[self.prefill_field] = self.prefill_contact.pk
        return initial

    def get_add_url(self):
        url = super().get_add_url()
        params = {}
        if self.prefill_contact is not None:
            params["contact"] = self.prefill_contact.pk
        if next_url := safe_next_url(self.request):
            params["next"] = next_url
        if not params:
            return url
        return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"

    def get_success_url(self):
        return safe_next_url(self.request) or super().get_success_url()


class ServiceCreateView(ServiceFormMixin, snippets.CreateView):
    log_action = "wagtail.create"


class ServiceEditView(ServiceFormMixin, snippets.EditView):
    log_action = "wagtail.edit"


class ServiceDeleteView(snippets.DeleteView):
    """``delete_with_service()`` replaces the model's delete()."""

    def delete_with_service(self):
        raise NotImplementedError

    def delete_action(self):
        self.delete_with_service()

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except ValidationError as error:
            messages.error(self.request, " ".join(error.messages))
            return redirect(self.get_success_url())


class NoBulkActionsIndexView(snippets.IndexView):
    """A listing without bulk-action checkboxes: Wagtail's bulk delete would
    bypass the services (and hard-delete soft-deletable rows)."""

    @cached_property
    def columns(self):
        return [c for c in super().columns if not isinstance(c, BulkActionsCheckboxColumn)]


class ServiceActionView(WagtailAdminTemplateMixin, FormView):
    """A small form that calls one service on one row, for staff holding ``permission``.

    Subclasses give ``form_class``, ``permission``, ``get_queryset()``,
    ``call_service(cleaned_data)`` and where to go afterwards
    (``get_success_url()``). A service's ``ValidationError`` lands next to the
    fields, a ``CRMError`` above the form; what staff typed is kept. Each form
    shown carries a one-time token, so a form sent twice acts once.
    """

    template_name = "crm_wagtail/service_action_form.html"
    permission = ""
    header_icon = "form"
    submit_button_label = _("Save")
    success_message = ""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.has_perm(self.permission):
            raise PermissionDenied
        try:
            self.object = get_object_or_404(self.get_queryset(), pk=unquote(str(kwargs["pk"])))
        except (ValueError, TypeError, OverflowError, ValidationError):
            # A mistyped or forged id in the address: not found, never a 500.
            raise Http404 from None
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        raise NotImplementedError

    def call_service(self, data):
        raise NotImplementedError

    def get_page_subtitle(self):
        return str(self.object)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            action_url=self.request.get_full_path(),  # keeps ?next=
            submit_button_label=self.submit_button_label,
            submit_button_active_label=self.submit_button_label,
            object=self.object,
            # The generic form template prints {{ media }}: without it the
            # form's widgets (choosers, date pickers) have no script.
            media=context["form"].media,
        )
        return context

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        # One token per form shown: the action is carried out once per token.
        form.fields[ONCE_FIELD] = forms.UUIDField(
            widget=forms.HiddenInput, initial=uuid.uuid4, required=False
        )
        return form

    def form_valid(self, form):
        token = form.cleaned_data.pop(ONCE_FIELD, None)
        # Claimed before the action and committed at once (some actions call
        # a payment provider and must not run inside a transaction): a second
        # post, even one sent while the first is still running, stops here.
        if token is not None and not _claim(token):
            messages.warning(
                self.request, _("This form was sent already; it was not carried out again.")
            )
            return redirect(self.get_success_url())
        try:
            self.call_service(form.cleaned_data)
        except (ValidationError, CRMError) as error:
            # Refused: the form comes back to be corrected and sent again.
            if token is not None:
                UsedActionToken.objects.filter(token=token).delete()
            if isinstance(error, ValidationError):
                add_service_errors(form, error)
            else:
                form.add_error(None, error.message)
            return self.form_invalid(form)
        messages.success(self.request, self.success_message)
        return redirect(self.get_success_url())


def _claim(token):
    """Record ``token`` as used; False when it was used already."""
    try:
        with transaction.atomic():
            UsedActionToken.objects.create(token=token)
    except IntegrityError:
        return False
    return True
