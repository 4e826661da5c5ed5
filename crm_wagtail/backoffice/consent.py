"""Consent records: shown, never added, edited or deleted from the admin."""

from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.tables import Column, DateColumn

from crm_core.models import ConsentRecord

from .choosers import CRMSnippetViewSet
from .service_views import NoBulkActionsIndexView


class ConsentRecordViewSet(CRMSnippetViewSet):
    model = ConsentRecord
    icon = "doc-full"
    menu_label = _("Consent records")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = NoBulkActionsIndexView
    list_filter = ["channel", "granted", "purpose"]
    search_fields = ["contact__display_name", "purpose"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "__str__",
        Column("contact", label=_("Contact"), accessor="contact"),
        Column("source", label=_("Source")),
        DateColumn("recorded_at", label=_("Recorded"), sort_key="recorded_at"),
    ]

    def get_queryset(self, request):
        return ConsentRecord.objects.select_related("contact")
