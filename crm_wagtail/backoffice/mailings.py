"""Mailings in the back office: a "Mailings" menu with mailings, message templates
and the wording of transactional messages (receipts, confirmations, reminders).

A mailing is edited while it is a draft. Its page (inspect view) shows the
progress and offers the actions staff may take: preview it for a contact,
send a test to an address, "Send now" (``crm_core.send_mailing``; builds the
recipients through ``crm_core.services.mailings`` and enqueues
``send_mailing_task``) and cancel.
"""

from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin import messages
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.ui.tables import Column, DateColumn
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views import snippets
from wagtail.snippets.views.snippets import InspectView, SnippetViewSetGroup

from crm_core.exceptions import CRMError
from crm_core.models import (
    Contact,
    Mailing,
    MailingStatus,
    MessageTemplate,
    MessageWording,
    RecipientStatus,
)
from crm_core.services import mailings as service
from crm_core.services.messages import (
    TOKENS,
    check_wording,
    default_wording,
    enqueue_after_commit,
    render_message,
    sample_context,
)
from crm_core.tasks import send_mailing_task

from .choosers import CRMSnippetViewSet, SafeSnippetChooser
from .permissions import ChangeOnlyPermissionPolicy
from .service_views import NoBulkActionsIndexView, ServiceActionView, ServiceDeleteView

MAILING_FIELDS = [
    "name",
    "template",
    "subject",
    "body_html",
    "body_text",
    "from_email",
    "reply_to",
    "include_groups",
    "include_smart_groups",
    "exclude_groups",
    "exclude_smart_groups",
    "consent_purpose",
]


# -- message templates ----------------------------------------------------------------------


class MessageTemplateDeleteView(ServiceDeleteView):
    def delete_with_service(self):
        try:
            self.object.delete()
        except ProtectedError:
            raise ValidationError(
                gettext("Mailings use this template; it cannot be deleted.")
            ) from None


class MessageTemplateViewSet(CRMSnippetViewSet):
    model = MessageTemplate
    delete_view_class = MessageTemplateDeleteView
    icon = "doc-full"
    menu_label = _("Message templates")
    add_to_reference_index = False
    index_view_class = NoBulkActionsIndexView
    search_fields = ["name", "subject"]
    search_backend_name = None
    list_display = ["name", "subject", DateColumn("updated_at", label=_("Updated"))]
    form_fields = ["name", "subject", "body_html", "body_text"]


# -- wording of transactional messages ------------------------------------------------------


