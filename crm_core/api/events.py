"""API of events: participant roles, events with fee levels, registration and participants.

Participants are written only through ``crm_core.services.events``: there is
no create or update of a participant's status, only the actions (register,
cancel, check-in, no-show, accept-offer, promote-waitlist), each calling
the service with ``actor=request.user`` and ``source="api"``.
"""

import json
from decimal import Decimal

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from ..ical import event_ics, events_feed_ics
from ..models import (
    Contact,
    Event,
    EventFeeLevel,
    FinancialType,
    Participant,
    ParticipantRole,
    ParticipantStatus,
)
from ..money import currency_exponent, parse_amount
from ..selectors.events import seats_left_of, upcoming_public_events, with_seats
from ..services import events as services
from .filters import DateTimeRangeFilter, IdFilter
from .permissions import requires
from .serializers import (
    CRMModelSerializer,
    FullCleanModelSerializer,
    IdRelatedField,
    PlainTextField,
    StrictFieldsMixin,
)
from .views import CRMViewSet, InUse

SOURCE = "api"
# Most events in one calendar feed.
FEED_LIMIT = 500


# -- serializers ------------------------------------------------------------------------------


class ParticipantRoleSerializer(FullCleanModelSerializer):
    class Meta:
        model = ParticipantRole
        fields = ["id", "name", "slug", "counts_towards_capacity", "is_active", "weight"]


class EventFeeLevelSerializer(FullCleanModelSerializer):
    amount = serializers.CharField(
        max_length=40, help_text=_("In the event's currency, such as 25.00; 0 for free.")
    )
    event = IdRelatedField(queryset=Event.objects.all())

    class Meta:
        model = EventFeeLevel
        fields = ["id", "event", "label", "amount", "is_default", "is_active", "weight"]

    def validate(self, attrs):
        event = attrs.get("event") or self.instance.event
        if self.instance is not None and "event" in attrs and attrs["event"] != self.instance.event:
            raise serializers.ValidationError(
                {"event": [_("A fee level cannot move to another event.")]}
            )
        if "amount" in attrs:
            try:
                attrs["amount"] = parse_amount(attrs["amount"], event.currency, allow_zero=True)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"amount": exc.messages}) from None
        return attrs

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["amount"] = amount_text(instance)
        return data


def amount_text(level):
    """The amount with its currency's decimal places: "25.00" GBP, "1500" JPY."""
    places = currency_exponent(level.event.currency)
    return str(level.amount.quantize(Decimal(1).scaleb(-places)))


class NestedFeeLevelSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.STR)
    def get_amount(self, level):
        return amount_text(level)

    class Meta:
        model = EventFeeLevel
        fields = ["id", "label", "amount", "is_default", "is_active"]
        read_only_fields = fields


class EventSerializer(FullCleanModelSerializer):
    """An event. ``fee_levels`` are read here; write them at ``event-fee-levels``."""

    fee_levels = NestedFeeLevelSerializer(many=True, read_only=True)
    seats_taken = serializers.IntegerField(read_only=True)
    seats_left = serializers.SerializerMethodField()
    capacity = serializers.IntegerField(
        min_value=0,
        max_value=1_000_000,
        allow_null=True,
        required=False,
        help_text=_("Seats; null for no limit."),
    )
    financial_type = IdRelatedField(
        queryset=FinancialType.objects.all(), allow_null=True, required=False
    )
    roles = IdRelatedField(queryset=ParticipantRole.objects.all(), many=True, required=False)

    class Meta:
        model = Event
        fields = [
            "id",
            "title",
            "slug",
            "summary",
            "description",
            "starts_at",
            "ends_at",
            "time_zone",
            "location",
            "address",
            "online_url",
            "capacity",
            "registration_opens_at",
            "registration_closes_at",
            "max_seats_per_registration",
            "waitlist_enabled",
            "waitlist_offer_hours",
            "currency",
            "financial_type",
            "roles",
            "is_public",
            "is_active",
            "fee_levels",
            "seats_taken",
            "seats_left",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_seats_left(self, event):
        return seats_left_of(event)

    @transaction.atomic
    def create(self, validated_data):
        roles = validated_data.pop("roles", None)
        event = super().create(validated_data)
        if roles is not None:
            event.roles.set(roles)
        return event

    @transaction.atomic
    def update(self, instance, validated_data):
        roles = validated_data.pop("roles", None)
        event = super().update(instance, validated_data)
        if roles is not None:
            event.roles.set(roles)
        return event


class AttendeeSerializer(StrictFieldsMixin, serializers.Serializer):
    contact = IdRelatedField(queryset=Contact.objects.all())
    role = IdRelatedField(queryset=ParticipantRole.objects.all(), required=False, allow_null=True)
    fee_level = IdRelatedField(
        queryset=EventFeeLevel.objects.all(), required=False, allow_null=True
    )
    answers = serializers.DictField(
        required=False, help_text=_("Answers to the event's questions, by custom field name.")
    )

    def validate_answers(self, value):
        if len(value) > 100 or len(json.dumps(value, default=str)) > 50_000:
            raise serializers.ValidationError(_("Too many or too long answers."))
        return value


class RegistrationSerializer(StrictFieldsMixin, serializers.Serializer):
    registered_by = IdRelatedField(queryset=Contact.objects.all(), allow_null=True)
    attendees = AttendeeSerializer(many=True, allow_empty=False, max_length=100)
    pending_payment = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_("false when the fee is already paid: paid seats are registered at once."),
    )


