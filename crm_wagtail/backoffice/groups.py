"""Groups, tags and the group membership history."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn

from crm_core.models import Group, GroupMembership, Tag
from crm_core.services.groups import add_to_group

from .choosers import CRMSnippetViewSet
from .service_views import ContactPrefillMixin, NoBulkActionsIndexView, ServiceCreateView

SOURCE = "admin"


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


class GroupMembershipAddForm(WagtailAdminModelForm):
    """A contact and an active group; ``add_to_group`` validates and saves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "group" in self.fields:
            self.fields["group"].queryset = Group.objects.filter(is_active=True)

    def validate_unique(self):
        # "Already in the group" is the service's answer, worded for staff.
        pass


class GroupMembershipCreateView(ContactPrefillMixin, ServiceCreateView):
    """Add a contact to a group through ``add_to_group`` (history, timeline entry)."""

    def save_with_service(self):
        data = self.form.cleaned_data
        membership, added = add_to_group(
            data["contact"], data["group"], actor=self.request.user, source=SOURCE
        )
        if not added:
            raise ValidationError(
                {"group": [gettext("%(contact)s is in this group already.") % data]}
            )
        return membership


class GroupMembershipViewSet(CRMSnippetViewSet):
    """Memberships are added with add_to_group and never edited or deleted here:
    the rows are the history (``remove_from_group`` closes one)."""

    model = GroupMembership
    icon = "group"
    menu_label = _("Group memberships")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    add_view_class = GroupMembershipCreateView
    edit_handler = ObjectList(
        [FieldPanel("contact"), FieldPanel("group")], base_form_class=GroupMembershipAddForm
    )
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
