"""Panels of the CRM dashboard on the Wagtail admin home page.

Built like Wagtail's own home panels (``wagtail.admin.views.home``):
components added through the ``construct_homepage_panels`` hook. A panel
is left out for staff who may not view its model, and reads its figures
from ``crm_core.selectors.dashboard`` (a fixed number of queries each).
"""

from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.components import Component
from wagtail.permissions import policy_registry

from crm_core.models import Contact, Contribution, Event, Membership
from crm_core.selectors import dashboard

EXPIRY_DAYS = 30


def can_view(user, model):
    return policy_registry.get_by_type(model).user_has_permission(user, "view")


class CRMDashboardPanel(Component):
    """A home page panel shown only to staff who may view ``model``."""

    model = None
    heading = ""

    def get_context_data(self, parent_context):
        user = parent_context["request"].user
        return {
            "heading": self.heading,
            "panel_id": self.name.replace("_", "-"),
            "can_view_contacts": can_view(user, Contact),
            **self.get_figures(parent_context),
        }

    def get_figures(self, parent_context):
        raise NotImplementedError

    def render_html(self, parent_context=None):
        if not can_view(parent_context["request"].user, self.model):
            return ""
        return super().render_html(parent_context)


class IncomePanel(CRMDashboardPanel):
    name = "crm_income"
    order = 50
    model = Contribution
    heading = _("Income")
    template_name = "crm_wagtail/dashboard/income.html"

    def get_figures(self, parent_context):
        return {"rows": dashboard.income_by_month()}


class RecentContributionsPanel(CRMDashboardPanel):
    name = "crm_recent_contributions"
    order = 60
    model = Contribution
    heading = _("Recent contributions")
    template_name = "crm_wagtail/dashboard/recent_contributions.html"

    def get_figures(self, parent_context):
        return {"contributions": dashboard.recent_contributions(limit=10)}


class ExpiringMembershipsPanel(CRMDashboardPanel):
    name = "crm_expiring_memberships"
    order = 70
    model = Membership
    heading = _("Memberships expiring in the next 30 days")
    template_name = "crm_wagtail/dashboard/expiring_memberships.html"

    def get_figures(self, parent_context):
        count, memberships = dashboard.expiring_memberships(days=EXPIRY_DAYS, limit=10)
        return {"count": count, "memberships": memberships}


class UpcomingEventsPanel(CRMDashboardPanel):
    name = "crm_upcoming_events"
    order = 80
    model = Event
    heading = _("Upcoming events")
    template_name = "crm_wagtail/dashboard/upcoming_events.html"

    def get_figures(self, parent_context):
        user = parent_context["request"].user
        return {
            "events": dashboard.upcoming_events(limit=5),
            "can_edit_events": policy_registry.get_by_type(Event).user_has_permission(
                user, "change"
            ),
        }


class NewContactsPanel(CRMDashboardPanel):
    name = "crm_new_contacts"
    order = 90
    model = Contact
    heading = _("New contacts")
    template_name = "crm_wagtail/dashboard/new_contacts.html"

    def get_figures(self, parent_context):
        return dashboard.new_contacts(limit=5)


DASHBOARD_PANELS = (
    IncomePanel,
    RecentContributionsPanel,
    ExpiringMembershipsPanel,
    UpcomingEventsPanel,
    NewContactsPanel,
)


def add_dashboard_panels(request, panels):
    """``construct_homepage_panels`` hook: the CRM panels, each permission-checked."""
    panels.extend(panel() for panel in DASHBOARD_PANELS)
