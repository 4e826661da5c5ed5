"""Payments in the back office: a "Payments" menu, read only but for lifting blocks.

Payments, refunds, disputes and webhook events are written by the payment
services and the provider's webhooks only, so staff see them here (listing,
filters, search by the provider's ids, an inspect page) and never add, edit
or delete them. Money is given back from the contribution's page (its
"Refund" action calls ``crm_payments.services.payments.refund_contribution``).
Payment blocks are the card-testing defence made visible: staff holding
``crm_payments.change_paymentblock`` may lift one before it expires.
"""

import django_filters
from django import forms
from django.db.models import Q
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.ui.tables import Column, TitleColumn
from wagtail.admin.widgets.button import ListingButton
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import InspectView, SnippetViewSetGroup

from crm_core.money import format_money
from crm_payments.models import Dispute, Payment, PaymentBlock, Refund, WebhookEvent
from crm_payments.providers import all_providers
from crm_payments.services import velocity

from .choosers import CRMSnippetViewSet
from .columns import CalendarDateColumn
from .permissions import ReadOnlyPermissionPolicy
from .service_views import NoBulkActionsIndexView, ServiceActionView

CONTRIBUTION_INSPECT = "wagtailsnippets_crm_core_contribution:inspect"
PAYMENT_INSPECT = "wagtailsnippets_crm_payments_payment:inspect"
LIFT_PERMISSION = "crm_payments.change_paymentblock"


def _money(row):
    return format_money(row.amount, row.currency)


def _contribution_url(row):
    return reverse(CONTRIBUTION_INSPECT, args=[row.contribution_id])


def _link(url, text):
    return format_html('<a href="{}">{}</a>', url, text)


def _provider_choices():
    return [(provider.identifier, provider.verbose_name) for provider in all_providers()]


class ProviderFilter(django_filters.ChoiceFilter):
    """The providers a site offers, read when the listing is drawn (settings may change)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", _provider_choices)
        kwargs.setdefault("widget", forms.RadioSelect)
        kwargs.setdefault("empty_label", _("All"))
        super().__init__(*args, **kwargs)


# -- payments -----------------------------------------------------------------------------------


class PaymentFilterSet(WagtailFilterSet):
    provider = ProviderFilter(label=_("Provider"))
    needs_attention = django_filters.BooleanFilter(
        label=_("Needs attention"), method="filter_needs_attention"
    )

    class Meta:
        model = Payment
        fields = ["status", "provider", "currency"]

    def filter_needs_attention(self, queryset, name, value):
        if value is None:
            return queryset
        flagged = ~Q(needs_attention="")
        return queryset.filter(flagged) if value else queryset.exclude(flagged)


class ContributionLinkMixin:
    """An inspect view whose "contribution" field links back to the contribution's page."""

    def get_contribution_display_value(self):
        return _link(_contribution_url(self.object), self.object.contribution)

    def get_amount_display_value(self):
        return _money(self.object)


class PaymentInspectView(ContributionLinkMixin, InspectView):
    def get_fields(self):
        return [
            "contribution",
            "provider",
            "status",
            "amount",
            "currency",
            "provider_id",
            "payment_intent_id",
            "charge_id",
            "email",
            "client_ip",
            "failure_reason",
            "needs_attention",
            "reference",
            "created_at",
            "completed_at",
            "updated_at",
        ]


class PaymentViewSet(CRMSnippetViewSet):
    model = Payment
    icon = "form"
    menu_label = _("Payments")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    inspect_view_class = PaymentInspectView
    filterset_class = PaymentFilterSet
    search_fields = [
        "provider_id",
        "payment_intent_id",
        "charge_id",
        "email",
        "contribution__contact__display_name",
    ]
    search_backend_name = None
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    list_display = [
        "__str__",  # the title column: links to the payment's page
        TitleColumn(
            "contribution",
            label=_("Contribution"),
            accessor="contribution",
            get_url=_contribution_url,
        ),
        Column("contact", label=_("Contact"), accessor="contribution.contact"),
        Column("amount", label=_("Amount"), accessor=_money),
        Column("provider", label=_("Provider")),
        Column("status", label=_("Status"), accessor="get_status_display"),
        Column("needs_attention", label=_("Needs attention")),
        CalendarDateColumn("created_at", label=_("Started")),
    ]

    def get_queryset(self, request):
        return Payment.objects.select_related("contribution__contact")


