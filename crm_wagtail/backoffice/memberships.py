"""Admin screens for memberships: types, memberships and status rules.

Every change of a membership goes through ``crm_core.services.memberships``:
the add form joins, the edit form changes the type, and renewing and
cancelling have small forms of their own (linked from each row's "More"
menu). Memberships are history: they are never deleted here.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.forms import modelform_factory
from django.http import HttpResponseForbidden
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.ui.menus import MenuItem
from wagtail.admin.ui.tables import Column
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import SnippetViewSetGroup

from crm_core.exceptions import CRMError
from crm_core.models import Contact, Membership, MembershipStatusRule, MembershipType
from crm_core.services import memberships as services

from .choosers import CRMSnippetViewSet, SafeSnippetChooser
from .columns import CalendarDateColumn
from .service_views import (
    ContactPrefillMixin,
    NoBulkActionsIndexView,
    ServiceActionView,
    ServiceCreateView,
    ServiceDeleteView,
    ServiceEditView,
    safe_next_url,
)

SOURCE = "admin"


class RefusingPermissionPolicy(ModelPermissionPolicy):
    """Model permissions with some actions refused to everyone, superusers included."""

    def __init__(self, model, refused):
        super().__init__(model)
        self.refused = frozenset(refused)

    def user_has_permission(self, user, action):
        if action in self.refused:
            return False
        return super().user_has_permission(user, action)

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, action) for action in actions)

    def users_with_any_permission(self, actions):
        return super().users_with_any_permission([a for a in actions if a not in self.refused])


# -- membership types -------------------------------------------------------------------


class MembershipTypeDeleteView(ServiceDeleteView):
    def delete_with_service(self):
        try:
            self.object.delete()
        except ProtectedError:
            raise ValidationError(
                _("This membership type has memberships; deactivate it instead.")
            ) from None


class MembershipTypeViewSet(CRMSnippetViewSet):
    model = MembershipType
    icon = "tag"
    menu_label = _("Membership types")
    add_to_reference_index = False
    copy_view_enabled = False
    index_view_class = NoBulkActionsIndexView
    delete_view_class = MembershipTypeDeleteView
    list_display = ["name", "fee", "currency", "duration_unit", "period_type", "is_active"]
    list_filter = ["is_active", "period_type"]
    form_fields = [
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


# -- memberships ------------------------------------------------------------------------

JOIN_FIELDS = ["contact", "membership_type", "join_date", "start_date", "auto_renew"]


class CRMErrorMixin:
    """A business-rule refusal (``CRMError``) is shown to staff, not raised."""

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except CRMError as error:
            form.add_error(None, error.message)
            self.produced_error_code = error.code
            self.produced_error_message = error.message
            return self.form_invalid(form)


class MembershipCreateView(ContactPrefillMixin, CRMErrorMixin, ServiceCreateView):
    def save_with_service(self):
        data = self.form.cleaned_data
        return services.join(
            data["contact"],
            data["membership_type"],
            join_date=data.get("join_date"),
            start_date=data.get("start_date"),
            auto_renew=data.get("auto_renew", False),
            actor=self.request.user,
            source=SOURCE,
        )


class MembershipEditView(CRMErrorMixin, ServiceEditView):
    """Only the type can be edited; dates and status follow the services."""

    def save_with_service(self):
        membership = Membership.objects.get(pk=self.object.pk)
        return services.change_type(
            membership,
            self.form.cleaned_data["membership_type"],
            actor=self.request.user,
            source=SOURCE,
        )


class MembershipIndexView(NoBulkActionsIndexView):
    def get_list_more_buttons(self, instance):
        buttons = super().get_list_more_buttons(instance)
        user = self.request.user
        # Offer only what the services would accept for this membership.
        live = instance.status not in CLOSED_STATUSES and not instance.inherited_from_id
        renewable = live and instance.status != "pending" and instance.end_date is not None
        if renewable and user.has_perm("crm_core.renew_membership"):
            buttons.append(
                MenuItem(
                    _("Renew"),
                    url=reverse("crm_membership_renew", args=[instance.pk]),
                    icon_name="repeat",
                    priority=30,
                )
            )
        if live and user.has_perm("crm_core.change_membership"):
            buttons.append(
                MenuItem(
                    _("Cancel membership"),
                    url=reverse("crm_membership_cancel", args=[instance.pk]),
                    icon_name="cross",
                    priority=40,
                )
            )
        return buttons


CLOSED_STATUSES = ("cancelled", "deceased")


class RenewForm(forms.Form):
    terms = forms.IntegerField(
        label=_("Terms"), min_value=1, max_value=services.MAX_TERMS, initial=1
    )


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=255, required=False)


class MembershipActionView(ServiceActionView):
    """An action on a membership; back to the list afterwards, or to ``?next=``
    (the contact's summary, when the action was started there)."""

    header_icon = "group"

    def get_queryset(self):
        return Membership.objects.select_related("contact", "membership_type")

    def get_page_subtitle(self):
        return f"{self.object.contact.display_name}: {self.object}"

    def get_success_url(self):
        return safe_next_url(self.request) or reverse("wagtailsnippets_crm_core_membership:list")


class MembershipRenewView(MembershipActionView):
    page_title = _("Renew membership")
    permission = "crm_core.renew_membership"
    form_class = RenewForm
    submit_button_label = _("Renew")
    success_message = _("Membership renewed.")

    def call_service(self, data):
        services.renew(self.object, terms=data["terms"], actor=self.request.user, source=SOURCE)


class MembershipCancelView(MembershipActionView):
    page_title = _("Cancel membership")
    permission = "crm_core.change_membership"
    form_class = CancelForm
    submit_button_label = _("Cancel membership")
    success_message = _("Membership cancelled.")

    def call_service(self, data):
        services.cancel(self.object, reason=data["reason"], actor=self.request.user, source=SOURCE)


class MembershipViewSet(CRMSnippetViewSet):
    model = Membership
    ordering = "-start_date"
    icon = "group"
    menu_label = _("Memberships")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = MembershipIndexView
    add_view_class = MembershipCreateView
    edit_view_class = MembershipEditView
    list_filter = ["status", "membership_type"]
    search_fields = ["contact__display_name"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "contact",  # the title column: links to the record and carries its row menu
        Column("membership_type", label=_("Type"), accessor="membership_type"),
        Column("status", label=_("Status"), accessor="get_status_display"),
        CalendarDateColumn("start_date", label=_("Start date")),
        CalendarDateColumn("end_date", label=_("End date")),
    ]

    def get_queryset(self, request):
        return Membership.objects.select_related("contact", "membership_type")

    def get_form_class(self, for_update=False):
        # Adding joins (the service validates and saves); editing only moves
        # the membership to another type.
        fields = ["membership_type"] if for_update else JOIN_FIELDS
        return modelform_factory(
            Membership,
            form=MembershipForm,
            formfield_callback=self.formfield_for_dbfield,
            fields=fields,
            # A chooser with search, not a list of every contact in the database.
            widgets={"contact": SafeSnippetChooser(Contact)},
        )


class MembershipForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Left blank, the service uses today and the join date.
        for name in ("join_date", "start_date"):
            if name in self.fields:
                self.fields[name].required = False

    def _post_clean(self):
        # The service validates and saves; the model form's full_clean would
        # check a half-built membership (no status, no end date yet).
        pass


class MembershipStatusRuleViewSet(CRMSnippetViewSet):
    model = MembershipStatusRule
    icon = "list-ul"
    menu_label = _("Status rules")
    add_to_reference_index = False
    copy_view_enabled = False
    index_view_class = NoBulkActionsIndexView
    list_display = ["status", "start_event", "end_event", "weight", "is_active"]
    form_fields = [
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


class MembershipsViewSetGroup(SnippetViewSetGroup):
    menu_label = _("Memberships")
    menu_icon = "group"
    menu_order = 151
    items = (MembershipViewSet, MembershipTypeViewSet, MembershipStatusRuleViewSet)


def refuse_bulk_actions_on_memberships(request, action_type, objects, action):
    if getattr(action, "model", None) is Membership:
        return HttpResponseForbidden(_("Change memberships one at a time."))
    return None


def membership_action_urls():
    return [
        path(
            "crm/memberships/<int:pk>/renew/",
            MembershipRenewView.as_view(),
            name="crm_membership_renew",
        ),
        path(
            "crm/memberships/<int:pk>/cancel/",
            MembershipCancelView.as_view(),
            name="crm_membership_cancel",
        ),
    ]


def register():
    """Register this module's viewsets with the Wagtail admin."""
    register_permission_policy(Membership, RefusingPermissionPolicy(Membership, {"delete"}))
    register_permission_policy(
        MembershipStatusRule, RefusingPermissionPolicy(MembershipStatusRule, {"add", "delete"})
    )
    register_snippet(MembershipsViewSetGroup)
    hooks.register("before_bulk_action", refuse_bulk_actions_on_memberships)
    hooks.register("register_admin_urls", membership_action_urls)