class ParticipantSerializer(CRMModelSerializer):
    contact_name = serializers.CharField(source="contact.display_name", read_only=True)
    fee_amount = serializers.SerializerMethodField()

    @extend_schema_field({"type": "string", "example": "25.00"})
    def get_fee_amount(self, participant):
        """The fee with the event currency's decimal places: "25.00" GBP, "1500" JPY."""
        places = currency_exponent(participant.event.currency)
        return str(participant.fee_amount.quantize(Decimal(1).scaleb(-places)))

    class Meta:
        model = Participant
        fields = [
            "id",
            "event",
            "contact",
            "contact_name",
            "role",
            "fee_level",
            "fee_amount",
            "status",
            "registration",
            "registered_by",
            "registered_at",
            "answers",
            "waitlisted_at",
            "offer_expires_at",
            "checked_in_at",
            "cancelled_at",
            "cancel_reason",
            "source",
        ]
        read_only_fields = fields


class CancelSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = PlainTextField(max_length=255, required=False, allow_blank=True, default="")


# -- filters ----------------------------------------------------------------------------------


class EventFilter(django_filters.FilterSet):
    starts = DateTimeRangeFilter(field_name="starts_at")
    search = django_filters.CharFilter(field_name="title", lookup_expr="icontains", max_length=200)

    class Meta:
        model = Event
        fields = ["is_active", "is_public"]


class EventFeeLevelFilter(django_filters.FilterSet):
    event = IdFilter(field_name="event_id")

    class Meta:
        model = EventFeeLevel
        fields = ["is_active"]


class ParticipantRoleFilter(django_filters.FilterSet):
    class Meta:
        model = ParticipantRole
        fields = ["is_active", "counts_towards_capacity"]


class ParticipantFilter(django_filters.FilterSet):
    event = IdFilter(field_name="event_id")
    contact = IdFilter(field_name="contact_id")
    status = django_filters.MultipleChoiceFilter(choices=ParticipantStatus.choices)
    registration = django_filters.UUIDFilter()

    class Meta:
        model = Participant
        fields = []


# -- viewsets ---------------------------------------------------------------------------------


class ICalendarRenderer(BaseRenderer):
    """``text/calendar`` for the .ics actions; their errors stay JSON text."""

    media_type = "text/calendar"
    format = "ics"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return json.dumps(data, default=str).encode()


