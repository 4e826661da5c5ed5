"""Test settings: the example site's, with fast and isolated services."""

from example_site.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WAGTAILADMIN_BASE_URL = "http://testserver"
# Static files come from the finders in tests; nothing is collected.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import os
    import tempfile

    # A file, not Django's shared in-memory database: tests that open real
    # concurrent connections (tests/test_events_concurrency.py) need SQLite's
    # file locking, WAL and busy timeout, which shared-cache memory databases
    # lack ("database table is locked"). One file per process.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"crm-tests-{os.getpid()}.sqlite3")
    }

# A site's own page types on the CRM mixins (tests/test_site_page_types.py).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.site_pages"]  # noqa: F405
