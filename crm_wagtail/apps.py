from django.apps import AppConfig


class CrmWagtailConfig(AppConfig):
    name = "crm_wagtail"
    verbose_name = "CRM for Wagtail"
    default_auto_field = "django.db.models.BigAutoField"
