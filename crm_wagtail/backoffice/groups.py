"""Groups, tags and the group membership history."""

from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.tables import Column, DateColumn

from crm_core.models import Group, GroupMembership, Tag

from .choosers import CRMSnippetViewSet
from .service_views import NoBulkActionsIndexView


class GroupViewSet(CRMSnippetViewSet):
    model = Group
    icon = "group"
    menu_label = _("Groups")
    add_to_reference_index = False
    search_fields = ["name"]
    search_backend_name = None
    list_display = ["name", "slug", "is_active"]
    list_filter = ["is_active"]
    form_fields = ["name", "slug", "description", "is_active"]


class TagViewSet(CRMSnippetViewSet):
    model = Tag
    icon = "tag"
    menu_label = _("Tags")
    add_to_reference_index = False
    search_fields = ["name"]
    search_backend_name = None
    list_display = ["name", "slug", "description"]
    form_fields = ["name", "slug", "description"]


class GroupMembershipViewSet(CRMSnippetViewSet):
    """Read-only: memberships are written by add_to_group / remove_from_group."""

    model = GroupMembership
    icon = "group"
    menu_label = _("Group memberships")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    list_filter = ["group"]
    search_fields = ["contact__display_name"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        Column("contact", label=_("Contact"), accessor="contact"),
        Column("group", label=_("Group"), accessor="group"),
        DateColumn("joined_at", label=_("Joined"), sort_key="joined_at"),
        DateColumn("left_at", label=_("Left"), sort_key="left_at"),
        Column("source", label=_("Source")),
    ]

    def get_queryset(self, request):
        return GroupMembership.objects.select_related("contact", "group")
