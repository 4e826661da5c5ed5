"""URLs of the payments API, mounted by a site next to the core's API.

- ``urlpatterns`` (namespace "crm_payments_api"), mounted at e.g.
  /api/crm/payments/: ``v1/payments/``, ``v1/refunds/``, ``v1/disputes/``,
  ``v1/payment-blocks/``.
- ``contribution_urlpatterns`` (namespace "crm_payments_contributions"):
  the core's ``contributions`` endpoints served by
  ``crm_payments.api.ContributionViewSet``, whose ``refund`` and
  ``complete`` go through crm_payments' services. crm_core cannot import
  crm_payments, so a site mounts these at the core API's ``v1/`` *before*
  the core's own URLs; the first match wins and ``crm_api:contribution-*``
  still reverses to the same addresses::

      path("api/crm/v1/", include(crm_payments.api_urls.contribution_urlpatterns)),
      path("api/crm/", include("crm_core.api.urls")),
      path("api/crm/payments/", include("crm_payments.api_urls")),
"""

from django.urls import include, path, reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import api

app_name = "crm_payments_api"

router = SimpleRouter()
api.register(router)


def only_payments_endpoints(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: document the payments API's v1 only."""
    prefix = reverse("crm_payments_api:payment-list").removesuffix("payments/")
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(prefix)]


urlpatterns = [
    path("v1/", include(router.urls)),
    path(
        "schema/",
        SpectacularAPIView.as_view(
            custom_settings={
                "TITLE": "CRM payments API",
                "DESCRIPTION": "Payments, refunds, disputes and card-testing blocks.",
                "SCHEMA_PATH_PREFIX": r"/api/crm/payments/v1",
                "PREPROCESSING_HOOKS": ["crm_payments.api_urls.only_payments_endpoints"],
            }
        ),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="crm_payments_api:schema"),
        name="docs",
    ),
]

_contributions = SimpleRouter()
_contributions.register("contributions", api.ContributionViewSet, basename="contribution")

contribution_urlpatterns = (_contributions.urls, "crm_payments_contributions")
