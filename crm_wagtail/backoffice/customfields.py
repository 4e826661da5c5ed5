"""Custom field definitions staff add for contacts."""

from django.utils.translation import gettext_lazy as _

from crm_core.models import CustomField

from .choosers import CRMSnippetViewSet


class CustomFieldViewSet(CRMSnippetViewSet):
    model = CustomField
    icon = "form"
    menu_label = _("Custom fields")
    add_to_reference_index = False
    search_fields = ["label", "name"]
    search_backend_name = None
    list_display = ["label", "name", "field_type", "applies_to", "is_active"]
    list_filter = ["field_type", "is_active"]
    form_fields = [
        "label",
        "name",
        "field_type",
        "choices",
        "currency",
        "applies_to",
        "is_required",
        "is_active",
        "help_text",
        "weight",
    ]
