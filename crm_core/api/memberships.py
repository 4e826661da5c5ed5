"""API of memberships: membership types, memberships and status rules.

Memberships are written only through ``crm_core.services.memberships``:
``POST memberships/`` joins, and the actions renew, cancel and change the
type, each with ``actor=request.user`` and ``source="api"``. Dates and status
are never written directly. Membership types and status rules are reference
data saved after the model's own validation.
"""

import django_filters
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ..models import (
    Contact,
    FinancialType,
    Membership,
    MembershipStatus,
    MembershipStatusRule,
    MembershipType,
    RelationshipType,
)
from ..services import memberships as services
from .filters import IdFilter
from .permissions import requires
from .serializers import (
    CRMModelSerializer,
    FullCleanModelSerializer,
    IdRelatedField,
    StrictFieldsMixin,
    TextField,
)
from .views import CRMViewSet, InUse

SOURCE = "api"


# -- serializers --------------------------------------------------------------------------


class MembershipTypeSerializer(FullCleanModelSerializer):
    fee = serializers.CharField(
        max_length=40, required=False, help_text=_("In the type's currency, such as 30.00.")
    )
    financial_type = IdRelatedField(queryset=FinancialType.objects.all())
    owner = IdRelatedField(
        queryset=Contact.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("Id of the organisation that owns the type."),
    )
    inherit_relationship_types = IdRelatedField(
        queryset=RelationshipType.objects.all(), many=True, required=False
    )

    class Meta:
        model = MembershipType
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "owner",
            "fee",
            "currency",
            "financial_type",
            "duration_unit",
            "duration_interval",
            "period_type",
            "fixed_period_start_month",
            "fixed_period_start_day",
            "fixed_period_rollover_month",
            "fixed_period_rollover_day",
            "grace_period_days",
            "is_renewable_online",
            "auto_renew",
            "inherit_relationship_types",
            "is_active",
            "weight",
        ]

    def create(self, validated_data):
        inherit = validated_data.pop("inherit_relationship_types", None)
        with transaction.atomic():
            mtype = super().create(validated_data)
            if inherit is not None:
                mtype.inherit_relationship_types.set(inherit)
        return mtype

    def update(self, instance, validated_data):
        inherit = validated_data.pop("inherit_relationship_types", None)
        with transaction.atomic():
            mtype = super().update(instance, validated_data)
            if inherit is not None:
                mtype.inherit_relationship_types.set(inherit)
        return mtype

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["fee"] = str(instance.fee)
        return data


