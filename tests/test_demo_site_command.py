"""``manage.py demo_site``: the demo's pages, made once, from the CRM data there is."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm_wagtail.models import EventIndexPage, EventPage
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def run_demo_site(monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-password-for-tests")
    out = io.StringIO()
    call_command("demo_site", stdout=out)
    return out.getvalue()


def test_events_pages_list_the_upcoming_public_events_each_with_its_form(client, monkeypatch):
    soon = timezone.now() + datetime.timedelta(days=3)
    EventFactory(title="River <clean-up>", slug="river", starts_at=soon, ends_at=soon)
    EventFactory(title="Private", slug="private", is_public=False)

    output = run_demo_site(monkeypatch)

    assert "Events pages created: /events/ with 1 events" in output
    index = client.get("/events/").content.decode()
    assert "River &lt;clean-up&gt;" in index
    assert "Private" not in index
    page = client.get("/events/river/").content.decode()
    assert 'name="placement"' in page and "Book your place" in page
    assert "Events pages already there: /events/" in run_demo_site(monkeypatch)
    assert EventIndexPage.objects.count() == 1
    assert EventPage.objects.count() == 1


def test_without_upcoming_events_no_events_pages_are_made(monkeypatch):
    assert "Events pages not made" in run_demo_site(monkeypatch)
    assert not EventIndexPage.objects.exists()
