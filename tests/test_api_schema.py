"""The OpenAPI schema and its Swagger UI, for signed-in users only."""

import re

import yaml
from django.urls import reverse
from drf_spectacular.drainage import GENERATOR_STATS

SCHEMA = reverse("crm_api:schema")
DOCS = reverse("crm_api:docs")


def test_schema_lists_our_v1_paths_only(client, superuser):
    client.force_login(superuser)

    response = client.get(SCHEMA)

    assert response.status_code == 200
    paths = yaml.safe_load(response.content)["paths"]
    assert "/api/crm/v1/contacts/" in paths
    assert "/api/crm/v1/contacts/{id}/restore/" in paths
    assert all(path.startswith("/api/crm/v1/") for path in paths)


def test_schema_is_served_as_json_on_request(client, superuser):
    client.force_login(superuser)

    response = client.get(SCHEMA, {"format": "json"})

    assert response.status_code == 200
    assert "/api/crm/v1/consent-records/" in response.json()["paths"]


def test_schema_generates_without_warnings_or_errors(client, superuser):
    client.force_login(superuser)
    GENERATOR_STATS.reset()

    assert client.get(SCHEMA).status_code == 200
    assert not GENERATOR_STATS, "drf-spectacular reported warnings or errors"


def test_schema_documents_consent_records_as_append_only(client, superuser):
    client.force_login(superuser)

    paths = yaml.safe_load(client.get(SCHEMA).content)["paths"]

    methods = set(paths["/api/crm/v1/consent-records/{id}/"])
    assert "get" in methods
    assert not methods & {"put", "patch", "delete"}


def test_anonymous_cannot_read_the_schema(db, client):
    assert client.get(SCHEMA).status_code == 401


def test_docs_page_is_served_to_a_signed_in_user_without_inline_scripts(client, user):
    client.force_login(user)

    response = client.get(DOCS)

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attributes for attributes in scripts)


def test_docs_assets_come_from_the_sidecar(client, user):
    client.force_login(user)

    html = client.get(DOCS).content.decode()

    assert "drf_spectacular_sidecar" in html
    assert "cdn.jsdelivr" not in html


def test_anonymous_cannot_open_the_docs(db, client):
    assert client.get(DOCS).status_code == 401
