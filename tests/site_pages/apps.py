from django.apps import AppConfig


class SitePagesConfig(AppConfig):
    """A site's own page types built on the CRM mixins (tests only)."""

    name = "tests.site_pages"
    label = "site_pages"
    default_auto_field = "django.db.models.BigAutoField"
