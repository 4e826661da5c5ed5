"""API of contributions: funds, campaigns, contributions and recurring contributions.

Amounts are JSON strings ("12.50") with as many decimal places as the
currency has; currencies are ISO 4217 codes. Every change of a contribution
or recurring contribution goes through ``crm_core.services.contributions``.
"""

import operator
from decimal import Decimal

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ..conf import crm_setting
from ..models import (
    Campaign,
    Contact,
    Contribution,
    ContributionStatus,
    FinancialType,
    FrequencyUnit,
    LineItem,
    LineItemKind,
    Membership,
    Participant,
    PaymentMethod,
    RecurringContribution,
    RecurringStatus,
    SoftCredit,
    SoftCreditKind,
)
from ..money import currency_exponent, validate_currency
from ..selectors.contributions import contributions_with_details, recurring_contributions
from ..services import contributions as service
from .filters import DateTimeRangeFilter, IdFilter
from .permissions import requires
from .serializers import (
    CRMModelSerializer,
    FullCleanModelSerializer,
    IdRelatedField,
    MultilinePlainTextField,
    PlainTextField,
    StrictFieldsMixin,
    TextField,
)
from .views import SOURCE, CRMViewSet, InUse

# -- fields ---------------------------------------------------------------------------------


@extend_schema_field(
    {"type": "string", "pattern": r"^\d+(\.\d+)?$", "example": "12.50"},
)
class AmountField(serializers.Field):
    """An amount as text ("12.50"); shown with the currency's decimal places.

    On input only the type is checked (text or a whole number; never a JSON
    fraction, which has already lost the exact amount); the service checks
    the value against the currency.
    """

    default_error_messages = {
        "invalid": _('Send the amount as text, such as "12.50".'),
        "max_length": _("The amount is too long."),
    }

    def __init__(self, *, currency_attr="currency", **kwargs):
        self.currency_attr = currency_attr
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        return super().get_attribute(instance), operator.attrgetter(self.currency_attr)(instance)

    def to_representation(self, value):
        amount, currency = value
        if amount is None:
            return None
        try:
            return str(Decimal(amount).quantize(Decimal(1).scaleb(-currency_exponent(currency))))
        except ValidationError:
            return str(amount)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        if isinstance(data, str) and len(data) > 40:
            self.fail("max_length")
        return data


class CurrencyField(TextField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 10)
        kwargs.setdefault("help_text", _("ISO 4217 code, such as GBP."))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value and self.allow_blank:
            return ""
        try:
            return validate_currency(value)
        except ValidationError as error:
            raise serializers.ValidationError(error.messages) from None


def _renamed(error, names):
    """A service's ValidationError with its keys renamed to the API's field names."""
    if hasattr(error, "error_dict"):
        return ValidationError(
            {names.get(name, name): messages for name, messages in error.message_dict.items()}
        )
    return error


# -- funds and campaigns ----------------------------------------------------------------------


class FinancialTypeSerializer(FullCleanModelSerializer):
    class Meta:
        model = FinancialType
        fields = ["id", "name", "slug", "description", "is_deductible", "is_active"]


class CampaignSerializer(FullCleanModelSerializer):
    currency = CurrencyField(required=False, allow_blank=True)
    goal_amount = AmountField(required=False, allow_null=True)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "goal_amount",
            "currency",
            "starts_on",
            "ends_on",
            "is_active",
        ]


class FinancialTypeFilter(django_filters.FilterSet):
    class Meta:
        model = FinancialType
        fields = ["is_active", "is_deductible", "slug"]


class CampaignFilter(django_filters.FilterSet):
    class Meta:
        model = Campaign
        fields = ["is_active", "slug"]


class DeleteUnlessUsedMixin:
    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise InUse() from None


class FinancialTypeViewSet(DeleteUnlessUsedMixin, viewsets.ModelViewSet, CRMViewSet):
    """Funds (financial types). One in use cannot be deleted: deactivate it (409)."""

    queryset = FinancialType.objects.all()
    serializer_class = FinancialTypeSerializer
    filterset_class = FinancialTypeFilter
    ordering_fields = ["name", "slug", "id"]
    ordering = ["name", "id"]