class MembershipSerializer(CRMModelSerializer):
    """A membership as stored; written only through the join and action endpoints."""

    class Meta:
        model = Membership
        fields = [
            "id",
            "contact",
            "membership_type",
            "join_date",
            "start_date",
            "end_date",
            "status",
            "source",
            "auto_renew",
            "inherited_from",
            "cancelled_at",
            "cancel_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MembershipJoinSerializer(StrictFieldsMixin, serializers.Serializer):
    contact = IdRelatedField(queryset=Contact.objects.all())
    membership_type = IdRelatedField(queryset=MembershipType.objects.all())
    join_date = serializers.DateField(
        required=False, allow_null=True, help_text=_("Member since; default today.")
    )
    start_date = serializers.DateField(
        required=False, allow_null=True, help_text=_("First term starts; default the join date.")
    )
    pending = serializers.BooleanField(
        required=False, default=False, help_text=_("Not paid yet: status pending.")
    )
    auto_renew = serializers.BooleanField(required=False, default=False)


class MembershipRenewSerializer(StrictFieldsMixin, serializers.Serializer):
    terms = serializers.IntegerField(
        min_value=1, max_value=services.MAX_TERMS, required=False, default=1
    )


class MembershipCancelSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = TextField(max_length=255, required=False, allow_blank=True, default="")


class MembershipChangeTypeSerializer(StrictFieldsMixin, serializers.Serializer):
    membership_type = IdRelatedField(queryset=MembershipType.objects.all())


class MembershipStatusRuleSerializer(FullCleanModelSerializer):
    class Meta:
        model = MembershipStatusRule
        fields = [
            "id",
            "status",
            "start_event",
            "start_offset_unit",
            "start_offset_interval",
            "end_event",
            "end_offset_unit",
            "end_offset_interval",
            "is_current_member",
            "weight",
            "is_active",
        ]
        read_only_fields = ["status"]


# -- filters ------------------------------------------------------------------------------


class MembershipTypeFilter(django_filters.FilterSet):
    class Meta:
        model = MembershipType
        fields = ["is_active", "slug", "period_type", "duration_unit"]


class MembershipFilter(django_filters.FilterSet):
    contact = IdFilter(field_name="contact_id")
    membership_type = IdFilter(field_name="membership_type_id")
    inherited_from = IdFilter(field_name="inherited_from_id")
    status = django_filters.MultipleChoiceFilter(choices=MembershipStatus.choices)
    end_date = django_filters.DateFromToRangeFilter(field_name="end_date")

    class Meta:
        model = Membership
        fields = []


# -- viewsets -----------------------------------------------------------------------------


class MembershipTypeViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Kinds of membership. A type that has memberships cannot be deleted: deactivate it."""

    queryset = MembershipType.objects.prefetch_related("inherit_relationship_types")
    serializer_class = MembershipTypeSerializer
    filterset_class = MembershipTypeFilter
    ordering_fields = ["weight", "name", "id"]
    ordering = ["weight", "name", "id"]

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise InUse()


class MembershipViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, CRMViewSet
):
    """Memberships. ``POST`` joins (``crm_core.services.memberships.join``); dates
    and status change only through the renew, cancel and change-type actions."""

    queryset = Membership.objects.filter(contact__is_deleted=False)
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilter
    ordering_fields = ["start_date", "end_date", "join_date", "id"]
    ordering = ["-start_date", "-id"]

    def _reply(self, membership, code=status.HTTP_200_OK):
        return Response(MembershipSerializer(membership).data, status=code)

    @extend_schema(
        request=MembershipJoinSerializer,
        responses={
            201: MembershipSerializer,
            409: OpenApiResponse(
                description=_("Already a member, or the contact is in the trash.")
            ),
        },
    )
    def create(self, request, *args, **kwargs):
        """Join: a new membership for its first term (``pending`` when not paid yet)."""
        serializer = MembershipJoinSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        membership = services.join(
            data["contact"],
            data["membership_type"],
            join_date=data.get("join_date"),
            start_date=data.get("start_date"),
            pending=data["pending"],
            auto_renew=data["auto_renew"],
            actor=request.user,
            source=SOURCE,
        )
        return self._reply(membership, status.HTTP_201_CREATED)

    @extend_schema(
        request=MembershipRenewSerializer,
        responses={
            200: MembershipSerializer,
            409: OpenApiResponse(description=_("Lifetime, pending, cancelled or inherited.")),
        },
    )
    @action(
        detail=True, methods=["post"], permission_classes=[requires("crm_core.renew_membership")]
    )
    def renew(self, request, pk=None):
        """Add terms from the current end date (from today when lapsed beyond grace)."""
        serializer = MembershipRenewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.renew(
            self.get_object(),
            terms=serializer.validated_data["terms"],
            actor=request.user,
            source=SOURCE,
        )
        return self._reply(membership)

    @extend_schema(request=MembershipCancelSerializer, responses={200: MembershipSerializer})
    @action(
        detail=True, methods=["post"], permission_classes=[requires("crm_core.change_membership")]
    )
    def cancel(self, request, pk=None):
        """Cancel (idempotent); memberships inherited from it are cancelled too."""
        serializer = MembershipCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.cancel(
            self.get_object(),
            reason=serializer.validated_data["reason"],
            actor=request.user,
            source=SOURCE,
        )
        return self._reply(membership)

    @extend_schema(request=MembershipChangeTypeSerializer, responses={200: MembershipSerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path="change-type",
        permission_classes=[requires("crm_core.change_membership")],
    )
    def change_type(self, request, pk=None):
        """Move to another type in the same currency, keeping the dates."""
        serializer = MembershipChangeTypeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.change_type(
            self.get_object(),
            serializer.validated_data["membership_type"],
            actor=request.user,
            source=SOURCE,
        )
        return self._reply(membership)


class MembershipStatusRuleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, CRMViewSet
):
    """The rules that give memberships their date-driven status (read; staff may edit)."""

    queryset = MembershipStatusRule.objects.all()
    serializer_class = MembershipStatusRuleSerializer
    ordering_fields = ["weight", "id"]
    ordering = ["weight", "id"]


def register(router):
    """Add this module's viewsets to the v1 router."""
    router.register("membership-types", MembershipTypeViewSet, basename="membership-type")
    router.register("memberships", MembershipViewSet, basename="membership")
    router.register(
        "membership-status-rules", MembershipStatusRuleViewSet, basename="membership-status-rule"
    )
