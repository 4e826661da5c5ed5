"""Contributions in the back office: a "Contributions" menu.

Contributions are created (a simple donation, optionally already paid) and
changed only through ``crm_core.services.contributions``, or for money
through ``crm_payments.services.payments`` (recording an offline payment
settles the open pay-later payment too; a refund goes back through the
provider that took the money): recording an offline payment, marking a
payment failed, refunding, cancelling and noting that the receipt went out
are small forms of their own, each checking its own permission and offered
only while the contribution's status allows it.
There is no edit or delete: money records are corrected by refunding or
cancelling, which keeps the history. Recurring contributions are set up
with ``create_recurring`` and stopped with ``cancel_recurring``.
"""

from django import forms
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin import messages
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import Column
from wagtail.admin.widgets import AdminDateTimeInput
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views import snippets
from wagtail.snippets.views.snippets import InspectView, SnippetViewSetGroup

from crm_core.exceptions import CRMError
from crm_core.models import (
    Campaign,
    Contact,
    Contribution,
    ContributionStatus,
    FinancialType,
    Membership,
    ReceiptStatus,
    RecurringContribution,
    RecurringStatus,
)
from crm_core.money import format_money
from crm_core.selectors.contributions import contributions_with_details, recurring_contributions
from crm_core.services import contributions as service
from crm_payments.models import RefundStatus
from crm_payments.services import payments as payment_service

from .bulk_actions import ServiceBulkActionsIndexView
from .choosers import CRMSnippetViewSet, SafeSnippetChooser
from .columns import CalendarDateColumn
from .receipts import receipt_url
from .service_views import (
    ContactPrefillMixin,
    NoBulkActionsIndexView,
    ServiceActionView,
    ServiceCreateView,
)

SOURCE = "admin"


class AddAndViewOnlyPermissionPolicy(ModelPermissionPolicy):
    """Model permissions for adding and viewing; editing and deleting refused to all.

    Contributions and recurring contributions change only through their
    actions (payment, refund, cancel...), which check their own permissions.
    """

    def user_has_permission(self, user, action):
        if action not in ("add", "view"):
            return False
        return super().user_has_permission(user, action)

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, action) for action in actions)

    def users_with_any_permission(self, actions):
        return super().users_with_any_permission([a for a in actions if a in ("add", "view")])


def _money(contribution):
    return format_money(contribution.total_amount, contribution.currency)


# -- create: a simple donation ---------------------------------------------------------------


class DonationForm(WagtailAdminModelForm):
    """A one-line donation, pending unless "already paid" is ticked."""

    amount = forms.CharField(label=_("Amount"), max_length=40, help_text=_("Such as 25.00."))
    already_paid = forms.BooleanField(
        label=_("Already paid"),
        required=False,
        help_text=_("Tick for a cheque, cash or bank transfer received; give the method."),
    )
    received_at = forms.DateTimeField(
        label=_("Received"),
        required=False,
        widget=AdminDateTimeInput,
        help_text=_("When it was paid; blank means now."),
    )
    transaction_id = forms.CharField(
        label=_("Reference"),
        max_length=255,
        required=False,
        help_text=_("Cheque number or bank reference."),
    )

    class Meta:
        model = Contribution
        fields = ["contact", "currency", "financial_type", "campaign", "payment_method", "note"]
        # A chooser with search, not a list of every contact in the database.
        widgets = {"contact": SafeSnippetChooser(Contact)}


donation_edit_handler = ObjectList(
    [
        FieldPanel("contact"),
        FieldRowPanel([FieldPanel("amount"), FieldPanel("currency")]),
        FieldPanel("financial_type"),
        FieldPanel("campaign"),
        MultiFieldPanel(
            [
                FieldPanel("payment_method"),
                FieldPanel("already_paid"),
                FieldPanel("received_at"),
                FieldPanel("transaction_id"),
            ],
            heading=_("Payment"),
        ),
        FieldPanel("note"),
    ],
    base_form_class=DonationForm,
)


