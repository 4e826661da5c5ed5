"""Random bodies and query strings never make the membership, event and
contribution API answer 500: bad input of any kind is a JSON 4xx.

Each write endpoint gets random JSON objects that mix its real field names
(with plausible and junk values) and unknown keys; each list gets random
filters. The records the actions act on are made fresh for every example,
so one example's cancellation does not hide the next one's bug.
"""

import datetime
import itertools
import json
import os
from decimal import Decimal
from typing import NamedTuple

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.models import MembershipStatusRule, ParticipantRole, RecurringContribution
from crm_core.services import contributions as contribution_services
from crm_core.services import events as event_services
from crm_core.services import memberships as membership_services
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    EventFactory,
    EventFeeLevelFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# FUZZ_EXAMPLES=1000 for a longer hunt; 60 keeps the suite near a minute.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- values -------------------------------------------------------------------------------

HUGE = [2**31, 2**63, -(2**63) - 1, 10**30, 10**400]
junk_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "<script>alert(1)</script>",
            '"><img src=x onerror=alert(1)>',
            "é" * 300,
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
            "\u202e",
            "x" * 5000,
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1",
            "0",
            "0.001",
            "12.345",
            "99999999999999999999999999.99",
            "1_000",
            "١٢٣",
            "true",
            "null",
            "2024-02-30",
            "0000-01-01",
            "9999-12-31",
            "10000-01-01",
            "9999-12-31T23:59:59-12:00",
            "0001-01-01T00:00:00+14:00",
            "2024-01-31T10:00:00Z",
            "2024-03-31T01:30:00",
            "Mars/Olympus_Mons",
            "Europe/London",
            "../../etc/passwd",
        ]
    ),
)
junk_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    junk_text,
)
junk = st.recursive(
    junk_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=8), children, max_size=3),
    ),
    max_leaves=6,
)

# Values that pass some checks, so bodies get past the first field.
PLAUSIBLE = {
    "date": st.sampled_from(
        ["2024-01-31", "2024-02-29", "2023-02-28", "2100-12-31", "1900-01-01", "0001-01-01"]
    ),
    "datetime": st.sampled_from(
        [
            "2030-01-31T10:00:00Z",
            "2030-03-31T01:30:00+01:00",
            "2000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "2030-06-01",
        ]
    ),
    "amount": st.one_of(
        st.sampled_from(["12.50", "0", "0.00", "-5", "1e3", "1000000000000", "25", 25, 0, -1]),
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    ),
    "currency": st.sampled_from(["GBP", "gbp", "JPY", "BHD", "EUR", "XXX", "ZZZ", "", "GB"]),
    "int": st.one_of(st.integers(min_value=-5, max_value=400), st.sampled_from(HUGE)),
    "bool": st.booleans(),
    "text": junk_text,
}


class Field(NamedTuple):
    """How to fill one field: ``good`` values have the right type (they may
    still be absurd: huge, negative, out of range, markup); ``anything`` adds junk."""

    good: st.SearchStrategy
    anything: st.SearchStrategy


def field_values(kind, ids=()):
    """A plausible value of ``kind``, a real id, or (in ``anything``) junk."""
    plausible = PLAUSIBLE.get(kind, junk_text)
    options = [plausible]
    if ids:
        options += [st.sampled_from(list(ids))] * 2 + [st.lists(st.sampled_from(list(ids)))]
    good = st.one_of(*options)
    return Field(good, st.one_of(good, good, junk))


def choice(values):
    return Field(st.sampled_from(values), st.one_of(st.sampled_from(values), junk))


def _some(fields, max_size):
    names = sorted(fields)
    return st.sets(st.sampled_from(names), max_size=max_size).flatmap(
        lambda chosen: st.fixed_dictionaries({name: fields[name] for name in sorted(chosen)})
    )


def _mutated(fields, base):
    dropped = st.sets(st.sampled_from(sorted(base)), max_size=1) if base else st.just(set())
    return st.tuples(_some(fields, 2), dropped).map(
        lambda pair: {**{k: v for k, v in base.items() if k not in pair[1]}, **pair[0]}
    )