class CampaignViewSet(DeleteUnlessUsedMixin, viewsets.ModelViewSet, CRMViewSet):
    """Campaigns and appeals. One with contributions cannot be deleted (409)."""

    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter
    ordering_fields = ["name", "starts_on", "id"]
    ordering = ["name", "id"]


# -- contributions --------------------------------------------------------------------------


class LineItemSerializer(CRMModelSerializer):
    unit_amount = AmountField(currency_attr="contribution.currency", read_only=True)
    line_total = AmountField(currency_attr="contribution.currency", read_only=True)

    class Meta:
        model = LineItem
        fields = [
            "id",
            "kind",
            "label",
            "quantity",
            "unit_amount",
            "line_total",
            "financial_type",
            "membership",
            "participant",
            "applied_at",
            "term_start",
            "term_end",
        ]
        read_only_fields = fields


class SoftCreditSerializer(CRMModelSerializer):
    amount = AmountField(currency_attr="contribution.currency", read_only=True)

    class Meta:
        model = SoftCredit
        fields = ["id", "contact", "kind", "amount"]
        read_only_fields = fields


class ContributionSerializer(CRMModelSerializer):
    """A contribution with what it pays for and whom it credits (read only)."""

    total_amount = AmountField(read_only=True)
    refunded_amount = AmountField(read_only=True)
    line_items = LineItemSerializer(many=True, read_only=True)
    soft_credits = SoftCreditSerializer(many=True, read_only=True)

    class Meta:
        model = Contribution
        fields = [
            "id",
            "reference",
            "contact",
            "total_amount",
            "currency",
            "financial_type",
            "campaign",
            "source",
            "status",
            "received_at",
            "payment_method",
            "transaction_id",
            "refunded_amount",
            "receipt_status",
            "receipt_sent_at",
            "recurring",
            "note",
            "status_reason",
            "is_disputed",
            "created_at",
            "updated_at",
            "line_items",
            "soft_credits",
        ]
        read_only_fields = fields


class LineItemInputSerializer(StrictFieldsMixin, serializers.Serializer):
    kind = serializers.ChoiceField(choices=LineItemKind.choices, default=LineItemKind.DONATION)
    unit_amount = AmountField()
    quantity = serializers.IntegerField(min_value=1, max_value=service.MAX_QUANTITY, default=1)
    label = PlainTextField(max_length=255, required=False, allow_blank=True)
    financial_type = IdRelatedField(
        queryset=FinancialType.objects.all(), required=False, allow_null=True
    )
    membership = IdRelatedField(
        queryset=Membership.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("For kind membership: the membership this pays a term of."),
    )
    participant = IdRelatedField(
        queryset=Participant.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("For kind event_fee: the participant whose seat this pays for."),
    )


class SoftCreditInputSerializer(StrictFieldsMixin, serializers.Serializer):
    contact = IdRelatedField(queryset=Contact.objects.all())
    kind = serializers.ChoiceField(choices=SoftCreditKind.choices)
    amount = AmountField(required=False, help_text=_("Defaults to the contribution's total."))


class ContributionCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    """A new contribution, pending until paid. The total is the sum of its lines."""

    contact = IdRelatedField(queryset=Contact.objects.all())
    currency = CurrencyField()
    line_items = LineItemInputSerializer(many=True, allow_empty=False, max_length=100)
    financial_type = IdRelatedField(
        queryset=FinancialType.objects.all(), required=False, allow_null=True
    )
    campaign = IdRelatedField(queryset=Campaign.objects.all(), required=False, allow_null=True)
    recurring = IdRelatedField(
        queryset=RecurringContribution.objects.all(), required=False, allow_null=True
    )
    payment_method = serializers.ChoiceField(
        choices=PaymentMethod.choices, required=False, allow_blank=True
    )
    note = MultilinePlainTextField(
        required=False, allow_blank=True, max_length=crm_setting("MAX_TEXT_LENGTH")
    )
    soft_credits = SoftCreditInputSerializer(many=True, required=False, max_length=20)


class ReasonSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = PlainTextField(max_length=255, required=False, allow_blank=True, default="")


class RefundSerializer(ReasonSerializer):
    amount = AmountField(
        required=False, allow_null=True, help_text=_("Leave out to refund everything left.")
    )


class OfflinePaymentSerializer(StrictFieldsMixin, serializers.Serializer):
    payment_method = serializers.ChoiceField(
        choices=[(m.value, m.label) for m in service.OFFLINE_PAYMENT_METHODS]
    )
    received_at = serializers.DateTimeField(required=False, allow_null=True)
    transaction_id = PlainTextField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Cheque number or bank reference."),
    )


class ContributionFilter(django_filters.FilterSet):
    contact = IdFilter(field_name="contact_id")
    financial_type = IdFilter(field_name="financial_type_id")
    campaign = IdFilter(field_name="campaign_id")
    recurring = IdFilter(field_name="recurring_id")
    status = django_filters.MultipleChoiceFilter(choices=ContributionStatus.choices)
    currency = django_filters.CharFilter(method="filter_currency", max_length=10)
    received = DateTimeRangeFilter(field_name="received_at")
    created = DateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Contribution
        fields = ["payment_method", "receipt_status"]

    @extend_schema_field(OpenApiTypes.STR)
    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency=value.strip().upper())


