"""Per-user throttling with the shared Redis cache, as several app servers run it."""

import uuid

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient


@pytest.mark.redis
def test_fourth_request_in_a_minute_is_429_with_json(superuser, redis_url):
    redis_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            # Our own key space: clearing it leaves other tests' keys alone.
            "KEY_PREFIX": f"crm-api-throttle-{uuid.uuid4().hex}",
        }
    }
    client = APIClient()
    client.force_authenticate(superuser)
    url = reverse("crm_api:contact-list")
    with override_settings(
        CACHES=redis_cache, CRM={"API_USER_RATE": "3/minute", "API_ANON_RATE": "3/minute"}
    ):
        # Not cache.clear(): on Redis that flushes the database other tests share.
        cache.delete(f"throttle_user_{superuser.pk}")
        responses = [client.get(url) for _ in range(4)]
        history_in_redis = cache.get(f"throttle_user_{superuser.pk}")

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[3]["Content-Type"] == "application/json"
    assert "throttled" in responses[3].json()["detail"].lower()
    assert len(history_in_redis) == 3
