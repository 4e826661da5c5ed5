"""URLs of the CRM API, mounted by a site at e.g. /api/crm/ (namespace "crm_api").

- ``v1/...``: the resources (``crm_api:contact-list``, ``crm_api:contact-detail``, ...);
- ``schema/``: the OpenAPI document of v1 (YAML, or JSON with ``?format=json``);
- ``docs/``: Swagger UI over it, with no inline script and assets from the sidecar.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import contributions, events, memberships, segments, views

app_name = "crm_api"

router = SimpleRouter()
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("groups", views.GroupViewSet, basename="group")
router.register("group-memberships", views.GroupMembershipViewSet, basename="group-membership")
router.register("tags", views.TagViewSet, basename="tag")
router.register("relationship-types", views.RelationshipTypeViewSet, basename="relationship-type")
router.register("relationships", views.RelationshipViewSet, basename="relationship")
router.register("activities", views.ActivityViewSet, basename="activity")
router.register("custom-fields", views.CustomFieldViewSet, basename="custom-field")
router.register("consent-records", views.ConsentRecordViewSet, basename="consent-record")
memberships.register(router)
events.register(router)
contributions.register(router)
segments.register(router)

urlpatterns = [
    path("v1/", include(router.urls)),
    path(
        "schema/",
        SpectacularAPIView.as_view(
            custom_settings={
                "PREPROCESSING_HOOKS": ["crm_core.api.views.only_crm_api_endpoints"],
                # Choice sets used by several fields get one name each.
                "ENUM_NAME_OVERRIDES": {
                    "ContactKindEnum": "crm_core.models.ContactKind",
                    "ChannelEnum": "crm_core.models.Channel",
                    "LocationEnum": "crm_core.models.LocationType",
                    "MembershipStatusEnum": "crm_core.models.MembershipStatus",
                    "ParticipantStatusEnum": "crm_core.models.ParticipantStatus",
                    "ContributionStatusEnum": "crm_core.models.ContributionStatus",
                    "RecurringStatusEnum": "crm_core.models.RecurringStatus",
                    "PaymentMethodEnum": "crm_core.models.PaymentMethod",
                    "LineItemKindEnum": "crm_core.models.LineItemKind",
                    "SoftCreditKindEnum": "crm_core.models.SoftCreditKind",
                    "DateEventEnum": "crm_core.models.DateEvent",
                    "OffsetUnitEnum": "crm_core.models.OffsetUnit",
                },
            }
        ),
        name="schema",
    ),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="crm_api:schema"), name="docs"),
]