@extend_schema_view(
    create=extend_schema(
        request=ContributionCreateSerializer,
        responses={201: ContributionSerializer},
        description=_(
            "Record a contribution awaiting payment; nothing is granted until it completes."
        ),
    ),
)
class ContributionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, CRMViewSet
):
    """Contributions with their line items and soft credits.

    Created pending (``POST``); amounts and status change only through the
    actions: ``complete`` (an offline payment), ``refund``, ``cancel``, ``fail``.
    """

    serializer_class = ContributionSerializer
    filterset_class = ContributionFilter
    ordering_fields = ["created_at", "received_at", "total_amount", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return contributions_with_details()

    def _reloaded(self, contribution, code=status.HTTP_200_OK):
        fresh = self.get_queryset().get(pk=contribution.pk)
        return Response(ContributionSerializer(fresh).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = ContributionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        lines = [
            {"amount": line.pop("unit_amount"), **{k: v for k, v in line.items() if v is not None}}
            for line in data.pop("line_items")
        ]
        credits = [
            {k: v for k, v in credit.items() if v is not None}
            for credit in data.pop("soft_credits", [])
        ]
        try:
            contribution = service.create_pending(
                data.pop("contact"),
                lines=lines,
                soft_credits=credits,
                actor=request.user,
                source=SOURCE,
                **data,
            )
        except ValidationError as error:
            raise _renamed(error, {"lines": "line_items"}) from None
        return self._reloaded(contribution, status.HTTP_201_CREATED)

    def _act(self, service_function, serializer_class):
        """Check the request with ``serializer_class``, then call the service on this row."""
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        contribution = service_function(
            self.get_object(), actor=self.request.user, source=SOURCE, **serializer.validated_data
        )
        return self._reloaded(contribution)

    @extend_schema(request=OfflinePaymentSerializer, responses=ContributionSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires("crm_core.record_offline_payment")],
    )
    def complete(self, request, pk=None):
        """Record an offline payment (cheque, cash, bank transfer, other).

        Idempotent: completing a paid contribution again returns it unchanged (200).
        """
        return self._act(service.record_offline_payment, OfflinePaymentSerializer)

    @extend_schema(request=RefundSerializer, responses=ContributionSerializer)
    @action(
        detail=True, methods=["post"], permission_classes=[requires("crm_core.refund_contribution")]
    )
    def refund(self, request, pk=None):
        """Record a full (no amount) or partial refund; 409 beyond what is left."""
        return self._act(service.refund, RefundSerializer)

    @extend_schema(request=ReasonSerializer, responses=ContributionSerializer)
    @action(
        detail=True, methods=["post"], permission_classes=[requires("crm_core.change_contribution")]
    )
    def cancel(self, request, pk=None):
        """Cancel an unpaid contribution, releasing the membership or seat it held."""
        return self._act(service.cancel, ReasonSerializer)

    @extend_schema(request=ReasonSerializer, responses=ContributionSerializer)
    @action(
        detail=True, methods=["post"], permission_classes=[requires("crm_core.change_contribution")]
    )
    def fail(self, request, pk=None):
        """Mark a pending contribution's payment failed (it may still complete later)."""
        return self._act(service.fail, ReasonSerializer)


# -- recurring contributions ----------------------------------------------------------------


class RecurringContributionSerializer(CRMModelSerializer):
    amount = AmountField()
    currency = CurrencyField()
    frequency_unit = serializers.ChoiceField(choices=FrequencyUnit.choices)
    frequency_interval = serializers.IntegerField(min_value=1, max_value=36, default=1)
    installments = serializers.IntegerField(
        min_value=1, max_value=service.MAX_INSTALLMENTS, required=False, allow_null=True
    )
    processor = PlainTextField(max_length=50, required=False, allow_blank=True, default="")
    processor_id = PlainTextField(max_length=255, required=False, allow_blank=True, default="")

    class Meta:
        model = RecurringContribution
        fields = [
            "id",
            "reference",
            "contact",
            "amount",
            "currency",
            "frequency_unit",
            "frequency_interval",
            "installments",
            "financial_type",
            "campaign",
            "membership",
            "status",
            "start_date",
            "next_date",
            "payment_method",
            "processor",
            "processor_id",
            "cancelled_at",
            "cancel_reason",
            "source",
            "created_at",
        ]
        read_only_fields = [
            "reference",
            "status",
            "next_date",
            "cancelled_at",
            "cancel_reason",
            "source",
            "created_at",
        ]
        extra_kwargs = {"start_date": {"required": False}}


class RecurringCancelSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = PlainTextField(max_length=255)


class RecurringContributionFilter(django_filters.FilterSet):
    contact = IdFilter(field_name="contact_id")
    status = django_filters.MultipleChoiceFilter(choices=RecurringStatus.choices)
    next_date = django_filters.DateFromToRangeFilter()

    class Meta:
        model = RecurringContribution
        fields = ["frequency_unit", "processor"]


@extend_schema_view(
    create=extend_schema(
        request=RecurringContributionSerializer,
        responses={201: RecurringContributionSerializer},
    ),
)
class RecurringContributionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, CRMViewSet
):
    """Standing orders: monthly or yearly gifts and auto-renewing memberships."""

    serializer_class = RecurringContributionSerializer
    filterset_class = RecurringContributionFilter
    ordering_fields = ["created_at", "next_date", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return recurring_contributions()

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        recurring = service.create_recurring(
            data.pop("contact"), actor=request.user, source=SOURCE, **data
        )
        return Response(self.get_serializer(recurring).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RecurringCancelSerializer, responses=RecurringContributionSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires("crm_core.change_recurringcontribution")],
    )
    def cancel(self, request, pk=None):
        """Stop the standing order; a reason is required. Cancelling again changes nothing."""
        serializer = RecurringCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        recurring = service.cancel_recurring(
            self.get_object(), actor=request.user, source=SOURCE, **serializer.validated_data
        )
        return Response(self.get_serializer(recurring).data)


def register(router):
    """Add this module's viewsets to the v1 router."""
    router.register("financial-types", FinancialTypeViewSet, basename="financial-type")
    router.register("campaigns", CampaignViewSet, basename="campaign")
    router.register("contributions", ContributionViewSet, basename="contribution")
    router.register(
        "recurring-contributions", RecurringContributionViewSet, basename="recurring-contribution"
    )
