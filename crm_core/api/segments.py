"""API of smart groups: read-only, with the contacts each one matches.

Smart groups are built in the back office; here they are listed, and
``GET .../smart-groups/<id>/contacts/`` pages through the contacts matching
one (the same ``ContactSerializer`` as ``/contacts/``, a fixed number of
queries per page). Criteria that no longer hold (a group they name was
deleted) give a 400 naming the criterion, never a 500.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action

from ..models import SmartGroup
from ..selectors.segments import segment_contacts
from .pagination import CRMCursorPagination
from .permissions import CRMModelPermissions, requires
from .serializers import ContactSerializer
from .views import CRMViewSet


class SmartGroupSerializer(serializers.ModelSerializer):
    criteria = serializers.JSONField(
        read_only=True, help_text=_("The saved search; see docs/communications.md.")
    )

    class Meta:
        model = SmartGroup
        fields = ["id", "name", "slug", "description", "criteria", "created_at", "updated_at"]
        read_only_fields = fields


class SmartGroupContactsPagination(CRMCursorPagination):
    """Contacts of a smart group, by sort name; the group's own ordering does not apply."""

    ordering = ("sort_name", "id")

    def get_ordering(self, request, queryset, view):
        return self.ordering


class SmartGroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, CRMViewSet):
    """Smart groups (saved searches over contacts). Read-only: edit them in the back office."""

    queryset = SmartGroup.objects.all()
    serializer_class = SmartGroupSerializer
    filterset_fields = ["slug"]
    ordering_fields = ["name", "created_at", "id"]
    ordering = ["name", "id"]

    @extend_schema(responses=ContactSerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        permission_classes=[CRMModelPermissions, requires("crm_core.view_contact")],
        filter_backends=[],
        pagination_class=SmartGroupContactsPagination,
        serializer_class=ContactSerializer,
    )
    def contacts(self, request, pk=None):
        """Contacts matching the smart group now, by sort name (cursor pagination)."""
        smart_group = self.get_object()
        # A ValidationError here becomes a 400 in crm_core.api.errors.
        queryset = segment_contacts(smart_group.criteria).with_details()
        page = self.paginate_queryset(queryset)
        serializer = ContactSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(serializer.data)


def register(router):
    """Add this module's viewsets to the v1 router."""
    router.register("smart-groups", SmartGroupViewSet, basename="smart-group")