def _as_form_error(error, names):
    if isinstance(error, CRMError):
        return ValidationError(error.message)
    if hasattr(error, "error_dict"):
        return ValidationError({names.get(k, k): v for k, v in error.message_dict.items()})
    return error


class ContributionCreateView(ContactPrefillMixin, ServiceCreateView):
    def save_with_service(self):
        data = self.form.cleaned_data
        try:
            # Both or neither: a failed payment record must not leave a pending row behind.
            with transaction.atomic():
                contribution = service.create_pending(
                    data["contact"],
                    currency=data["currency"],
                    lines=[{"kind": "donation", "amount": data["amount"]}],
                    financial_type=data["financial_type"],
                    campaign=data["campaign"],
                    payment_method=data["payment_method"] or "",
                    note=data["note"] or "",
                    actor=self.request.user,
                    source=SOURCE,
                )
                if data["already_paid"]:
                    if not self.request.user.has_perm("crm_core.record_offline_payment"):
                        raise ValidationError(
                            {"already_paid": [gettext("You may not record payments.")]}
                        )
                    contribution = payment_service.record_offline_payment(
                        contribution,
                        payment_method=data["payment_method"] or "",
                        received_at=data["received_at"],
                        transaction_id=data["transaction_id"],
                        actor=self.request.user,
                        source=SOURCE,
                    )
        except (ValidationError, CRMError) as error:
            raise _as_form_error(error, {"lines": "amount"}) from None
        return contribution


# -- inspect and actions --------------------------------------------------------------------


class ContributionInspectView(InspectView):
    def get_object(self, queryset=None):
        return get_object_or_404(
            contributions_with_details().select_related(
                "contact", "financial_type", "campaign", "recurring"
            ),
            pk=unquote(str(self.pk)),
        )

    def get_fields(self):
        return [
            "contact",
            "total_amount",
            "currency",
            "status",
            "financial_type",
            "campaign",
            "received_at",
            "payment_method",
            "transaction_id",
            "refunded_amount",
            "receipt_status",
            "recurring",
            "source",
            "status_reason",
            "note",
            "created_at",
        ]

    # Amounts are stored with three decimal places for every currency;
    # staff read them in the currency's own: "30.00 GBP", "500 JPY".
    def get_total_amount_display_value(self):
        return format_money(self.object.total_amount, self.object.currency)

    def get_refunded_amount_display_value(self):
        return format_money(self.object.refunded_amount, self.object.currency)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        contribution, user = self.object, self.request.user
        actions = []
        if contribution.status in (ContributionStatus.PENDING, ContributionStatus.FAILED):
            if user.has_perm("crm_core.record_offline_payment"):
                actions.append(("record_payment", gettext("Record an offline payment")))
            if contribution.status == ContributionStatus.PENDING and user.has_perm(
                "crm_core.change_contribution"
            ):
                actions.append(("fail", gettext("Mark failed")))
            if user.has_perm("crm_core.change_contribution"):
                actions.append(("cancel", gettext("Cancel")))
        if contribution.status in (
            ContributionStatus.COMPLETED,
            ContributionStatus.PARTIALLY_REFUNDED,
        ) and user.has_perm("crm_core.refund_contribution"):
            actions.append(("refund", gettext("Refund")))
        if (
            contribution.status in service.PAID_STATUSES
            and contribution.receipt_status != ReceiptStatus.SENT
            and user.has_perm("crm_core.change_contribution")
        ):
            actions.append(("mark_receipt_sent", gettext("Mark receipt sent")))
        namespace = self.request.resolver_match.namespace
        context.update(
            {
                "contribution": contribution,
                "line_items": contribution.line_items.all(),
                "soft_credits": contribution.soft_credits.all(),
                "contribution_actions": [
                    (reverse(f"{namespace}:{name}", args=[contribution.pk]), label)
                    for name, label in actions
                ],
            }
        )
        if download := receipt_url(contribution, user):
            context["contribution_actions"].append((download, gettext("Download receipt (PDF)")))
        return context


