"""Nothing a visitor or editor types is rendered unescaped, and bad admin form
posts are a form error, never a 500.

Names, titles and reasons carrying markup are created through the services
where there is one (which strip tags) and then, as imported or edited data
may hold them, written raw: escaping must not depend on cleaning on the way
in. Every admin listing, inspect, edit and action page of memberships,
events and contributions, and the browsable API, must show them as text.
"""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from crm_core.models import (
    Activity,
    Campaign,
    Contact,
    Contribution,
    Event,
    EventFeeLevel,
    FinancialType,
    Membership,
    MembershipType,
    Participant,
    ParticipantRole,
    RecurringContribution,
)
from crm_core.services import contributions as contribution_services
from crm_core.services import events as event_services
from crm_core.services import memberships as membership_services
from crm_core.services.contacts import create_contact
from tests.factories import (
    CampaignFactory,
    EventFactory,
    EventFeeLevelFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
# Entities survive tag stripping and come back as markup when unescaped.
ENTITIES = "<b></b>&lt;script&gt;alert(2)&lt;/script&gt;"
NASTY = f"{SCRIPT}{IMG}{ENTITIES}"
RAW_MARKUP = ["<script>alert(", "<img src=x", "onerror=alert(1)>"]


def assert_escaped(response):
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    for raw in RAW_MARKUP:
        assert raw not in html, f"unescaped {raw!r} in {response.request['PATH_INFO']}"


def raw(model, pk, **fields):
    """Write ``fields`` as they are, as an import or an older version might have."""
    model.objects.filter(pk=pk).update(**fields)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def nasty(db):
    """One of everything, named with markup."""
    contact = create_contact(first_name=SCRIPT, last_name=IMG)
    raw(Contact, contact.pk, first_name=SCRIPT, last_name=IMG, display_name=NASTY, sort_name=NASTY)
    fund = FinancialTypeFactory(slug="nasty-fund")
    raw(FinancialType, fund.pk, name=NASTY, description=NASTY)
    campaign = CampaignFactory(slug="nasty-campaign")
    raw(Campaign, campaign.pk, name=NASTY, description=NASTY)
    mtype = MembershipTypeFactory(slug="nasty-type", financial_type=fund)
    raw(MembershipType, mtype.pk, name=NASTY, description=NASTY)
    event = EventFactory(
        slug="nasty-event", registration_opens_at=timezone.now() - datetime.timedelta(days=1)
    )
    raw(Event, event.pk, title=NASTY, summary=NASTY, description=NASTY, location=NASTY)
    level = EventFeeLevelFactory(event=event, amount=Decimal("0"), is_default=True)
    raw(EventFeeLevel, level.pk, label=NASTY)
    role = ParticipantRole.objects.order_by("pk").first()
    raw(ParticipantRole, role.pk, name=NASTY)

    membership = membership_services.join(contact, mtype)
    cancelled = membership_services.join(create_contact(last_name=IMG), mtype)
    membership_services.cancel(cancelled, reason=NASTY)
    raw(Membership, cancelled.pk, cancel_reason=NASTY)

    (participant,) = event_services.register(
        Event.objects.get(pk=event.pk), registered_by=contact, attendees=[{"contact": contact}]
    )
    other = create_contact(last_name="Lee")
    (gone,) = event_services.register(
        Event.objects.get(pk=event.pk), registered_by=other, attendees=[{"contact": other}]
    )
    event_services.cancel_registration(gone, reason=NASTY)
    raw(Participant, gone.pk, cancel_reason=NASTY)

    contribution = contribution_services.create_pending(
        contact,
        currency="GBP",
        lines=[{"amount": Decimal("20.00"), "label": NASTY}],
        financial_type=fund,
        campaign=campaign,
        note=NASTY,
        soft_credits=[{"contact": other, "kind": "in_honour"}],
    )
    raw(Contribution, contribution.pk, note=NASTY, transaction_id=SCRIPT)
    contribution.line_items.update(label=NASTY)
    refunded = contribution_services.record_offline_payment(
        contribution_services.create_pending(
            contact, currency="GBP", lines=[{"amount": Decimal("10.00")}]
        ),
        payment_method="cheque",
        transaction_id=NASTY,
    )
    refunded = contribution_services.refund(refunded, amount="5.00", reason=NASTY)
    raw(Contribution, refunded.pk, status_reason=NASTY)
    recurring = contribution_services.create_recurring(
        contact,
        amount=Decimal("5.00"),
        currency="GBP",
        frequency_unit="month",
        financial_type=fund,
        processor_id=NASTY,
    )
    raw(RecurringContribution, recurring.pk, processor_id=NASTY, processor=SCRIPT)
    return {
        "contact": contact,
        "fund": fund,
        "campaign": campaign,
        "mtype": mtype,
        "event": event,
        "level": level,
        "role": role,
        "membership": membership,
        "cancelled": cancelled,
        "participant": participant,
        "gone": gone,
        "contribution": contribution,
        "refunded": refunded,
        "recurring": recurring,
    }


def snippet(model_name, view, *args):
    return reverse(f"wagtailsnippets_crm_core_{model_name}:{view}", args=args)


ADMIN_PAGES = [
    ("membership", "list", None),
    ("membership", "inspect", "membership"),
    ("membership", "inspect", "cancelled"),
    ("membership", "edit", "membership"),
    ("membership", "add", None),
    ("membershiptype", "list", None),
    ("membershiptype", "edit", "mtype"),
    ("membershiptype", "delete", "mtype"),
    ("membershipstatusrule", "list", None),
    ("event", "list", None),
    ("event", "edit", "event"),
    ("event", "delete", "event"),
    ("eventfeelevel", "list", None),
    ("eventfeelevel", "edit", "level"),
    ("participantrole", "list", None),
    ("participantrole", "edit", "role"),
    ("participant", "list", None),
    ("participant", "inspect", "participant"),
    ("participant", "inspect", "gone"),
    ("participant", "add", None),
    ("contribution", "list", None),
    ("contribution", "inspect", "contribution"),
    ("contribution", "inspect", "refunded"),
    ("contribution", "add", None),
    ("contribution", "record_payment", "contribution"),
    ("contribution", "cancel", "contribution"),
    ("contribution", "refund", "refunded"),
    ("recurringcontribution", "list", None),
    ("recurringcontribution", "inspect", "recurring"),
    ("recurringcontribution", "cancel", "recurring"),
    ("financialtype", "list", None),
    ("financialtype", "edit", "fund"),
    ("campaign", "list", None),
    ("campaign", "edit", "campaign"),
    ("campaign", "delete", "campaign"),
    ("contact", "inspect", "contact"),
]


@pytest.mark.parametrize(
    ("model_name", "view", "key"), ADMIN_PAGES, ids=[f"{m}-{v}-{k}" for m, v, k in ADMIN_PAGES]
)
def test_admin_pages_show_markup_as_text(admin_client, nasty, model_name, view, key):
    args = [nasty[key].pk] if key else []
    assert_escaped(admin_client.get(snippet(model_name, view, *args)))


def test_admin_list_search_for_markup_shows_it_as_text(admin_client, nasty):
    for model_name in ("membership", "participant", "contribution", "event", "campaign"):
        assert_escaped(admin_client.get(snippet(model_name, "list"), {"q": NASTY}))


@pytest.mark.parametrize("action", ["check-in", "no-show", "cancel", "accept-offer"])
def test_participant_action_pages_show_markup_as_text(admin_client, nasty, action):
    url = snippet("participant", "action", nasty["participant"].pk, action)
    assert_escaped(admin_client.get(url))


@pytest.mark.parametrize("name", ["crm_membership_renew", "crm_membership_cancel"])
def test_membership_action_pages_show_markup_as_text(admin_client, nasty, name):
    assert_escaped(admin_client.get(reverse(name, args=[nasty["membership"].pk])))


def test_messages_after_a_refused_action_show_markup_as_text(admin_client, nasty):
    # Deleting a fund in use is refused with a message naming it.
    response = admin_client.post(snippet("financialtype", "delete", nasty["fund"].pk), follow=True)
    assert_escaped(response)
    assert FinancialType.objects.filter(pk=nasty["fund"].pk).exists()


def test_participant_cancel_with_a_markup_reason_shows_it_as_text(admin_client, nasty):
    participant = nasty["participant"]
    url = snippet("participant", "action", participant.pk, "cancel")
    response = admin_client.post(url, {"reason": NASTY}, follow=True)
    assert_escaped(response)
    assert_escaped(admin_client.get(snippet("participant", "inspect", participant.pk)))


def test_timeline_of_the_contact_shows_system_events_as_text(admin_client, nasty):
    # Every service above wrote to the contact's timeline.
    assert Activity.objects.filter(contact=nasty["contact"]).count() >= 3
    assert_escaped(admin_client.get(snippet("contact", "inspect", nasty["contact"].pk)))


# -- the API ----------------------------------------------------------------------------------

API_PAGES = [
    ("membership-type-list", None),
    ("membership-list", None),
    ("membership-detail", "cancelled"),
    ("event-list", None),
    ("event-detail", "event"),
    ("event-fee-level-list", None),
    ("participant-role-list", None),
    ("participant-list", None),
    ("financial-type-list", None),
    ("campaign-list", None),
    ("contribution-list", None),
    ("contribution-detail", "contribution"),
    ("recurring-contribution-list", None),
]


@pytest.mark.parametrize(("name", "key"), API_PAGES)
def test_api_is_json_and_its_browsable_pages_escape_markup(admin_client, nasty, name, key):
    url = reverse(f"crm_api:{name}", args=[nasty[key].pk] if key else [])
    response = admin_client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    response.json()
    assert_escaped(admin_client.get(url, HTTP_ACCEPT="text/html"))


def test_api_returns_stored_text_as_it_is(admin_client, nasty):
    # JSON carries the text; escaping is the job of whatever renders it.
    response = admin_client.get(reverse("crm_api:event-detail", args=[nasty["event"].pk]))
    assert response.json()["title"] == NASTY


# -- bad admin form posts -----------------------------------------------------------------------

BAD_VALUES = ["", "\x00", "NaN", "Infinity", "1e400", "-1", "9" * 40, "x" * 5000, NASTY, "٣"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_admin_form_posts_are_form_errors_not_500s(admin_client, nasty, value):
    contribution = contribution_services.create_pending(
        nasty["contact"], currency="GBP", lines=[{"amount": Decimal("8.00")}]
    )
    paid = contribution_services.record_offline_payment(
        contribution_services.create_pending(
            nasty["contact"], currency="GBP", lines=[{"amount": Decimal("8.00")}]
        ),
        payment_method="cash",
    )
    posts = [
        (
            snippet("membership", "add"),
            {"contact": nasty["contact"].pk, "membership_type": value, "join_date": value},
        ),
        (
            snippet("membership", "add"),
            {
                "contact": nasty["contact"].pk,
                "membership_type": nasty["mtype"].pk,
                "join_date": value,
                "start_date": value,
            },
        ),
        (snippet("membership", "edit", nasty["membership"].pk), {"membership_type": value}),
        (reverse("crm_membership_renew", args=[nasty["membership"].pk]), {"terms": value}),
        (reverse("crm_membership_cancel", args=[nasty["membership"].pk]), {"reason": value}),
        (
            snippet("membershiptype", "add"),
            {
                "name": value,
                "slug": "t",
                "fee": value,
                "currency": value,
                "financial_type": nasty["fund"].pk,
                "duration_unit": "year",
                "duration_interval": value,
                "period_type": "fixed",
                "fixed_period_start_month": value,
                "fixed_period_start_day": value,
                "grace_period_days": value,
                "weight": value,
            },
        ),
        (
            snippet("event", "add"),
            {
                "title": value,
                "slug": "e",
                "starts_at": value,
                "ends_at": value,
                "time_zone": value,
                "capacity": value,
                "currency": value,
                "max_seats_per_registration": value,
                "waitlist_offer_hours": value,
            },
        ),
        (
            snippet("eventfeelevel", "add"),
            {"event": nasty["event"].pk, "label": value, "amount": value},
        ),
        (
            snippet("contribution", "add"),
            {
                "contact": nasty["contact"].pk,
                "amount": value,
                "currency": value,
                "financial_type": nasty["fund"].pk,
                "already_paid": "on",
                "payment_method": "cheque",
                "received_at": value,
                "transaction_id": value,
                "note": value,
            },
        ),
        (
            snippet("contribution", "record_payment", contribution.pk),
            {"payment_method": value, "received_at": value, "transaction_id": value},
        ),
        (
            snippet("contribution", "record_payment", contribution.pk),
            {"payment_method": "cheque", "received_at": value},
        ),
        (snippet("contribution", "refund", paid.pk), {"amount": value, "reason": value}),
        (snippet("contribution", "cancel", contribution.pk), {"reason": value}),
        (snippet("recurringcontribution", "cancel", nasty["recurring"].pk), {"reason": value}),
        (
            snippet("campaign", "add"),
            {
                "name": value,
                "slug": "c",
                "goal_amount": value,
                "currency": value,
                "starts_on": value,
            },
        ),
        (snippet("financialtype", "add"), {"name": value, "slug": value}),
    ]
    admin_client.raise_request_exception = False
    failures = []
    for url, data in posts:
        response = admin_client.post(url, data)
        if response.status_code not in (200, 302):
            failures.append((url, sorted(data), response.status_code))
        elif response.status_code == 200:
            assert_escaped(response)
    assert not failures


# A chooser redraws junk posted instead of an id as empty (crm_wagtail.backoffice.choosers).
# Related rows chosen in admin forms: (model, field, other fields).
CHOOSER_FIELDS = [
    ("contribution", "contact", {"amount": "5", "currency": "GBP"}),
    ("contribution", "financial_type", {"amount": "5", "currency": "GBP"}),
    ("contribution", "campaign", {"amount": "5", "currency": "GBP"}),
    ("eventfeelevel", "event", {"label": "x", "amount": "1"}),
    ("membershiptype", "owner", {"name": "x", "slug": "x"}),
    ("membershiptype", "financial_type", {"name": "x", "slug": "x"}),
    ("event", "financial_type", {"title": "x", "slug": "x"}),
    ("event", "roles", {"title": "x", "slug": "x"}),
    ("participant", "event", {}),
    ("participant", "contact", {}),
    ("participant", "role", {}),
    ("participant", "fee_level", {}),
    ("membership", "contact", {}),
    ("membership", "membership_type", {}),
    ("relationship", "contact_a", {}),
    ("activity", "contact", {"subject": "x", "activity_type": "note"}),
]


@pytest.mark.parametrize(("model_name", "field", "others"), CHOOSER_FIELDS)
def test_junk_instead_of_an_id_is_a_form_error(admin_client, nasty, model_name, field, others):
    admin_client.raise_request_exception = False
    response = admin_client.post(snippet(model_name, "add"), {**others, field: "NaN"})
    assert response.status_code == 200
    assert_escaped(response)
