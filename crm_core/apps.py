from django.apps import AppConfig


class CrmCoreConfig(AppConfig):
    name = "crm_core"
    verbose_name = "CRM core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401 - registers the system checks
        from .selectors.contacts import set_search_threshold

        connection_created.connect(set_search_threshold, dispatch_uid="crm_search_threshold")
