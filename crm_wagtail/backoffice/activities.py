"""Timeline entries: staff log notes, calls, tasks and hours; system events are history."""

from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn, UserColumn

from crm_core.models import USER_ACTIVITY_TYPES, Activity, ActivityType
from crm_core.services.activities import delete_activity, log_activity, update_activity

from .choosers import CRMSnippetViewSet
from .service_views import (
    ContactPrefillMixin,
    NoBulkActionsIndexView,
    ServiceCreateView,
    ServiceDeleteView,
    ServiceEditView,
)

SOURCE = "admin"
EDITABLE_FIELDS = [
    "subject",
    "details",
    "occurred_at",
    "status",
    "assignee",
    "due_date",
    "duration",
]


class ActivityAdminForm(WagtailAdminModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "activity_type" in self.fields:
            self.fields["activity_type"].choices = [
                (value, label)
                for value, label in ActivityType.choices
                if value in USER_ACTIVITY_TYPES
            ]
        if self.instance.pk:
            # Which contact and what kind of entry it is are fixed once logged.
            for name in ("contact", "activity_type"):
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[name].required = False


class ActivityCreateView(ContactPrefillMixin, ServiceCreateView):
    def save_with_service(self):
        data = self.form.cleaned_data
        return log_activity(
            data["contact"],
            activity_type=data["activity_type"],
            actor=self.request.user,
            source=SOURCE,
            **{name: data[name] for name in EDITABLE_FIELDS},
        )


class ActivityEditView(ServiceEditView):
    def save_with_service(self):
        data = self.form.cleaned_data
        # A fresh row: the form has already written its values onto self.object.
        activity = Activity.objects.get(pk=self.object.pk)
        return update_activity(
            activity,
            actor=self.request.user,
            source=SOURCE,
            **{name: data[name] for name in EDITABLE_FIELDS},
        )


class ActivityDeleteView(ServiceDeleteView):
    def delete_with_service(self):
        delete_activity(self.object, actor=self.request.user, source=SOURCE)


class ActivityViewSet(CRMSnippetViewSet):
    model = Activity
    icon = "list-ul"
    menu_label = _("Activities")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    add_view_class = ActivityCreateView
    edit_view_class = ActivityEditView
    delete_view_class = ActivityDeleteView
    list_filter = ["activity_type", "status"]
    search_fields = ["subject", "contact__display_name"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "subject",
        Column("contact", label=_("Contact"), accessor="contact"),
        Column("activity_type", label=_("Type"), accessor="get_activity_type_display"),
        Column("status", label=_("Status"), accessor="get_status_display"),
        UserColumn("assignee", label=_("Assigned to")),
        DateColumn("occurred_at", label=_("When"), sort_key="occurred_at"),
    ]
    edit_handler = ObjectList(
        [
            FieldPanel("contact"),
            FieldPanel("activity_type"),
            FieldPanel("subject"),
            FieldPanel("details"),
            FieldRowPanel([FieldPanel("occurred_at"), FieldPanel("status")]),
            FieldRowPanel([FieldPanel("assignee"), FieldPanel("due_date")]),
            FieldPanel("duration"),
        ],
        base_form_class=ActivityAdminForm,
    )

    def get_queryset(self, request):
        return Activity.objects.select_related("contact", "assignee", "created_by")
