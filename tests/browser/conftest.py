"""Fixtures for the browser tests: Debian's Chromium through Playwright, never a download."""

import importlib
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from wagtail.coreutils import get_supported_content_language_variant
from wagtail.models import Locale, Page

# Playwright's sync API runs an event loop in this thread; Django would
# otherwise refuse the ORM calls the tests make around it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "browser-test-password-1"


@pytest.fixture
def browser_page(chromium_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()
        # ORM calls made while Playwright's loop runs get connections of their
        # own context; close them here, or PostgreSQL refuses to drop the test
        # database at the end ("being accessed by other users").
        connections.close_all()


@pytest.fixture
def demo_site(transactional_db, monkeypatch):
    """The demo home page and the 'admin' superuser, made by ``manage.py demo_site``."""
    # transactional_db empties every table between tests, including the
    # locale and root page Wagtail's migrations made.
    Locale.objects.get_or_create(
        language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE)
    )
    if not Page.objects.filter(depth=1).exists():
        Page.add_root(instance=Page(title="Root", slug="root"))
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", ADMIN_PASSWORD)
    call_command("demo_site", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return {"username": "admin", "password": ADMIN_PASSWORD}


@pytest.fixture
def reference_data(demo_site):
    """The roles, funds and membership status rules every site starts with.

    Transactional tests empty the tables the migration filled; put back what it made.
    """
    from django.apps import apps

    importlib.import_module("crm_core.migrations.0004_default_reference_data").create(apps, None)
