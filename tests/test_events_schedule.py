"""The periodic work of events: expiring unanswered waitlist offers."""

import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from freezegun import freeze_time

from crm_core.models import Participant
from crm_core.services import events as services
from crm_core.tasks import expire_waitlist_offers_task
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def register(event):
    contact = ContactFactory()
    return services.register(event, registered_by=contact, attendees=[{"contact": contact}])[0]


@pytest.fixture
def offer_made():
    """A full one-seat event whose seat was freed and offered to the first of two waiting."""
    event = EventFactory(capacity=1, waitlist_offer_hours=2)
    seated = register(event)
    first, second = register(event), register(event)
    services.cancel_registration(seated)
    return first, second


def test_task_passes_an_unanswered_offer_to_the_next_in_line(offer_made):
    first, second = offer_made
    with freeze_time(timezone.now() + datetime.timedelta(hours=3)):
        result = expire_waitlist_offers_task.enqueue()
    assert result.return_value == [second.pk]
    assert Participant.objects.get(pk=first.pk).status == "cancelled"


def test_command_leaves_open_offers_alone(offer_made):
    first, second = offer_made
    out = StringIO()
    call_command("crm_expire_waitlist_offers", stdout=out)
    assert out.getvalue().strip() == "seats offered: 0"
    assert Participant.objects.get(pk=first.pk).offer_expires_at is not None


def test_command_run_twice_offers_each_seat_once(offer_made):
    with freeze_time(timezone.now() + datetime.timedelta(hours=3)):
        outputs = []
        for _ in range(2):
            out = StringIO()
            call_command("crm_expire_waitlist_offers", stdout=out)
            outputs.append(out.getvalue().strip())
    assert outputs == ["seats offered: 1", "seats offered: 0"]