class RecordPaymentForm(forms.Form):
    payment_method = forms.ChoiceField(
        label=_("Paid by"),
        choices=[(m.value, m.label) for m in service.OFFLINE_PAYMENT_METHODS],
    )
    received_at = forms.DateTimeField(
        label=_("Received"),
        required=False,
        widget=AdminDateTimeInput,
        help_text=_("Blank means now."),
    )
    transaction_id = forms.CharField(
        label=_("Reference"),
        max_length=255,
        required=False,
        help_text=_("Cheque number or bank reference."),
    )


class RefundForm(forms.Form):
    amount = forms.CharField(
        label=_("Amount"),
        max_length=40,
        required=False,
        help_text=_("Leave blank to refund everything not yet refunded."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255)


class ContributionActionView(ServiceActionView):
    """An action on a contribution; back to its page afterwards."""

    model = Contribution

    def get_queryset(self):
        return contributions_with_details()

    def get_success_url(self):
        namespace = self.request.resolver_match.namespace
        return reverse(f"{namespace}:inspect", args=[self.object.pk])


class RecordPaymentView(ContributionActionView):
    form_class = RecordPaymentForm
    permission = "crm_core.record_offline_payment"
    page_title = _("Record an offline payment")
    submit_button_label = _("Record payment")
    success_message = _("Payment recorded.")

    def call_service(self, data):
        # crm_payments' service also settles the contribution's open pay-later payment.
        payment_service.record_offline_payment(
            self.object, actor=self.request.user, source=SOURCE, **data
        )


class RefundView(ContributionActionView):
    form_class = RefundForm
    permission = "crm_core.refund_contribution"
    page_title = _("Refund")
    submit_button_label = _("Refund")
    success_message = _("Refund recorded.")

    def call_service(self, data):
        # The one refund service: the money goes back through the provider
        # that took it (a card payment to the card); a payment made offline
        # is recorded as refunded by hand. A provider's refusal (ProviderError)
        # is shown above the form and changes nothing.
        refund = payment_service.refund_contribution(
            self.object,
            amount=data["amount"] or None,
            reason=data["reason"],
            actor=self.request.user,
            source=SOURCE,
        )
        if refund.status == RefundStatus.PENDING:
            self.success_message = gettext(
                "Refund requested from the payment provider; the contribution changes "
                "when the provider confirms it."
            )


class CancelView(ContributionActionView):
    form_class = ReasonForm
    permission = "crm_core.change_contribution"
    page_title = _("Cancel contribution")
    submit_button_label = _("Cancel contribution")
    success_message = _("Contribution cancelled.")

    def call_service(self, data):
        service.cancel(self.object, actor=self.request.user, source=SOURCE, **data)


class FailView(ContributionActionView):
    form_class = RequiredReasonForm
    permission = "crm_core.change_contribution"
    page_title = _("Mark payment failed")
    submit_button_label = _("Mark failed")
    success_message = _("Contribution marked failed.")

    def call_service(self, data):
        service.fail(self.object, actor=self.request.user, source=SOURCE, **data)


class ConfirmForm(forms.Form):
    """No questions: the page asks for confirmation and the button answers it."""


class MarkReceiptSentView(ContributionActionView):
    form_class = ConfirmForm
    permission = "crm_core.change_contribution"
    page_title = _("Mark receipt sent")
    submit_button_label = _("Mark receipt sent")
    success_message = _("Receipt marked as sent.")

    def call_service(self, data):
        service.mark_receipt_sent(self.object, actor=self.request.user, source=SOURCE)


class CancelRecurringView(ContributionActionView):
    form_class = RequiredReasonForm
    model = RecurringContribution
    permission = "crm_core.change_recurringcontribution"
    page_title = _("Cancel recurring contribution")
    submit_button_label = _("Cancel recurring contribution")
    success_message = _("Recurring contribution cancelled.")

    def get_queryset(self):
        return recurring_contributions()

    def call_service(self, data):
        service.cancel_recurring(self.object, actor=self.request.user, source=SOURCE, **data)


# -- viewsets -------------------------------------------------------------------------------


class ContributionViewSet(CRMSnippetViewSet):
    model = Contribution
    ordering = "-received_at"
    icon = "form"
    menu_label = _("Contributions")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = ServiceBulkActionsIndexView  # "Resend receipt"
    add_view_class = ContributionCreateView
    inspect_view_class = ContributionInspectView
    inspect_template_name = "crm_wagtail/contribution/inspect.html"
    edit_handler = donation_edit_handler
    list_filter = ["status", "currency", "financial_type", "campaign", "payment_method"]
    search_fields = ["contact__display_name", "transaction_id"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "contact",  # the title column: links to the record and carries its row menu
        Column("total", label=_("Total"), accessor=_money),
        Column("status", label=_("Status"), accessor="get_status_display"),
        CalendarDateColumn("received_at", label=_("Received")),
        Column("financial_type", label=_("Fund"), accessor="financial_type"),
        Column("campaign", label=_("Campaign"), accessor="campaign"),
    ]

    def get_queryset(self, request):
        return Contribution.objects.filter(contact__is_deleted=False).select_related(
            "contact", "financial_type", "campaign"
        )

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("record-payment/<str:pk>/", RecordPaymentView.as_view(), name="record_payment"),
            path("refund/<str:pk>/", RefundView.as_view(), name="refund"),
            path("cancel/<str:pk>/", CancelView.as_view(), name="cancel"),
            path("fail/<str:pk>/", FailView.as_view(), name="fail"),
            path(
                "mark-receipt-sent/<str:pk>/",
                MarkReceiptSentView.as_view(),
                name="mark_receipt_sent",
            ),
        ]