class MessageWordingForm(WagtailAdminModelForm):
    """Edit a message's wording, starting from the shipped text.

    The form opens with the shipped wording when none was saved; saving it
    unchanged stores nothing (blank), so the message stays translated. The
    text is checked by rendering it with sample values.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kind = self.instance.kind
        self.defaults = default_wording(kind)
        if not self.instance.is_custom:
            self.initial["subject"], self.initial["body"] = self.defaults
        tokens = "; ".join(f"{{{{ {name} }}}}: {text}" for name, text in TOKENS[kind])
        self.fields["body"].help_text = gettext("Values you can use: %(tokens)s.") % {
            "tokens": tokens
        }
        self.fields["subject"].widget.attrs["maxlength"] = 2000

    def clean(self):
        data = super().clean()
        subject, body = data.get("subject") or "", data.get("body") or ""
        for field, value, default in (
            ("subject", subject, self.defaults[0]),
            ("body", body, self.defaults[1]),
        ):
            if value.strip() == default.strip():
                data[field] = ""
        if len(data.get("subject") or "") > 255:
            self.add_error("subject", gettext("Keep the subject under 255 characters."))
        for field, error in check_wording(self.instance.kind, subject, body).items():
            self.add_error(field, error)
        return data


def _wording_state(wording):
    return gettext("Edited") if wording.is_custom else gettext("Shipped wording")


class MessageWordingInspectView(InspectView):
    """The message as a sample contact would get it."""

    def get_fields_context(self):
        subject, body = render_message(self.object.kind, sample_context(self.object.kind))
        return [
            {"label": gettext("Message"), "value": self.object.get_kind_display()},
            {"label": gettext("Wording"), "value": _wording_state(self.object)},
            {"label": gettext("Sample subject"), "value": subject},
            {"label": gettext("Sample text"), "value": body},
        ]


class MessageWordingViewSet(CRMSnippetViewSet):
    model = MessageWording
    icon = "edit"
    menu_label = _("Message wording")
    add_to_reference_index = False
    index_view_class = NoBulkActionsIndexView
    inspect_view_enabled = True
    inspect_view_class = MessageWordingInspectView
    search_fields = None
    list_display = [
        "kind",
        Column("state", label=_("Wording"), accessor=_wording_state),
        DateColumn("updated_at", label=_("Updated")),
    ]
    form_fields = ["subject", "body"]

    def get_form_class(self, for_update=False):
        return type(
            "MessageWordingAdminForm",
            (MessageWordingForm,),
            {"Meta": type("Meta", (), {"model": MessageWording, "fields": ["subject", "body"]})},
        )


# -- mailings -------------------------------------------------------------------------------


def _inspect_url(mailing):
    return reverse("wagtailsnippets_crm_core_mailing:inspect", args=[mailing.pk])


class MailingCreateView(snippets.CreateView):
    def save_instance(self):
        self.form.instance.created_by = self.request.user
        return super().save_instance()

    def get_success_url(self):
        # The mailing's page, where staff preview, test and send it.
        return _inspect_url(self.object)


class DraftOnlyMixin:
    """Edit and delete a mailing only while it is a draft (or scheduled)."""

    def dispatch(self, request, *args, **kwargs):
        mailing = Mailing.objects.filter(pk=unquote(str(kwargs.get("pk", "")))).first()
        if mailing is not None and not mailing.is_editable:
            messages.error(request, gettext("A mailing that was sent cannot be changed."))
            return redirect(_inspect_url(mailing))
        return super().dispatch(request, *args, **kwargs)


class MailingEditView(DraftOnlyMixin, snippets.EditView):
    def get_success_url(self):
        return _inspect_url(self.object)


class MailingDeleteView(DraftOnlyMixin, snippets.DeleteView):
    pass


class MailingInspectView(InspectView):
    def get_object(self, queryset=None):
        return get_object_or_404(
            Mailing.objects.select_related("template", "created_by"), pk=unquote(str(self.pk))
        )

    def get_fields(self):
        return [
            "status",
            "recipients_count",
            "sent_count",
            "failed_count",
            "skipped_count",
            "started_at",
            "finished_at",
            "template",
            "subject",
            "from_email",
            "include_groups",
            "include_smart_groups",
            "exclude_groups",
            "exclude_smart_groups",
            "consent_purpose",
            "created_by",
            "created_at",
        ]

    def get_include_groups_display_value(self):
        return ", ".join(str(g) for g in self.object.include_groups.all()) or "—"

    def get_exclude_groups_display_value(self):
        return ", ".join(str(g) for g in self.object.exclude_groups.all()) or "—"

    def get_include_smart_groups_display_value(self):
        return ", ".join(str(g) for g in self.object.include_smart_groups.all()) or "—"

    def get_exclude_smart_groups_display_value(self):
        return ", ".join(str(g) for g in self.object.exclude_smart_groups.all()) or "—"

    def get_subject_display_value(self):
        return self.object.effective_subject

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        mailing, user = self.object, self.request.user
        actions = [("preview", gettext("Preview"))]
        if user.has_perm("crm_core.change_mailing"):
            actions.append(("send_test", gettext("Send a test")))
        if mailing.is_editable and user.has_perm("crm_core.send_mailing"):
            actions.append(("send_now", gettext("Send now")))
        if mailing.status in (MailingStatus.SENDING, MailingStatus.SCHEDULED) and user.has_perm(
            "crm_core.send_mailing"
        ):
            actions.append(("cancel", gettext("Cancel sending")))
        namespace = self.request.resolver_match.namespace
        pending = mailing.recipients.filter(
            status__in=(RecipientStatus.PENDING, RecipientStatus.SENDING)
        ).count()
        done = mailing.sent_count + mailing.failed_count
        context.update(
            mailing_actions=[
                (reverse(f"{namespace}:{name}", args=[mailing.pk]), label)
                for name, label in actions
            ],
            mailing_pending=pending,
            mailing_percent=round(100 * done / mailing.recipients_count)
            if mailing.recipients_count
            else 0,
            mailing_failures=mailing.recipients.filter(status=RecipientStatus.FAILED)[:50],
        )
        return context


class PreviewForm(forms.Form):
    contact = forms.ModelChoiceField(
        label=_("Contact"), queryset=Contact.objects.all(), widget=SafeSnippetChooser(Contact)
    )


class SendTestForm(PreviewForm):
    to = forms.EmailField(label=_("Send to"))

    field_order = ["to", "contact"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact"].help_text = _("Whose name and links the test shows.")


class ConfirmForm(forms.Form):
    pass


class MailingActionView(ServiceActionView):
    header_icon = "mail"

    def get_queryset(self):
        return Mailing.objects.select_related("template")

    def get_page_subtitle(self):
        return str(self.object)

    def get_success_url(self):
        return _inspect_url(self.object)


class MailingPreviewView(MailingActionView):
    page_title = _("Preview mailing")
    permission = "crm_core.view_mailing"
    form_class = PreviewForm
    submit_button_label = _("Preview")
    template_name = "crm_wagtail/mailing/preview.html"

    def form_valid(self, form):
        try:
            rendered = service.render_for_contact(self.object, form.cleaned_data["contact"])
        except CRMError as error:
            form.add_error(None, error.message)
            return self.form_invalid(form)
        return self.render_to_response(self.get_context_data(form=form, rendered=rendered))


class MailingSendTestView(MailingActionView):
    page_title = _("Send a test")
    permission = "crm_core.change_mailing"
    form_class = SendTestForm
    submit_button_label = _("Send the test")

    def call_service(self, data):
        service.send_test(self.object, data["contact"], data["to"])
        self.success_message = gettext("Test sent to %(to)s.") % {"to": data["to"]}


class MailingSendNowView(MailingActionView):
    page_title = _("Send now")
    permission = "crm_core.send_mailing"
    form_class = ConfirmForm
    submit_button_label = _("Send to everyone now")

    def get_page_subtitle(self):
        count = service.mailing_contacts(self.object).count()
        return gettext("%(mailing)s: about %(count)s recipients") % {
            "mailing": self.object,
            "count": count,
        }

    def call_service(self, data):
        pending = service.send_mailing(self.object, actor=self.request.user)
        enqueue_after_commit(send_mailing_task, self.object.pk)
        self.success_message = gettext("Sending to %(count)s recipients.") % {"count": pending}


class MailingCancelView(MailingActionView):
    page_title = _("Cancel sending")
    permission = "crm_core.send_mailing"
    form_class = ConfirmForm
    submit_button_label = _("Cancel sending")
    success_message = _("Mailing cancelled: nobody else will receive it.")

    def call_service(self, data):
        service.cancel_mailing(self.object)


class MailingViewSet(CRMSnippetViewSet):
    model = Mailing
    icon = "mail"
    menu_label = _("Mailings")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    add_view_class = MailingCreateView
    edit_view_class = MailingEditView
    delete_view_class = MailingDeleteView
    inspect_view_class = MailingInspectView
    inspect_template_name = "crm_wagtail/mailing/inspect.html"
    list_filter = ["status"]
    search_fields = ["name"]
    search_backend_name = None
    list_display = [
        "name",
        Column("status", label=_("Status"), accessor="get_status_display"),
        Column("recipients_count", label=_("Recipients")),
        Column("sent_count", label=_("Sent")),
        DateColumn("created_at", label=_("Created")),
    ]
    form_fields = MAILING_FIELDS

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("preview/<str:pk>/", MailingPreviewView.as_view(), name="preview"),
            path("send-test/<str:pk>/", MailingSendTestView.as_view(), name="send_test"),
            path("send-now/<str:pk>/", MailingSendNowView.as_view(), name="send_now"),
            path("cancel/<str:pk>/", MailingCancelView.as_view(), name="cancel"),
        ]


class MailingsViewSetGroup(SnippetViewSetGroup):
    menu_label = _("Mailings")
    menu_icon = "mail"
    menu_order = 175
    items = (MailingViewSet, MessageTemplateViewSet, MessageWordingViewSet)


def register():
    """Register this module's viewsets with the Wagtail admin."""
    register_permission_policy(MessageWording, ChangeOnlyPermissionPolicy(MessageWording))
    register_snippet(MailingsViewSetGroup)
