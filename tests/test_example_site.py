"""The example site's settings come from the environment, as documented."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETTINGS_PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print("PROBE" + json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "postgres_app": "django.contrib.postgres" in s.INSTALLED_APPS,
    "cache": s.CACHES["default"]["BACKEND"],
    "tasks": s.TASKS["default"]["BACKEND"],
    "hosts": s.ALLOWED_HOSTS,
}))
"""

SQLITE_PROBE = """
import json, django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    journal = cursor.fetchone()[0]
    cursor.execute("PRAGMA busy_timeout")
    timeout = cursor.fetchone()[0]
print("PROBE" + json.dumps([journal, timeout, connection.transaction_mode]))
"""


def run_probe(code, tmp_path, **env):
    """Run ``code`` in a fresh interpreter with the example site's settings and ``env``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "TASKS_BACKEND", "ALLOWED_HOSTS"}
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="example_site.settings", CRM_VAR_DIR=str(tmp_path), **env
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE") :])


def test_default_database_is_sqlite_in_wal_mode_with_immediate_writes(tmp_path):
    journal, timeout, transaction_mode = run_probe(SQLITE_PROBE, tmp_path)
    assert journal == "wal"
    assert timeout == 20000
    assert transaction_mode == "IMMEDIATE"
    assert (tmp_path / "demo.sqlite3").exists()


def test_defaults_use_local_cache_and_database_tasks(tmp_path):
    info = run_probe(SETTINGS_PROBE, tmp_path)
    assert info["engine"] == "django.db.backends.sqlite3"
    assert info["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert info["tasks"] == "django_tasks_db.DatabaseBackend"
    assert info["postgres_app"] is False


def test_environment_selects_postgres_redis_and_hosts(tmp_path):
    info = run_probe(
        SETTINGS_PROBE,
        tmp_path,
        DATABASE_URL="postgres://crm@db.internal:5432/crm",
        REDIS_URL="redis://127.0.0.1:6379/3",
        ALLOWED_HOSTS="crm.example.org, www.example.org",
        TASKS_BACKEND="rq",
    )
    assert info["engine"] == "django.db.backends.postgresql"
    assert info["postgres_app"] is True
    assert info["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert info["hosts"] == ["crm.example.org", "www.example.org"]
    assert info["tasks"] == "django_tasks_rq.RQBackend"


def test_the_admin_does_not_ask_wagtail_org_for_updates(client, superuser):
    client.force_login(superuser)
    html = client.get("/admin/").content.decode()
    assert "w-upgrade" not in html  # the panel whose script asks releases.wagtail.org