class RecurringContributionForm(WagtailAdminModelForm):
    """A standing order entered by staff (a bank standing order, a pledge).

    The amount and currency are read by ``create_recurring``, which says
    what is wrong next to the field; the model does not check them twice.
    """

    amount = forms.CharField(label=_("Amount"), max_length=40, help_text=_("Such as 10.00."))

    class Meta:
        model = RecurringContribution
        fields = [
            "contact",
            "currency",
            "frequency_unit",
            "frequency_interval",
            "installments",
            "financial_type",
            "campaign",
            "membership",
            "start_date",
            "payment_method",
        ]
        widgets = {
            "contact": SafeSnippetChooser(Contact),
            "membership": SafeSnippetChooser(Membership),
        }

    def _get_validation_exclusions(self):
        return {*super()._get_validation_exclusions(), "amount", "currency"}


recurring_edit_handler = ObjectList(
    [
        FieldPanel("contact"),
        FieldRowPanel([FieldPanel("amount"), FieldPanel("currency")]),
        FieldRowPanel([FieldPanel("frequency_interval"), FieldPanel("frequency_unit")]),
        FieldRowPanel([FieldPanel("start_date"), FieldPanel("installments")]),
        FieldPanel("financial_type"),
        FieldPanel("campaign"),
        FieldPanel("membership"),
        FieldPanel("payment_method"),
    ],
    base_form_class=RecurringContributionForm,
)


class RecurringCreateView(ServiceCreateView):
    def save_with_service(self):
        data = self.form.cleaned_data
        try:
            return service.create_recurring(
                data["contact"],
                amount=data["amount"],
                currency=data["currency"],
                frequency_unit=data["frequency_unit"],
                frequency_interval=data["frequency_interval"],
                financial_type=data["financial_type"],
                campaign=data["campaign"],
                membership=data["membership"],
                installments=data["installments"],
                start_date=data["start_date"],
                payment_method=data["payment_method"] or "",
                actor=self.request.user,
                source=SOURCE,
            )
        except CRMError as error:
            raise ValidationError(error.message) from None


