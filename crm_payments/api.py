"""REST API of crm_payments: payments, refunds, disputes and card-testing blocks.

Mounted by ``crm_payments.api_urls`` at e.g. /api/crm/payments/v1/ with the
same authentication, permissions, pagination and error handling as the
core's API (``crm_core.api``). Payments, disputes and blocks are read only:
the provider's webhooks and the services write them. Two writes:

- ``POST refunds/`` gives money back through ``refund_contribution``, the one
  refund service (the provider that took the money refunds it; a
  contribution paid offline is recorded as refunded by hand);
- ``POST payment-blocks/{id}/lift/`` lets a blocked address pay again.

``ContributionViewSet`` here replaces the core's contributions endpoint when
crm_payments is installed (see ``api_urls``): its ``refund`` and
``complete`` actions go through crm_payments' services, so refunding a
card payment returns the money to the card instead of only recording it.
"""

import django_filters
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from crm_core.api import contributions as core_api
from crm_core.api.filters import DateTimeRangeFilter, IdFilter
from crm_core.api.permissions import requires
from crm_core.api.serializers import (
    CRMModelSerializer,
    IdRelatedField,
    PlainTextField,
    StrictFieldsMixin,
)
from crm_core.api.views import SOURCE, CRMViewSet
from crm_core.models import Contribution

