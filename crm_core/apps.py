from django.apps import AppConfig


class CrmCoreConfig(AppConfig):
    name = "crm_core"
    verbose_name = "CRM core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from anymail.signals import pre_send, tracking
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401 - registers the system checks
        from .selectors.contacts import set_search_threshold
        from .signals import add_mailing_metadata, apply_tracking_event

        connection_created.connect(set_search_threshold, dispatch_uid="crm_search_threshold")
        # Bounces and complaints from an ESP's webhooks (docs/communications.md).
        tracking.connect(apply_tracking_event, dispatch_uid="crm_bounces_tracking")
        pre_send.connect(add_mailing_metadata, dispatch_uid="crm_mailing_metadata")
