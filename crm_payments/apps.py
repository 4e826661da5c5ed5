from django.apps import AppConfig


class CrmPaymentsConfig(AppConfig):
    name = "crm_payments"
    verbose_name = "CRM payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import merge

        merge.register()
