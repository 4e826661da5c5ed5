from django.apps import AppConfig


class CrmWagtailConfig(AppConfig):
    name = "crm_wagtail"
    verbose_name = "CRM for Wagtail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from crm_forms.placement import register_placement_resolver

        from .placements import resolve_wagtail_placement

        register_placement_resolver(resolve_wagtail_placement)
