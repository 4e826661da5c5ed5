"""Relationships between contacts, and the types staff define for them."""

from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.tables import Column, DateColumn

from crm_core.models import Relationship, RelationshipType
from crm_core.services.relationships import (
    UPDATABLE,
    create_relationship,
    delete_relationship,
    update_relationship,
)

from .choosers import CRMSnippetViewSet
from .service_views import (
    NoBulkActionsIndexView,
    ServiceCreateView,
    ServiceDeleteView,
    ServiceEditView,
)

SOURCE = "admin"
FORM_FIELDS = [
    "relationship_type",
    "contact_a",
    "contact_b",
    "start_date",
    "end_date",
    "is_active",
    "description",
]


class RelationshipCreateView(ServiceCreateView):
    def save_with_service(self):
        data = self.form.cleaned_data
        return create_relationship(
            actor=self.request.user, source=SOURCE, **{name: data[name] for name in FORM_FIELDS}
        )


class RelationshipEditView(ServiceEditView):
    def save_with_service(self):
        data = self.form.cleaned_data
        # A fresh row, so the service sees the stored values and logs the changes.
        relationship = Relationship.objects.get(pk=self.object.pk)
        return update_relationship(
            relationship,
            actor=self.request.user,
            source=SOURCE,
            **{name: data[name] for name in FORM_FIELDS if name in UPDATABLE},
        )


class RelationshipDeleteView(ServiceDeleteView):
    def delete_with_service(self):
        delete_relationship(self.object, actor=self.request.user, source=SOURCE)


class RelationshipViewSet(CRMSnippetViewSet):
    model = Relationship
    icon = "link"
    menu_label = _("Relationships")
    add_to_reference_index = False
    copy_view_enabled = False
    index_view_class = NoBulkActionsIndexView
    add_view_class = RelationshipCreateView
    edit_view_class = RelationshipEditView
    delete_view_class = RelationshipDeleteView
    form_fields = FORM_FIELDS
    list_filter = ["relationship_type", "is_active"]
    search_fields = ["contact_a__display_name", "contact_b__display_name"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "__str__",
        Column("relationship_type", label=_("Type"), accessor="relationship_type.label_a_to_b"),
        DateColumn("start_date", label=_("Start date"), sort_key="start_date"),
        Column("is_active", label=_("Active"), accessor="is_active"),
    ]

    def get_queryset(self, request):
        return Relationship.objects.select_related("relationship_type", "contact_a", "contact_b")


class RelationshipTypeViewSet(CRMSnippetViewSet):
    model = RelationshipType
    icon = "list-ul"
    menu_label = _("Relationship types")
    add_to_reference_index = False
    list_display = ["label_a_to_b", "label_b_to_a", "contact_kind_a", "contact_kind_b", "is_active"]
    form_fields = [
        "label_a_to_b",
        "label_b_to_a",
        "slug",
        "contact_kind_a",
        "contact_kind_b",
        "description",
        "is_active",
    ]
