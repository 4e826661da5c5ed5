"""Views of the CRM API: thin layers over the services.

Every write of contact data goes through ``crm_core.services`` with
``actor=request.user`` and ``source="api"``; serializers only check the
request. Service errors (Django ``ValidationError``, ``CRMError``) become JSON
4xx responses in ``crm_core.api.errors``.
"""

from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.urls import get_script_prefix, reverse
from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ParseError
from rest_framework.filters import OrderingFilter
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from ..models import (
    Activity,
    ConsentRecord,
    Contact,
    CustomField,
    Group,
    GroupMembership,
    Relationship,
    RelationshipType,
    Tag,
)
from ..services import activities, consent, contacts, groups, relationships
from . import filters, serializers
from .pagination import CRMCursorPagination

SOURCE = "api"


class InUse(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("This is in use; deactivate it instead of deleting it.")
    default_code = "in_use"


class CRMJSONParser(JSONParser):
    """JSON nested too deeply for Python's decoder is a 400 like other bad JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply."))


class CanRestoreContacts(BasePermission):
    """Taking a contact out of the trash needs ``crm_core.restore_contact``."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("crm_core.restore_contact"))


class CRMViewSet(viewsets.GenericViewSet):
    """Filtering, ordering from an allowlist and cursor pagination for every list."""

    filter_backends = [DjangoFilterBackend, OrderingFilter]
    pagination_class = CRMCursorPagination
    parser_classes = [CRMJSONParser, FormParser, MultiPartParser]


# -- contacts -------------------------------------------------------------------------


@extend_schema_view(
    destroy=extend_schema(description=_("Move the contact to the trash (soft delete).")),
)
class ContactViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    CRMViewSet,
):
    """Contacts with their emails, phones, addresses, tags and custom values.

    Contacts in the trash are not listed; ``DELETE`` moves a contact there and
    ``POST .../restore/`` brings it back.
    """

    queryset = Contact.objects.all()
    serializer_class = serializers.ContactSerializer
    filterset_class = filters.ContactFilter
    ordering_fields = ["sort_name", "created_at", "updated_at", "id"]
    ordering = ["sort_name", "id"]

    def get_queryset(self):
        # Only restoring may see the trash.
        manager = Contact.all_objects if self.action == "restore" else Contact.objects
        return manager.with_details()

    def _reloaded(self, contact):
        return self.get_serializer(self.get_queryset().get(pk=contact.pk)).data

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact = contacts.create_contact(
            actor=request.user, source=SOURCE, **serializer.validated_data
        )
        return Response(self._reloaded(contact), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        contact = self.get_object()
        serializer = self.get_serializer(
            contact, data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        contacts.update_contact(
            contact, actor=request.user, source=SOURCE, **serializer.validated_data
        )
        return Response(self._reloaded(contact))

    def perform_destroy(self, instance):
        contacts.trash_contact(instance, actor=self.request.user, source=SOURCE)

    @extend_schema(request=None, responses=serializers.ContactSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CanRestoreContacts])
    def restore(self, request, pk=None):
        """Bring a contact back from the trash (idempotent)."""
        contact = contacts.restore_contact(self.get_object(), actor=request.user, source=SOURCE)
        return Response(self._reloaded(contact))


# -- groups and tags ------------------------------------------------------------------


class GroupViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    CRMViewSet,
):
    """Static groups. A group that has had members cannot be deleted: deactivate it."""

    queryset = Group.objects.all()
    serializer_class = serializers.GroupSerializer
    filterset_class = filters.GroupFilter
    ordering_fields = ["name", "created_at", "id"]
    ordering = ["name", "id"]

    def perform_destroy(self, instance):
        # Deleting would erase the membership history of every contact in it.
        if instance.memberships.exists():
            raise InUse()
        instance.delete()