def bodies(fields, base=None, *, good_only=False):
    """Random objects over ``fields`` (name -> Field).

    Half are ``base`` (a valid body) with up to two fields replaced by values
    of the right type and perhaps one left out, so they reach the services;
    a quarter do the same with junk values; the rest are random sets of the
    fields with junk, bodies with unknown keys, or not objects at all.
    """
    base = base or {}
    good = {name: field.good for name, field in fields.items()}
    anything = {name: field.anything for name, field in fields.items()}
    if good_only:
        return _mutated(good, base)
    unknown = st.dictionaries(st.text(max_size=10), junk, min_size=1, max_size=2)
    rough = st.one_of(
        _some(anything, len(anything)),
        st.tuples(_mutated(good, base), unknown).map(lambda pair: {**pair[1], **pair[0]}),
        junk,
    )
    return st.integers(0, 3).flatmap(
        lambda mode: (
            _mutated(good, base) if mode < 2 else _mutated(anything, base) if mode == 2 else rough
        )
    )


def nested_list(fields, base, *, min_size=0, max_size=3):
    """A list of nested objects (line items, attendees, soft credits)."""
    return Field(
        st.lists(bodies(fields, base, good_only=True), min_size=min_size, max_size=max_size),
        st.one_of(st.lists(bodies(fields, base), max_size=max_size), junk),
    )


SEQUENCE = itertools.count()


def unique(prefix):
    return f"{prefix}-{next(SEQUENCE)}"


# -- the world the requests act on ----------------------------------------------------------


