"""Shared fixtures.

Under CI (``CI=true``) the real components are required: a fixture that
cannot reach Redis or Chromium fails the test instead of skipping it.
"""

import os
import shutil

import pytest
from django.contrib.auth.models import Permission

from tests.factories import ContactFactory, UserFactory

pytest_plugins = ["tests.payments_fixtures"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition, reason):
    """Skip when a real component is missing; under CI, fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache: rate-limit counters (API
    throttling, card-testing limits) must not carry over from earlier tests."""
    from django.core.cache import caches

    for cache in caches.all():
        cache.clear()
    yield


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        require(False, f"Redis not reachable at {url}: {exc}")
    return url


@pytest.fixture
def chromium_path():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    require(os.path.exists(path), "Debian's chromium is not installed")
    return path


def grant(user, *codenames):
    """Give ``user`` permissions named "app_label.codename"."""
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    # Permissions are cached on the instance.
    for attr in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)
    return user


def walk_pages(client, url, params):
    """The ids of every row of a list, following ``next`` from the first page."""
    ids = []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.json()
        ids += [row["id"] for row in response.json()["results"]]
        if not response.json()["next"]:
            return ids
        response = client.get(response.json()["next"])


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def contact(db):
    return ContactFactory()