from .models import (
    BlockKind,
    Dispute,
    Payment,
    PaymentBlock,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from .services import payments as service
from .services import velocity

AmountField = core_api.AmountField

# -- serializers ------------------------------------------------------------------------------


class PaymentSerializer(CRMModelSerializer):
    """One attempt to pay a contribution; ``needs_attention`` says what staff must look at."""

    amount = AmountField(read_only=True)
    contact = serializers.IntegerField(source="contribution.contact_id", read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "reference",
            "contribution",
            "contact",
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
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class RefundSerializer(CRMModelSerializer):
    amount = AmountField(read_only=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "reference",
            "contribution",
            "payment",
            "provider",
            "status",
            "amount",
            "currency",
            "provider_id",
            "reason",
            "failure_reason",
            "applied_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class RefundCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    contribution = IdRelatedField(queryset=Contribution.objects.filter(contact__is_deleted=False))
    amount = AmountField(
        required=False, allow_null=True, help_text=_("Leave out to refund everything left.")
    )
    reason = PlainTextField(max_length=255, required=False, allow_blank=True, default="")


class DisputeSerializer(CRMModelSerializer):
    amount = AmountField(read_only=True)
    contribution = serializers.IntegerField(source="payment.contribution_id", read_only=True)

    class Meta:
        model = Dispute
        fields = [
            "id",
            "payment",
            "contribution",
            "provider_id",
            "status",
            "reason",
            "amount",
            "currency",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PaymentBlockSerializer(CRMModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = PaymentBlock
        fields = [
            "id",
            "kind",
            "value",
            "reason",
            "is_active",
            "created_at",
            "expires_at",
            "lifted_at",
            "lifted_by",
        ]
        read_only_fields = fields


# -- filters ----------------------------------------------------------------------------------


class PaymentFilter(django_filters.FilterSet):
    contribution = IdFilter(field_name="contribution_id")
    contact = IdFilter(field_name="contribution__contact_id")
    status = django_filters.MultipleChoiceFilter(choices=PaymentStatus.choices)
    provider = django_filters.CharFilter(max_length=50)
    provider_id = django_filters.CharFilter(max_length=255)
    payment_intent_id = django_filters.CharFilter(max_length=255)
    charge_id = django_filters.CharFilter(max_length=255)
    needs_attention = django_filters.BooleanFilter(
        method="filter_needs_attention", label=_("Only payments staff must look at (or not).")
    )
    created = DateTimeRangeFilter(field_name="created_at")
    completed = DateTimeRangeFilter(field_name="completed_at")

    class Meta:
        model = Payment
        fields = []

    @extend_schema_field(OpenApiTypes.BOOL)
    def filter_needs_attention(self, queryset, name, value):
        flagged = ~Q(needs_attention="")
        return queryset.filter(flagged) if value else queryset.exclude(flagged)


class RefundFilter(django_filters.FilterSet):
    contribution = IdFilter(field_name="contribution_id")
    payment = IdFilter(field_name="payment_id")
    status = django_filters.MultipleChoiceFilter(choices=RefundStatus.choices)
    provider = django_filters.CharFilter(max_length=50)
    provider_id = django_filters.CharFilter(max_length=255)
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Refund
        fields = []


class DisputeFilter(django_filters.FilterSet):
    payment = IdFilter(field_name="payment_id")
    contribution = IdFilter(field_name="payment__contribution_id")
    status = django_filters.CharFilter(max_length=50)
    provider_id = django_filters.CharFilter(max_length=255)
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Dispute
        fields = []


class PaymentBlockFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=BlockKind.choices)
    value = django_filters.CharFilter(max_length=254, label=_("The blocked IP or email address."))
    active = django_filters.BooleanFilter(
        method="filter_active", label=_("Only blocks in force now (or only ended ones).")
    )
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = PaymentBlock
        fields = []

    @extend_schema_field(OpenApiTypes.BOOL)
    def filter_active(self, queryset, name, value):
        active = Q(lifted_at=None, expires_at__gt=timezone.now())
        return queryset.filter(active) if value else queryset.exclude(active)


# -- viewsets ---------------------------------------------------------------------------------


class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CRMViewSet):
    """Payment attempts, newest first. Written only by the payment services."""

    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter
    ordering_fields = ["created_at", "completed_at", "amount", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return Payment.objects.filter(contribution__contact__is_deleted=False).select_related(
            "contribution"
        )


class RefundViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, CRMViewSet
):
    """Refunds, and ``POST`` to give money back through the provider that took it.

    ``POST`` needs ``crm_core.refund_contribution``. It answers 201 with the
    refund: ``succeeded`` when it is done (and recorded on the contribution),
    ``pending`` while the provider is still working on it. 409 when nothing
    (or less than asked) is left to refund, 400 for a bad amount, 502 when
    the provider refused (the refund is kept, ``failed``).
    """

    serializer_class = RefundSerializer
    filterset_class = RefundFilter
    ordering_fields = ["created_at", "amount", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return Refund.objects.filter(contribution__contact__is_deleted=False)

    def get_permissions(self):
        if self.action == "create":
            return [requires("crm_core.refund_contribution")()]
        return super().get_permissions()

    @extend_schema(request=RefundCreateSerializer, responses={201: RefundSerializer})
    def create(self, request, *args, **kwargs):
        serializer = RefundCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        refund = service.refund_contribution(
            data.pop("contribution"), actor=request.user, source=SOURCE, **data
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class DisputeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CRMViewSet):
    """Chargebacks reported by the provider; answered at the provider."""

    serializer_class = DisputeSerializer
    filterset_class = DisputeFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return Dispute.objects.filter(
            payment__contribution__contact__is_deleted=False
        ).select_related("payment")


class PaymentBlockViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CRMViewSet):
    """IP and email addresses refused new payments by the card-testing defence."""

    serializer_class = PaymentBlockSerializer
    filterset_class = PaymentBlockFilter
    ordering_fields = ["created_at", "expires_at", "id"]
    ordering = ["-created_at", "-id"]
    queryset = PaymentBlock.objects.all()

    @extend_schema(request=None, responses=PaymentBlockSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires("crm_payments.change_paymentblock")],
    )
    def lift(self, request, pk=None):
        """Let the address pay again now. Lifting a lifted or expired block changes nothing."""
        block = velocity.lift_block(self.get_object(), actor=request.user)
        return Response(PaymentBlockSerializer(block).data)


class ContributionViewSet(core_api.ContributionViewSet):
    """The core's contributions, with refunds and offline payments through crm_payments."""

    @extend_schema(
        request=core_api.OfflinePaymentSerializer, responses=core_api.ContributionSerializer
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires("crm_core.record_offline_payment")],
    )
    def complete(self, request, pk=None):
        """Record an offline payment (cheque, cash, bank transfer, other).

        Idempotent: completing a paid contribution again returns it unchanged (200).
        """
        return self._act(service.record_offline_payment, core_api.OfflinePaymentSerializer)

    @extend_schema(request=core_api.RefundSerializer, responses=core_api.ContributionSerializer)
    @action(
        detail=True, methods=["post"], permission_classes=[requires("crm_core.refund_contribution")]
    )
    def refund(self, request, pk=None):
        """Refund all (no amount) or part; 409 beyond what is left.

        The money goes back through the provider that took it. 200 once the
        refund is done; 202 while the provider is still working on it (the
        contribution changes when the provider confirms).
        """
        serializer = core_api.RefundSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contribution = self.get_object()
        refund = service.refund_contribution(
            contribution, actor=request.user, source=SOURCE, **serializer.validated_data
        )
        if refund.status == RefundStatus.PENDING:
            return self._reloaded(contribution, status.HTTP_202_ACCEPTED)
        return self._reloaded(contribution)


def register(router):
    """Add this module's viewsets to a v1 router."""
    router.register("payments", PaymentViewSet, basename="payment")
    router.register("refunds", RefundViewSet, basename="refund")
    router.register("disputes", DisputeViewSet, basename="dispute")
    router.register("payment-blocks", PaymentBlockViewSet, basename="payment-block")
