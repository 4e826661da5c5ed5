"""The payments API's OpenAPI schema and its Swagger UI, for signed-in users only."""

import yaml
from django.urls import reverse
from drf_spectacular.drainage import GENERATOR_STATS

SCHEMA = reverse("crm_payments_api:schema")
DOCS = reverse("crm_payments_api:docs")


def test_payments_schema_lists_the_payments_v1_paths_only(client, superuser):
    client.force_login(superuser)
    GENERATOR_STATS.reset()

    response = client.get(SCHEMA)

    assert response.status_code == 200
    paths = yaml.safe_load(response.content)["paths"]
    assert "/api/crm/payments/v1/refunds/" in paths
    assert "/api/crm/payments/v1/payment-blocks/{id}/lift/" in paths
    assert all(path.startswith("/api/crm/payments/v1/") for path in paths)
    assert not GENERATOR_STATS, "drf-spectacular reported warnings or errors"


def test_payments_schema_and_docs_need_a_signed_in_user(client):
    assert client.get(SCHEMA).status_code in (401, 403)
    assert client.get(DOCS).status_code in (401, 403)
