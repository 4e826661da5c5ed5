from django.apps import AppConfig


class CrmFormsConfig(AppConfig):
    name = "crm_forms"
    verbose_name = "CRM forms"
    default_auto_field = "django.db.models.BigAutoField"