def calendar_response(content, filename):
    response = HttpResponse(content, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ParticipantRoleViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Roles at events. A role that has been used cannot be deleted: deactivate it."""

    queryset = ParticipantRole.objects.all()
    serializer_class = ParticipantRoleSerializer
    filterset_class = ParticipantRoleFilter
    ordering_fields = ["weight", "name", "id"]
    ordering = ["weight", "name", "id"]

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise InUse()


class EventViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Events, with their fee levels and the seats taken and left.

    An event with participants cannot be deleted: deactivate it.
    """

    serializer_class = EventSerializer
    filterset_class = EventFilter
    ordering_fields = ["starts_at", "title", "created_at", "id"]
    ordering = ["starts_at", "id"]

    def get_queryset(self):
        return with_seats().prefetch_related("fee_levels", "roles")

    def _reloaded(self, event):
        return self.get_serializer(self.get_queryset().get(pk=event.pk)).data

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = serializer.save()
        return Response(self._reloaded(event), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(
            self.get_object(), data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        return Response(self._reloaded(serializer.save()))

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise InUse()

    @extend_schema(
        request=RegistrationSerializer,
        responses={
            201: ParticipantSerializer(many=True),
            409: OpenApiResponse(description=_("Full, closed, or already registered.")),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires("crm_core.add_participant")],
    )
    def register(self, request, pk=None):
        """Book seats for one or several people (see the register service)."""
        event = self.get_object()
        serializer = RegistrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        participants = services.register(
            event,
            registered_by=data["registered_by"],
            attendees=[dict(attendee) for attendee in data["attendees"]],
            pending_payment=data["pending_payment"],
            actor=request.user,
            source=SOURCE,
        )
        rows = Participant.objects.filter(pk__in=[p.pk for p in participants]).select_related(
            "contact"
        )
        return Response(ParticipantSerializer(rows, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ParticipantSerializer(many=True))
    @action(
        detail=True,
        methods=["post"],
        url_path="promote-waitlist",
        permission_classes=[requires("crm_core.change_participant")],
    )
    def promote_waitlist(self, request, pk=None):
        """Offer free seats to the waiting list; returns who was offered one."""
        offered = services.promote_from_waitlist(
            self.get_object(), actor=request.user, source=SOURCE
        )
        return Response(ParticipantSerializer(offered, many=True).data)

    @extend_schema(responses={(200, "text/calendar"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, ICalendarRenderer])
    def ics(self, request, pk=None):
        """The event as an iCalendar file."""
        event = self.get_object()
        return calendar_response(event_ics(event), f"{event.slug}.ics")

    @extend_schema(responses={(200, "text/calendar"): OpenApiTypes.BINARY}, filters=False)
    @action(detail=False, methods=["get"], renderer_classes=[JSONRenderer, ICalendarRenderer])
    def feed(self, request):
        """Upcoming public events as an iCalendar feed."""
        events = upcoming_public_events()[:FEED_LIMIT]
        return calendar_response(events_feed_ics(events, name=_("Events")), "events.ics")


class EventFeeLevelViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Prices of seats. A level that has been booked cannot be deleted: deactivate it."""

    queryset = EventFeeLevel.objects.select_related("event")
    serializer_class = EventFeeLevelSerializer
    filterset_class = EventFeeLevelFilter
    ordering_fields = ["weight", "amount", "id"]
    ordering = ["event_id", "weight", "amount", "id"]

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise InUse()


class ParticipantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CRMViewSet):
    """Places at events. Status changes only through the actions below."""

    queryset = Participant.objects.filter(contact__is_deleted=False).select_related(
        "contact", "event"
    )
    serializer_class = ParticipantSerializer
    filterset_class = ParticipantFilter
    ordering_fields = ["registered_at", "waitlisted_at", "id"]
    ordering = ["registered_at", "id"]

    def _done(self, participant):
        return Response(self.get_serializer(self.get_queryset().get(pk=participant.pk)).data)

    @extend_schema(request=CancelSerializer, responses=ParticipantSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires("crm_core.change_participant")],
    )
    def cancel(self, request, pk=None):
        """Cancel the place (idempotent); the seat is offered to the waiting list."""
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        participant = services.cancel_registration(
            self.get_object(),
            reason=serializer.validated_data["reason"],
            actor=request.user,
            source=SOURCE,
        )
        return self._done(participant)

    @extend_schema(request=None, responses=ParticipantSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path="check-in",
        permission_classes=[requires("crm_core.check_in_participant")],
    )
    def check_in(self, request, pk=None):
        """Mark a registered participant as attended (idempotent)."""
        return self._done(services.check_in(self.get_object(), actor=request.user, source=SOURCE))

    @extend_schema(request=None, responses=ParticipantSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path="no-show",
        permission_classes=[requires("crm_core.check_in_participant")],
    )
    def no_show(self, request, pk=None):
        """Mark a registered participant as a no-show (idempotent)."""
        return self._done(
            services.mark_no_show(self.get_object(), actor=request.user, source=SOURCE)
        )

    @extend_schema(request=None, responses=ParticipantSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path="accept-offer",
        permission_classes=[requires("crm_core.change_participant")],
    )
    def accept_offer(self, request, pk=None):
        """Take up an open seat offer from the waiting list."""
        return self._done(
            services.accept_waitlist_offer(self.get_object(), actor=request.user, source=SOURCE)
        )


def register(router):
    """Add this module's viewsets to the v1 router."""
    router.register("participant-roles", ParticipantRoleViewSet, basename="participant-role")
    router.register("events", EventViewSet, basename="event")
    router.register("event-fee-levels", EventFeeLevelViewSet, basename="event-fee-level")
    router.register("participants", ParticipantViewSet, basename="participant")