class RecurringInspectView(InspectView):
    def get_amount_display_value(self):
        return format_money(self.object.amount, self.object.currency)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        recurring = self.object
        context["contribution_actions"] = []
        if recurring.status not in (
            RecurringStatus.CANCELLED,
            RecurringStatus.COMPLETED,
        ) and self.request.user.has_perm("crm_core.change_recurringcontribution"):
            namespace = self.request.resolver_match.namespace
            context["contribution_actions"] = [
                (reverse(f"{namespace}:cancel", args=[recurring.pk]), gettext("Cancel"))
            ]
        return context


class RecurringContributionViewSet(CRMSnippetViewSet):
    """Set up by staff here (or by payment providers, forms and the API); cancelled here."""

    model = RecurringContribution
    icon = "repeat"
    menu_label = _("Recurring contributions")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    add_view_class = RecurringCreateView
    inspect_view_class = RecurringInspectView
    inspect_template_name = "crm_wagtail/contribution/inspect.html"
    edit_handler = recurring_edit_handler
    list_filter = ["status", "frequency_unit", "currency"]
    search_fields = ["contact__display_name", "processor_id"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "contact",  # the title column: links to the record and carries its row menu
        Column("amount", label=_("Amount"), accessor=lambda r: format_money(r.amount, r.currency)),
        Column("frequency", label=_("Every"), accessor="get_frequency_unit_display"),
        Column("status", label=_("Status"), accessor="get_status_display"),
        CalendarDateColumn("next_date", label=_("Next payment")),
    ]

    def get_queryset(self, request):
        return recurring_contributions().select_related("contact")

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("cancel/<str:pk>/", CancelRecurringView.as_view(), name="cancel"),
        ]


class ProtectedDeleteView(snippets.DeleteView):
    """Deleting a fund or campaign that money refers to is refused with a message."""

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except ProtectedError:
            messages.error(
                self.request,
                gettext("%(name)s is in use; deactivate it instead of deleting it.")
                % {"name": self.object},
            )
            return redirect(self.get_success_url())


class FinancialTypeViewSet(CRMSnippetViewSet):
    model = FinancialType
    icon = "tag"
    menu_label = _("Funds")
    add_to_reference_index = False
    delete_view_class = ProtectedDeleteView
    list_display = ["name", "slug", "is_deductible", "is_active"]
    list_filter = ["is_active"]
    form_fields = ["name", "slug", "description", "is_deductible", "is_active"]


class CampaignViewSet(CRMSnippetViewSet):
    model = Campaign
    icon = "pick"
    menu_label = _("Campaigns")
    add_to_reference_index = False
    delete_view_class = ProtectedDeleteView
    search_fields = ["name"]
    search_backend_name = None
    list_display = ["name", "slug", "starts_on", "ends_on", "is_active"]
    list_filter = ["is_active"]
    form_fields = [
        "name",
        "slug",
        "description",
        "goal_amount",
        "currency",
        "starts_on",
        "ends_on",
        "is_active",
    ]


class ContributionsViewSetGroup(SnippetViewSetGroup):
    menu_label = _("Contributions")
    menu_icon = "form"
    menu_order = 170
    items = (
        ContributionViewSet,
        RecurringContributionViewSet,
        FinancialTypeViewSet,
        CampaignViewSet,
    )


def register():
    """Register this module's viewsets with the Wagtail admin."""
    register_permission_policy(Contribution, AddAndViewOnlyPermissionPolicy(Contribution))
    register_permission_policy(
        RecurringContribution, AddAndViewOnlyPermissionPolicy(RecurringContribution)
    )
    register_snippet(ContributionsViewSetGroup)