# -- refunds and disputes -----------------------------------------------------------------------


class RefundFilterSet(WagtailFilterSet):
    provider = ProviderFilter(label=_("Provider"))

    class Meta:
        model = Refund
        fields = ["status", "provider"]


class RefundInspectView(ContributionLinkMixin, InspectView):
    def get_payment_display_value(self):
        if self.object.payment_id is None:
            return gettext("None (paid without a provider)")
        return _link(reverse(PAYMENT_INSPECT, args=[self.object.payment_id]), self.object.payment)

    def get_fields(self):
        return [
            "contribution",
            "payment",
            "provider",
            "status",
            "amount",
            "currency",
            "reason",
            "failure_reason",
            "provider_id",
            "applied_at",
            "created_by",
            "reference",
            "created_at",
            "updated_at",
        ]


class RefundViewSet(CRMSnippetViewSet):
    model = Refund
    icon = "undo"
    menu_label = _("Refunds")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    inspect_view_class = RefundInspectView
    filterset_class = RefundFilterSet
    search_fields = ["provider_id", "reason", "contribution__contact__display_name"]
    search_backend_name = None
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    list_display = [
        "__str__",
        TitleColumn(
            "contribution",
            label=_("Contribution"),
            accessor="contribution",
            get_url=_contribution_url,
        ),
        Column("contact", label=_("Contact"), accessor="contribution.contact"),
        Column("amount", label=_("Amount"), accessor=_money),
        Column("provider", label=_("Provider")),
        Column("status", label=_("Status"), accessor="get_status_display"),
        Column("reason", label=_("Reason")),
        CalendarDateColumn("created_at", label=_("Requested")),
    ]

    def get_queryset(self, request):
        return Refund.objects.select_related("contribution__contact")


class DisputeInspectView(InspectView):
    def get_payment_display_value(self):
        return _link(reverse(PAYMENT_INSPECT, args=[self.object.payment_id]), self.object.payment)

    def get_amount_display_value(self):
        return _money(self.object)

    def get_fields(self):
        return ["payment", "provider_id", "status", "reason", "amount", "created_at", "updated_at"]


class DisputeViewSet(CRMSnippetViewSet):
    model = Dispute
    icon = "warning"
    menu_label = _("Disputes")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    inspect_view_class = DisputeInspectView
    list_filter = ["status", "reason"]
    search_fields = ["provider_id", "payment__payment_intent_id", "payment__charge_id"]
    search_backend_name = None
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    list_display = [
        "provider_id",
        Column("contact", label=_("Contact"), accessor="payment.contribution.contact"),
        Column("amount", label=_("Amount"), accessor=_money),
        Column("status", label=_("Status")),
        Column("reason", label=_("Reason")),
        CalendarDateColumn("created_at", label=_("Opened")),
    ]

    def get_queryset(self, request):
        return Dispute.objects.select_related("payment__contribution__contact")


# -- webhook events -----------------------------------------------------------------------------


class WebhookEventFilterSet(WagtailFilterSet):
    provider = ProviderFilter(label=_("Provider"))
    event_type = django_filters.CharFilter(label=_("Type"), lookup_expr="istartswith")

    class Meta:
        model = WebhookEvent
        fields = ["status", "provider", "event_type"]


class WebhookEventViewSet(CRMSnippetViewSet):
    model = WebhookEvent
    icon = "resubmit"
    menu_label = _("Webhook events")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    filterset_class = WebhookEventFilterSet
    search_fields = ["event_id", "object_id", "event_type"]
    search_backend_name = None
    list_per_page = 50
    ordering = ["-received_at", "-id"]
    inspect_view_fields = [
        "provider",
        "event_id",
        "event_type",
        "object_id",
        "livemode",
        "status",
        "attempts",
        "error",
        "received_at",
        "processed_at",
    ]
    list_display = [
        "event_type",
        Column("event_id", label=_("Event id")),
        Column("object_id", label=_("Object")),
        Column("status", label=_("Status"), accessor="get_status_display"),
        Column("attempts", label=_("Deliveries")),
        CalendarDateColumn("received_at", label=_("Received")),
    ]


# -- payment blocks -----------------------------------------------------------------------------