@extend_schema_view(
    create=extend_schema(
        description=_(
            "Add a contact to a group. Idempotent: 201 when added, 200 with the "
            "current membership when the contact is already in the group."
        ),
        responses={
            201: serializers.GroupMembershipSerializer,
            200: serializers.GroupMembershipSerializer,
        },
    ),
    destroy=extend_schema(
        description=_(
            "Remove the contact from the group. The membership stays as history, "
            "with ``left_at`` set."
        )
    ),
)
class GroupMembershipViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    CRMViewSet,
):
    """Spells of contacts in groups; ``?current=true`` lists current members only."""

    queryset = GroupMembership.objects.filter(contact__is_deleted=False)
    serializer_class = serializers.GroupMembershipSerializer
    filterset_class = filters.GroupMembershipFilter
    ordering_fields = ["joined_at", "id"]
    ordering = ["-joined_at", "-id"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership, added = groups.add_to_group(
            serializer.validated_data["contact"],
            serializer.validated_data["group"],
            actor=request.user,
            source=SOURCE,
        )
        return Response(
            self.get_serializer(membership).data,
            status=status.HTTP_201_CREATED if added else status.HTTP_200_OK,
        )

    def perform_destroy(self, instance):
        # A past spell is already closed; closing "the current one" from it
        # could end a later membership the client did not name.
        if instance.is_current:
            groups.remove_from_group(
                instance.contact, instance.group, actor=self.request.user, source=SOURCE
            )


class TagViewSet(viewsets.ModelViewSet, CRMViewSet):
    queryset = Tag.objects.all()
    serializer_class = serializers.TagSerializer
    filterset_class = filters.TagFilter
    ordering_fields = ["name", "slug", "id"]
    ordering = ["name", "id"]


# -- relationships -----------------------------------------------------------------------


class RelationshipTypeViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Kinds of relationship. A type in use cannot be deleted: deactivate it."""

    queryset = RelationshipType.objects.all()
    serializer_class = serializers.RelationshipTypeSerializer
    filterset_class = filters.RelationshipTypeFilter
    ordering_fields = ["label_a_to_b", "slug", "id"]
    ordering = ["label_a_to_b", "id"]

    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise InUse()


class RelationshipViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Typed, directional relationships: contact A "label_a_to_b" contact B."""

    queryset = Relationship.objects.filter(
        contact_a__is_deleted=False, contact_b__is_deleted=False
    ).select_related("relationship_type", "contact_a", "contact_b")
    serializer_class = serializers.RelationshipSerializer
    filterset_class = filters.RelationshipFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]

    def perform_create(self, serializer):
        serializer.instance = relationships.create_relationship(
            actor=self.request.user, source=SOURCE, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = relationships.update_relationship(
            serializer.instance, actor=self.request.user, source=SOURCE, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        relationships.delete_relationship(instance, actor=self.request.user, source=SOURCE)


# -- activities -----------------------------------------------------------------------------


@extend_schema_view(
    update=extend_schema(description=_("Edit a logged activity; system events are read-only.")),
    partial_update=extend_schema(
        description=_("Edit a logged activity; system events are read-only.")
    ),
    destroy=extend_schema(
        description=_("Delete a logged activity; system events are history and stay.")
    ),
)
class ActivityViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Contacts' timelines: notes, calls, meetings, tasks, volunteer hours and
    the system events every change records."""

    queryset = Activity.objects.filter(contact__is_deleted=False)
    serializer_class = serializers.ActivitySerializer
    filterset_class = filters.ActivityFilter
    ordering_fields = ["occurred_at", "created_at", "id"]
    ordering = ["-occurred_at", "-id"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = activities.log_activity(
            data.pop("contact"), actor=self.request.user, source=SOURCE, **data
        )

    def perform_update(self, serializer):
        activity = serializer.instance
        data = dict(serializer.validated_data)
        # Sent back unchanged (GET, edit, PUT) they are fine; changed, they are not.
        fixed = {"contact": activity.contact, "activity_type": activity.activity_type}
        changed = {name for name, value in fixed.items() if name in data and data[name] != value}
        if changed:
            raise ValidationError({name: [_("This cannot be changed.")] for name in changed})
        for name in fixed:
            data.pop(name, None)
        serializer.instance = activities.update_activity(
            activity, actor=self.request.user, source=SOURCE, **data
        )

    def perform_destroy(self, instance):
        activities.delete_activity(instance, actor=self.request.user, source=SOURCE)


# -- custom fields and consent ----------------------------------------------------------------


class CustomFieldViewSet(viewsets.ModelViewSet, CRMViewSet):
    """Definitions of custom fields. A field with values cannot be deleted: deactivate it."""

    queryset = CustomField.objects.all()
    serializer_class = serializers.CustomFieldSerializer
    filterset_class = filters.CustomFieldFilter
    ordering_fields = ["weight", "label", "name", "id"]
    ordering = ["weight", "label", "id"]

    def perform_destroy(self, instance):
        # Deleting would erase every contact's value of the field.
        if instance.values.exists():
            raise InUse()
        instance.delete()


class ConsentRecordViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    CRMViewSet,
):
    """Consent given or withdrawn. Records are only appended: no edit, no delete."""

    queryset = ConsentRecord.objects.filter(contact__is_deleted=False)
    serializer_class = serializers.ConsentRecordSerializer
    filterset_class = filters.ConsentRecordFilter
    ordering_fields = ["recorded_at", "id"]
    ordering = ["-recorded_at", "-id"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = consent.record_consent(
            data.pop("contact"), actor=self.request.user, source=SOURCE, **data
        )


# -- schema ------------------------------------------------------------------------------------


def only_crm_api_endpoints(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: document our v1 API, not the whole site."""
    contacts_url = reverse("crm_api:contact-list")
    prefix = "/" + contacts_url[len(get_script_prefix()) :].removesuffix("contacts/")
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(prefix)]
