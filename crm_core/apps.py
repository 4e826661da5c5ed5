from django.apps import AppConfig


class CrmCoreConfig(AppConfig):
    name = "crm_core"
    verbose_name = "CRM core"
    default_auto_field = "django.db.models.BigAutoField"