class PaymentBlockFilterSet(WagtailFilterSet):
    active = django_filters.BooleanFilter(label=_("In force"), method="filter_active")

    class Meta:
        model = PaymentBlock
        fields = ["kind", "active"]

    def filter_active(self, queryset, name, value):
        if value is None:
            return queryset
        in_force = Q(lifted_at=None, expires_at__gt=timezone.now())
        return queryset.filter(in_force) if value else queryset.exclude(in_force)


class ConfirmForm(forms.Form):
    """No questions: the page asks for confirmation and the button answers it."""


class LiftBlockView(ServiceActionView):
    form_class = ConfirmForm
    permission = LIFT_PERMISSION
    page_title = _("Lift block")
    header_icon = "lock-open"
    submit_button_label = _("Lift block")
    success_message = _("Block lifted: the address may pay again.")

    def get_queryset(self):
        return PaymentBlock.objects.all()

    def call_service(self, data):
        velocity.lift_block(self.object, actor=self.request.user)

    def get_success_url(self):
        namespace = self.request.resolver_match.namespace
        return reverse(f"{namespace}:list")


def _lift_url(view, block):
    return reverse(view.index_url_name.rsplit(":", 1)[0] + ":lift", args=[block.pk])


class PaymentBlockIndexView(NoBulkActionsIndexView):
    """Blocks, with "Lift block" in the row menu of those in force (as permitted)."""

    @cached_property
    def can_lift(self):
        return self.request.user.has_perm(LIFT_PERMISSION)

    def get_list_more_buttons(self, instance):
        buttons = list(super().get_list_more_buttons(instance))
        if self.can_lift and instance.is_active:
            buttons.append(
                ListingButton(
                    LiftBlockView.page_title,
                    url=_lift_url(self, instance),
                    icon_name="lock-open",
                    priority=40,
                )
            )
        return buttons


class PaymentBlockInspectView(InspectView):
    def get_fields(self):
        return ["kind", "value", "reason", "created_at", "expires_at", "lifted_at", "lifted_by"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["contribution_actions"] = []
        if self.object.is_active and self.request.user.has_perm(LIFT_PERMISSION):
            context["contribution_actions"] = [
                (_lift_url(self, self.object), gettext("Lift block"))
            ]
        return context


def _block_state(block):
    if block.lifted_at:
        return gettext("Lifted")
    if block.expires_at <= timezone.now():
        return gettext("Expired")
    return gettext("In force")


class PaymentBlockViewSet(CRMSnippetViewSet):
    model = PaymentBlock
    icon = "lock"
    menu_label = _("Payment blocks")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = PaymentBlockIndexView
    inspect_view_class = PaymentBlockInspectView
    # Reuses the template that shows action buttons above the fields.
    inspect_template_name = "crm_wagtail/contribution/inspect.html"
    filterset_class = PaymentBlockFilterSet
    search_fields = ["value", "reason"]
    search_backend_name = None
    list_per_page = 50
    ordering = ["-created_at", "-id"]
    list_display = [
        "value",
        Column("kind", label=_("Blocked"), accessor="get_kind_display"),
        Column("reason", label=_("Reason")),
        Column("state", label=_("State"), accessor=_block_state),
        CalendarDateColumn("created_at", label=_("Blocked at")),
        CalendarDateColumn("expires_at", label=_("Until")),
        Column("lifted_by", label=_("Lifted by"), accessor="lifted_by"),
    ]

    def get_queryset(self, request):
        return PaymentBlock.objects.select_related("lifted_by")

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            # An integer in the address: junk is a 404 before any query.
            path("lift/<int:pk>/", LiftBlockView.as_view(), name="lift"),
        ]


class PaymentsViewSetGroup(SnippetViewSetGroup):
    menu_label = _("Payments")
    menu_icon = "form"
    menu_order = 175
    items = (
        PaymentViewSet,
        RefundViewSet,
        DisputeViewSet,
        PaymentBlockViewSet,
        WebhookEventViewSet,
    )


READ_ONLY_MODELS = (Payment, Refund, Dispute, WebhookEvent, PaymentBlock)


def register():
    """Register this module's viewsets with the Wagtail admin.

    Every model is read only to everyone (superusers too): no add, edit or
    delete button. Lifting a block is its own view with its own permission.
    """
    for model in READ_ONLY_MODELS:
        register_permission_policy(model, ReadOnlyPermissionPolicy(model))
    register_snippet(PaymentsViewSetGroup)