@pytest.fixture
def staff(settings):
    # Hundreds of requests in a minute are the point here, not a throttled client.
    settings.CRM = {**getattr(settings, "CRM", {}), "API_USER_RATE": "1000000/hour"}
    user = UserFactory(is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(db):
    contact = ContactFactory()
    mtype = MembershipTypeFactory(slug="fuzz-annual")
    other_type = MembershipTypeFactory(slug="fuzz-other")
    event = EventFactory(
        slug="fuzz-event",
        registration_opens_at=timezone.now() - datetime.timedelta(days=1),
        capacity=1000,
        max_seats_per_registration=10,
    )
    level = EventFeeLevelFactory(event=event, amount=Decimal("0"), is_default=True)
    return {
        "contact": contact.pk,
        "contacts": [contact.pk, ContactFactory().pk],
        "membership_type": [mtype.pk, other_type.pk],
        "event": event,
        "fee_level": [level.pk],
        "role": list(ParticipantRole.objects.values_list("pk", flat=True)),
        "financial_type": [FinancialTypeFactory(slug="donation").pk],
        "campaign": [CampaignFactory().pk],
        "mtype": mtype,
    }


def post(client, url, body):
    response = client.post(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, (url, body, response.content[:2000])
    assert response["Content-Type"].startswith("application/json"), (url, body)
    response.json()
    return response


def patch(client, url, body):
    response = client.patch(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, (url, body, response.content[:2000])
    response.json()
    return response


def url(name, *args):
    return reverse(f"crm_api:{name}", args=args)


def fresh_membership(world):
    return membership_services.join(ContactFactory(), world["mtype"])


def fresh_participant(world, **attendee):
    contact = ContactFactory()
    (participant,) = event_services.register(
        world["event"], registered_by=contact, attendees=[{"contact": contact, **attendee}]
    )
    return participant


def fresh_contribution(world, *, completed=False):
    contribution = contribution_services.create_pending(
        ContactFactory(), currency="GBP", lines=[{"amount": Decimal("20.00")}]
    )
    if completed:
        contribution = contribution_services.record_offline_payment(
            contribution, payment_method="cheque"
        )
    return contribution


# -- memberships ----------------------------------------------------------------------------


def membership_type_fields(world):
    return {
        "name": field_values("text"),
        "slug": field_values("text"),
        "description": field_values("text"),
        "owner": field_values("int", world["contacts"]),
        "fee": field_values("amount"),
        "currency": field_values("currency"),
        "financial_type": field_values("int", world["financial_type"]),
        "duration_unit": choice(["day", "month", "year", "lifetime"]),
        "duration_interval": field_values("int"),
        "period_type": choice(["rolling", "fixed"]),
        "fixed_period_start_month": field_values("int"),
        "fixed_period_start_day": field_values("int"),
        "fixed_period_rollover_month": field_values("int"),
        "fixed_period_rollover_day": field_values("int"),
        "grace_period_days": field_values("int"),
        "is_renewable_online": field_values("bool"),
        "auto_renew": field_values("bool"),
        "inherit_relationship_types": field_values("int", [1, 2]),
        "is_active": field_values("bool"),
        "weight": field_values("int"),
    }


@FUZZ
@given(data=st.data())
def test_membership_type_create_never_500(staff, world, data):
    base = {
        "name": "Gold",
        "slug": unique("gold"),
        "fee": "30.00",
        "currency": "GBP",
        "financial_type": world["financial_type"][0],
        "duration_unit": "year",
        "duration_interval": 1,
        "period_type": "rolling",
    }
    body = data.draw(bodies(membership_type_fields(world), base))
    post(staff, url("membership-type-list"), body)


@FUZZ
@given(data=st.data())
def test_membership_type_update_never_500(staff, world, data):
    body = data.draw(bodies(membership_type_fields(world)))
    patch(staff, url("membership-type-detail", world["mtype"].pk), body)


@FUZZ
@given(data=st.data())
def test_membership_join_never_500(staff, world, data):
    fields = {
        "contact": field_values("int", world["contacts"] + [ContactFactory().pk]),
        "membership_type": field_values("int", world["membership_type"]),
        "join_date": field_values("date"),
        "start_date": field_values("date"),
        "pending": field_values("bool"),
        "auto_renew": field_values("bool"),
    }
    base = {"contact": ContactFactory().pk, "membership_type": world["membership_type"][0]}
    post(staff, url("membership-list"), data.draw(bodies(fields, base)))


@FUZZ
@given(data=st.data(), action=st.sampled_from(["renew", "cancel", "change-type"]))
def test_membership_actions_never_500(staff, world, data, action):
    membership = fresh_membership(world)
    fields = {
        "terms": field_values("int"),
        "reason": field_values("text"),
        "membership_type": field_values("int", world["membership_type"]),
    }
    base = {"renew": {"terms": 1}, "cancel": {"reason": "Moved away"}}.get(
        action, {"membership_type": world["membership_type"][1]}
    )
    body = data.draw(bodies(fields, base))
    post(staff, url("membership-list") + f"{membership.pk}/{action}/", body)


@FUZZ
@given(data=st.data())
def test_membership_status_rule_update_never_500(staff, world, data):
    rule = MembershipStatusRule.objects.order_by("?").first()
    events = choice(["join", "start", "end", "today"])
    units = choice(["day", "month", "year"])
    fields = {
        "status": field_values("text"),
        "start_event": events,
        "start_offset_unit": units,
        "start_offset_interval": field_values("int"),
        "end_event": events,
        "end_offset_unit": units,
        "end_offset_interval": field_values("int"),
        "is_current_member": field_values("bool"),
        "weight": field_values("int"),
        "is_active": field_values("bool"),
    }
    patch(staff, url("membership-status-rule-detail", rule.pk), data.draw(bodies(fields)))


# -- events ---------------------------------------------------------------------------------


def event_fields(world):
    return {
        "title": field_values("text"),
        "slug": field_values("text"),
        "summary": field_values("text"),
        "description": field_values("text"),
        "starts_at": field_values("datetime"),
        "ends_at": field_values("datetime"),
        "time_zone": choice(["Europe/London", "UTC", "Nowhere/City"]),
        "location": field_values("text"),
        "address": field_values("text"),
        "online_url": choice(["https://example.org/x", "javascript:1"]),
        "capacity": field_values("int"),
        "registration_opens_at": field_values("datetime"),
        "registration_closes_at": field_values("datetime"),
        "max_seats_per_registration": field_values("int"),
        "waitlist_enabled": field_values("bool"),
        "waitlist_offer_hours": field_values("int"),
        "currency": field_values("currency"),
        "financial_type": field_values("int", world["financial_type"]),
        "roles": field_values("int", world["role"]),
        "is_public": field_values("bool"),
        "is_active": field_values("bool"),
    }


@FUZZ
@given(data=st.data())
def test_event_create_never_500(staff, world, data):
    starts = timezone.now() + datetime.timedelta(days=10)
    base = {
        "title": "Spring talk",
        "slug": unique("talk"),
        "starts_at": starts.isoformat(),
        "ends_at": (starts + datetime.timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/London",
        "capacity": 40,
        "currency": "GBP",
    }
    post(staff, url("event-list"), data.draw(bodies(event_fields(world), base)))


@FUZZ
@given(data=st.data())
def test_event_update_never_500(staff, world, data):
    body = data.draw(bodies(event_fields(world)))
    patch(staff, url("event-detail", world["event"].pk), body)


@FUZZ
@given(data=st.data())
def test_event_fee_level_create_never_500(staff, world, data):
    fields = {
        "event": field_values("int", [world["event"].pk]),
        "label": field_values("text"),
        "amount": field_values("amount"),
        "is_default": field_values("bool"),
        "is_active": field_values("bool"),
        "weight": field_values("int"),
    }
    base = {"event": world["event"].pk, "label": "Concession", "amount": "5.00"}
    post(staff, url("event-fee-level-list"), data.draw(bodies(fields, base)))


@FUZZ
@given(data=st.data())
def test_event_fee_level_update_never_500(staff, world, data):
    fields = {
        "event": field_values("int", [world["event"].pk]),
        "label": field_values("text"),
        "amount": field_values("amount"),
        "is_default": field_values("bool"),
        "weight": field_values("int"),
    }
    level = world["fee_level"][0]
    patch(staff, url("event-fee-level-detail", level), data.draw(bodies(fields)))


@FUZZ
@given(data=st.data())
def test_participant_role_create_never_500(staff, world, data):
    fields = {
        "name": field_values("text"),
        "slug": field_values("text"),
        "counts_towards_capacity": field_values("bool"),
        "is_active": field_values("bool"),
        "weight": field_values("int"),
    }
    base = {"name": "Steward", "slug": unique("steward")}
    post(staff, url("participant-role-list"), data.draw(bodies(fields, base)))


@FUZZ
@given(data=st.data())
def test_event_register_never_500(staff, world, data):
    contacts = world["contacts"] + [ContactFactory().pk]
    answers = st.dictionaries(st.text(max_size=10), junk, max_size=3)
    attendees = nested_list(
        {
            "contact": field_values("int", contacts),
            "role": field_values("int", world["role"]),
            "fee_level": field_values("int", world["fee_level"]),
            "answers": Field(answers, st.one_of(answers, junk)),
        },
        {"contact": contacts[-1]},
        min_size=1,
    )
    fields = {
        "registered_by": field_values("int", contacts),
        "attendees": attendees,
        "pending_payment": field_values("bool"),
    }
    base = {"registered_by": contacts[-1], "attendees": [{"contact": contacts[-1]}]}
    body = data.draw(bodies(fields, base))
    post(staff, url("event-register", world["event"].pk), body)


@FUZZ
@given(
    data=st.data(),
    action=st.sampled_from(["cancel", "check-in", "no-show", "accept-offer"]),
)
def test_participant_actions_never_500(staff, world, data, action):
    participant = fresh_participant(world)
    body = data.draw(bodies({"reason": field_values("text")}))
    post(staff, url("participant-list") + f"{participant.pk}/{action}/", body)


# -- contributions --------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_financial_type_create_never_500(staff, world, data):
    fields = {
        "name": field_values("text"),
        "slug": field_values("text"),
        "description": field_values("text"),
        "is_deductible": field_values("bool"),
        "is_active": field_values("bool"),
    }
    base = {"name": "Building fund", "slug": unique("building")}
    post(staff, url("financial-type-list"), data.draw(bodies(fields, base)))


@FUZZ
@given(data=st.data())
def test_campaign_create_never_500(staff, world, data):
    fields = {
        "name": field_values("text"),
        "slug": field_values("text"),
        "description": field_values("text"),
        "goal_amount": field_values("amount"),
        "currency": field_values("currency"),
        "starts_on": field_values("date"),
        "ends_on": field_values("date"),
        "is_active": field_values("bool"),
    }
    base = {"name": "Winter appeal", "slug": unique("winter"), "goal_amount": "1000.00"}
    post(staff, url("campaign-list"), data.draw(bodies(fields, base)))


@FUZZ
@given(data=st.data())
def test_contribution_create_never_500(staff, world, data):
    membership = fresh_membership(world)
    participant = fresh_participant(world)
    lines = nested_list(
        {
            "kind": choice(["donation", "membership", "event_fee"]),
            "unit_amount": field_values("amount"),
            "quantity": field_values("int"),
            "label": field_values("text"),
            "financial_type": field_values("int", world["financial_type"]),
            "membership": field_values("int", [membership.pk]),
            "participant": field_values("int", [participant.pk]),
        },
        {"unit_amount": "10.00"},
        min_size=1,
    )
    credits = nested_list(
        {
            "contact": field_values("int", world["contacts"]),
            "kind": choice(["in_honour", "in_memory", "peer_to_peer"]),
            "amount": field_values("amount"),
        },
        {"contact": world["contacts"][1], "kind": "in_honour"},
    )
    fields = {
        "contact": field_values("int", world["contacts"]),
        "currency": field_values("currency"),
        "line_items": lines,
        "financial_type": field_values("int", world["financial_type"]),
        "campaign": field_values("int", world["campaign"]),
        "recurring": field_values(
            "int", list(RecurringContribution.objects.values_list("pk", flat=True)[:3])
        ),
        "payment_method": choice(["cheque", "cash", "card", "other"]),
        "note": field_values("text"),
        "soft_credits": credits,
    }
    base = {
        "contact": world["contacts"][0],
        "currency": "GBP",
        "line_items": [{"unit_amount": "10.00"}],
    }
    post(staff, url("contribution-list"), data.draw(bodies(fields, base)))


@FUZZ
@given(
    data=st.data(),
    action=st.sampled_from(["complete", "refund", "cancel", "fail"]),
    completed=st.booleans(),
)
def test_contribution_actions_never_500(staff, world, data, action, completed):
    contribution = fresh_contribution(world, completed=completed)
    fields = {
        "payment_method": choice(["cheque", "cash", "bank_transfer"]),
        "received_at": field_values("datetime"),
        "transaction_id": field_values("text"),
        "amount": field_values("amount"),
        "reason": field_values("text"),
    }
    post(
        staff,
        url("contribution-list") + f"{contribution.pk}/{action}/",
        data.draw(bodies(fields, {"payment_method": "cheque"} if action == "complete" else {})),
    )


def recurring_fields(world):
    return {
        "contact": field_values("int", world["contacts"]),
        "amount": field_values("amount"),
        "currency": field_values("currency"),
        "frequency_unit": choice(["day", "week", "month", "year"]),
        "frequency_interval": field_values("int"),
        "installments": field_values("int"),
        "financial_type": field_values("int", world["financial_type"]),
        "campaign": field_values("int", world["campaign"]),
        "membership": field_values("int"),
        "start_date": field_values("date"),
        "payment_method": choice(["cheque", "card", "direct_debit"]),
        "processor": field_values("text"),
        "processor_id": field_values("text"),
    }


@FUZZ
@given(data=st.data())
def test_recurring_contribution_create_never_500(staff, world, data):
    base = {
        "contact": world["contacts"][0],
        "amount": "5.00",
        "currency": "GBP",
        "frequency_unit": "month",
        "financial_type": world["financial_type"][0],
    }
    body = data.draw(bodies(recurring_fields(world), base))
    post(staff, url("recurring-contribution-list"), body)


@FUZZ
@given(data=st.data())
def test_recurring_contribution_cancel_never_500(staff, world, data):
    recurring = contribution_services.create_recurring(
        ContactFactory(),
        amount=Decimal("5.00"),
        currency="GBP",
        frequency_unit="month",
        financial_type=FinancialTypeFactory(slug="donation"),
    )
    body = data.draw(bodies({"reason": field_values("text")}, {"reason": "Donor asked"}))
    post(staff, url("recurring-contribution-list") + f"{recurring.pk}/cancel/", body)


# -- lists ----------------------------------------------------------------------------------

LIST_FILTERS = {
    "membership-type-list": ["is_active", "slug", "period_type", "duration_unit"],
    "membership-list": [
        "contact",
        "membership_type",
        "inherited_from",
        "status",
        "end_date_after",
        "end_date_before",
    ],
    "membership-status-rule-list": [],
    "event-list": ["starts_after", "starts_before", "search", "is_active", "is_public"],
    "event-fee-level-list": ["event", "is_active"],
    "participant-role-list": ["is_active", "counts_towards_capacity"],
    "participant-list": ["event", "contact", "status", "registration"],
    "financial-type-list": ["is_active", "is_deductible", "slug"],
    "campaign-list": ["is_active", "slug"],
    "contribution-list": [
        "contact",
        "financial_type",
        "campaign",
        "recurring",
        "status",
        "currency",
        "received_after",
        "received_before",
        "created_after",
        "created_before",
        "payment_method",
        "receipt_status",
    ],
    "recurring-contribution-list": [
        "contact",
        "status",
        "next_date_after",
        "next_date_before",
        "frequency_unit",
        "processor",
    ],
    "event-feed": [],
}
COMMON_PARAMS = ["ordering", "cursor", "page_size", "format", "limit", "offset", "page"]

query_value = st.one_of(
    junk_text,
    st.integers().map(str),
    st.sampled_from([str(n) for n in HUGE]),
    st.sampled_from(
        ["true", "false", "1", "0", "yes", "-id", "id,-id", "total_amount", "json", "api", "ics"]
    ),
    PLAUSIBLE["date"],
    PLAUSIBLE["datetime"],
)


@pytest.mark.parametrize("name", sorted(LIST_FILTERS))
@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(data=st.data())
def test_list_filters_never_500(staff, world, data, name):
    keys = LIST_FILTERS[name] + COMMON_PARAMS
    params = data.draw(
        st.dictionaries(
            st.one_of(st.sampled_from(keys), st.text(max_size=8)),
            st.one_of(query_value, st.lists(query_value, max_size=3)),
            max_size=4,
        )
    )
    response = staff.get(url(name), params)
    assert response.status_code < 500, (name, params, response.content[:2000])


@FUZZ
@given(data=st.data(), resource=st.sampled_from(["membership-type", "event"]))
def test_full_updates_never_500(staff, world, data, resource):
    fields = membership_type_fields(world) if resource == "membership-type" else event_fields(world)
    target = world["mtype"] if resource == "membership-type" else world["event"]
    response = staff.put(
        url(f"{resource}-detail", target.pk),
        data=json.dumps(data.draw(bodies(fields))),
        content_type="application/json",
    )
    assert response.status_code < 500, response.content[:2000]


form_value = st.one_of(query_value, st.lists(query_value, max_size=2))


@FUZZ
@given(
    data=st.data(),
    name=st.sampled_from(
        ["membership-list", "contribution-list", "recurring-contribution-list", "campaign-list"]
    ),
)
def test_form_encoded_bodies_never_500(staff, world, data, name):
    keys = ["contact", "membership_type", "currency", "amount", "line_items", "goal_amount"]
    body = data.draw(
        st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), form_value)
    )
    response = staff.post(url(name), body)
    assert response.status_code < 500, (name, body, response.content[:2000])


# -- regressions found by the tests above -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("contribution-list", "received_after"),
        ("contribution-list", "created_before"),
        ("event-list", "starts_after"),
        ("contact-list", "created_after"),
    ],
)
@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-10:00", "0001-01-01T00:30:00+14:00"])
def test_date_time_filter_beyond_year_9999_in_utc_is_400(staff, world, name, param, moment):
    # Parses as a date-time, but is outside what the databases store once in UTC.
    response = staff.get(url(name), {param: moment})

    assert response.status_code == 400
    assert list(response.json()) == [param.rsplit("_", 1)[0]]
