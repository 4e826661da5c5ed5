"""Registers the CRM back office in the Wagtail admin: one "CRM" menu."""

from django.http import HttpResponseForbidden
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import SnippetViewSetGroup

from crm_core.models import Activity, ConsentRecord, Contact, GroupMembership, Relationship

from .backoffice import contributions, events, memberships, payments
from .backoffice import mailings as mailing_admin
from .backoffice.activities import ActivityViewSet
from .backoffice.bulk_actions import is_service_bulk_action
from .backoffice.bulk_actions import register as register_bulk_actions
from .backoffice.checkin import register as register_checkin
from .backoffice.consent import ConsentRecordViewSet
from .backoffice.contacts import ContactViewSet
from .backoffice.customfields import CustomFieldViewSet
from .backoffice.dashboard import add_dashboard_panels
from .backoffice.duplicates import DataQualityViewSetGroup
from .backoffice.duplicates import register as register_data_quality
from .backoffice.groups import GroupMembershipViewSet, GroupViewSet, TagViewSet
from .backoffice.imports import register as register_imports
from .backoffice.permissions import ReadOnlyPermissionPolicy
from .backoffice.receipts import register as register_receipts
from .backoffice.relationships import RelationshipTypeViewSet, RelationshipViewSet
from .backoffice.reports import register as register_reports
from .backoffice.segments import register as register_smart_groups

# Rows whose changes must go through a service (history, soft delete) or
# that are never changed: Wagtail's generic bulk actions would bypass that.
SERVICE_WRITTEN_MODELS = (Contact, Activity, Relationship, ConsentRecord, GroupMembership)


class CRMViewSetGroup(SnippetViewSetGroup):
    menu_label = _("CRM")
    menu_icon = "group"
    menu_order = 150
    items = (
        ContactViewSet,
        ActivityViewSet,
        RelationshipViewSet,
        GroupViewSet,
        GroupMembershipViewSet,
        TagViewSet,
        RelationshipTypeViewSet,
        CustomFieldViewSet,
        ConsentRecordViewSet,
    )


register_permission_policy(ConsentRecord, ReadOnlyPermissionPolicy(ConsentRecord))
# Added through add_to_group (the add view); never edited or deleted: the rows are history.
register_permission_policy(
    GroupMembership, contributions.AddAndViewOnlyPermissionPolicy(GroupMembership)
)
register_snippet(CRMViewSetGroup)
register_imports(DataQualityViewSetGroup)
register_data_quality()
memberships.register()
events.register()
contributions.register()
payments.register()
mailing_admin.register()
register_smart_groups()
register_checkin()
register_reports()
register_receipts()
register_bulk_actions(SERVICE_WRITTEN_MODELS)


@hooks.register("before_bulk_action")
def refuse_bulk_actions_on_service_written_models(request, action_type, objects, action):
    # Our own bulk actions (bulk_actions.py) go through the services.
    if getattr(action, "model", None) in SERVICE_WRITTEN_MODELS and not is_service_bulk_action(
        action
    ):
        return HttpResponseForbidden(_("Change these records one at a time."))
    return None


hooks.register("construct_homepage_panels", add_dashboard_panels)
