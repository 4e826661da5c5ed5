"""REST API of funds, campaigns, contributions and recurring contributions."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.models import Contribution, FinancialType, RecurringContribution
from crm_core.services import contributions as svc
from crm_core.services import memberships
from tests.conftest import grant, walk_pages
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    FinancialTypeFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LIST = reverse("crm_api:contribution-list")


def detail(contribution, action=None):
    name = f"crm_api:contribution-{action}" if action else "crm_api:contribution-detail"
    return reverse(name, args=[contribution.pk])


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def pending(contact, amount="50.00", currency="GBP", **kwargs):
    return svc.create_pending(contact, currency=currency, lines=[{"amount": amount}], **kwargs)


def body(contact, amount="12.50", currency="GBP", **extra):
    return {
        "contact": contact.pk,
        "currency": currency,
        "line_items": [{"kind": "donation", "unit_amount": amount}],
        **extra,
    }


# -- create and read ------------------------------------------------------------------------


def test_creating_a_donation_returns_it_pending_with_amounts_as_text(api, contact):
    response = api.post(LIST, body(contact), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["status"], data["total_amount"], data["currency"]) == ("pending", "12.50", "GBP")
    assert data["line_items"][0]["unit_amount"] == "12.50"
    assert Contribution.objects.get(pk=data["id"]).source == "api"


def test_amounts_show_the_currency_decimal_places(api, contact):
    response = api.post(LIST, body(contact, amount="1500", currency="JPY"), format="json")
    assert response.json()["total_amount"] == "1500"
    response = api.post(LIST, body(contact, amount="1.250", currency="KWD"), format="json")
    assert response.json()["total_amount"] == "1.250"


def test_a_contribution_is_read_with_line_items_and_soft_credits(api, contact):
    honoured = ContactFactory()
    contribution = pending(contact, soft_credits=[{"contact": honoured, "kind": "in_memory"}])
    data = api.get(detail(contribution)).json()
    assert data["soft_credits"] == [
        {
            "id": contribution.soft_credits.get().pk,
            "contact": honoured.pk,
            "kind": "in_memory",
            "amount": "50.00",
        }
    ]
    assert len(data["line_items"]) == 1


def test_soft_credits_are_created_through_the_api(api, contact):
    honoured = ContactFactory()
    response = api.post(
        LIST,
        body(contact, soft_credits=[{"contact": honoured.pk, "kind": "in_honour", "amount": "5"}]),
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["soft_credits"][0]["amount"] == "5.00"


def test_crediting_the_payer_is_a_400_naming_soft_credits(api, contact):
    response = api.post(
        LIST,
        body(contact, soft_credits=[{"contact": contact.pk, "kind": "in_honour"}]),
        format="json",
    )
    assert response.status_code == 400
    assert "soft_credits" in response.json()


def test_a_membership_line_is_created_by_membership_id(api, contact):
    membership = memberships.join(contact, MembershipTypeFactory(), pending=True)
    response = api.post(
        LIST,
        {
            "contact": contact.pk,
            "currency": "GBP",
            "line_items": [
                {"kind": "membership", "unit_amount": "30.00", "membership": membership.pk}
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["line_items"][0]["membership"] == membership.pk


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("-5", "GBP"),
        ("0", "GBP"),
        ("abc", "GBP"),
        ("1e30", "GBP"),
        ("NaN", "GBP"),
        ("Infinity", "GBP"),
        ("12.345", "GBP"),
        ("1.5", "JPY"),
        (12.5, "GBP"),
        (True, "GBP"),
        (["12"], "GBP"),
        ({"value": 12}, "GBP"),
        (None, "GBP"),
        ("9" * 10000, "GBP"),
    ],
)
def test_bad_amounts_are_a_400_naming_line_items(api, contact, amount, currency):
    response = api.post(LIST, body(contact, amount=amount, currency=currency), format="json")
    assert response.status_code == 400
    assert "line_items" in response.json()
    assert not Contribution.objects.exists()


@pytest.mark.parametrize("currency", ["XXX", "usd1", "", 826, None, ["GBP"], "G" * 5000])
def test_unknown_currencies_are_a_400_naming_currency(api, contact, currency):
    response = api.post(LIST, body(contact, currency=currency), format="json")
    assert response.status_code == 400
    assert "currency" in response.json()


def test_lowercase_currency_is_accepted(api, contact):
    assert api.post(LIST, body(contact, currency="usd"), format="json").json()["currency"] == "USD"


@pytest.mark.parametrize(
    "extra",
    [
        {"contact": 10**30},
        {"contact": 999999},
        {"contact": True},
        {"financial_type": 999999},
        {"line_items": []},
        {"line_items": "donation"},
        {"line_items": [{"kind": "membership", "unit_amount": "5", "membership": 999999}]},
        {"line_items": [{"kind": "event_fee", "unit_amount": "5"}]},
        {"line_items": [{"unit_amount": "5", "colour": "red"}]},
        {"line_items": [{"unit_amount": "5", "quantity": 0}]},
        {"payment_method": "bitcoin"},
        {"status": "completed"},
        {"note": "x" * 30000},
    ],
)
def test_bad_requests_are_a_400_and_save_nothing(api, contact, extra):
    response = api.post(LIST, {**body(contact), **extra}, format="json")
    assert response.status_code == 400, response.content
    assert not Contribution.objects.exists()


def test_amount_and_status_cannot_be_changed_with_put_or_patch(api, contact):
    contribution = pending(contact)
    assert (
        api.patch(detail(contribution), {"total_amount": "1.00"}, format="json").status_code == 405
    )
    assert api.put(detail(contribution), {"status": "completed"}, format="json").status_code == 405
    assert api.delete(detail(contribution)).status_code == 405
    contribution.refresh_from_db()
    assert (contribution.total_amount, contribution.status) == (Decimal("50.00"), "pending")


def test_unknown_ids_are_a_404(api):
    assert api.get(reverse("crm_api:contribution-detail", args=[999999])).status_code == 404
    response = api.post(reverse("crm_api:contribution-refund", args=[999999]), {}, format="json")
    assert response.status_code == 404


# -- filters --------------------------------------------------------------------------------


def test_list_filters_by_contact_status_currency_and_campaign(api, contact):
    appeal = CampaignFactory()
    mine = pending(contact, campaign=appeal)
    svc.complete(pending(contact, currency="EUR"))
    pending(ContactFactory())

    def ids(**params):
        return [row["id"] for row in api.get(LIST, params).json()["results"]]

    assert len(ids(contact=contact.pk)) == 2
    assert ids(campaign=appeal.pk) == [mine.pk]
    assert len(ids(status="completed")) == 1
    assert len(ids(currency="eur")) == 1
    assert len(ids(status=["pending", "completed"])) == 3


@pytest.mark.parametrize(
    "params",
    [
        {"contact": "abc"},
        {"status": "paid"},
        {"received_after": "yesterday"},
        {"created_before": "x"},
        {"campaign": 10**30},
    ],
)
def test_bad_filters_are_a_400(api, params):
    assert api.get(LIST, params).status_code == 400


def test_received_range_filter(api, contact):
    svc.complete(pending(contact))
    pending(contact)
    response = api.get(LIST, {"received_after": "2000-01-01T00:00:00Z"})
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize("ordering", ["received_at", "-received_at"])
def test_paging_by_received_at_returns_each_contribution_once(api, contact, ordering):
    paid = svc.complete(pending(contact))
    unpaid = [pending(contact).pk for _ in range(3)]
    ids = walk_pages(api, LIST, {"ordering": ordering, "page_size": 1})
    # Not received yet sorts as latest: last going up, first going down.
    if ordering == "received_at":
        assert ids == [paid.pk, *unpaid]
    else:
        assert ids == [*reversed(unpaid), paid.pk]


# -- actions --------------------------------------------------------------------------------


def test_recording_an_offline_payment_completes_it(api, contact):
    contribution = pending(contact)
    response = api.post(
        detail(contribution, "complete"),
        {"payment_method": "cheque", "transaction_id": "cheque 000123"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["payment_method"]) == ("completed", "cheque")


def test_a_replayed_complete_is_a_200_and_changes_nothing(api, contact):
    contribution = pending(contact)
    first = api.post(
        detail(contribution, "complete"), {"payment_method": "cash"}, format="json"
    ).json()
    second = api.post(detail(contribution, "complete"), {"payment_method": "cheque"}, format="json")
    assert second.status_code == 200
    assert second.json() == {**first, "updated_at": second.json()["updated_at"]}
    assert second.json()["updated_at"] == first["updated_at"]


def test_a_card_payment_cannot_be_recorded_by_hand(api, contact):
    response = api.post(
        detail(pending(contact), "complete"), {"payment_method": "card"}, format="json"
    )
    assert response.status_code == 400
    assert "payment_method" in response.json()


def test_a_partial_refund_then_the_rest(api, contact):
    contribution = svc.complete(pending(contact))
    response = api.post(
        detail(contribution, "refund"), {"amount": "20.00", "reason": "Asked"}, format="json"
    )
    assert (response.status_code, response.json()["status"]) == (200, "partially_refunded")
    assert response.json()["refunded_amount"] == "20.00"
    response = api.post(detail(contribution, "refund"), {}, format="json")
    assert (response.json()["status"], response.json()["refunded_amount"]) == ("refunded", "50.00")


def test_refunding_more_than_was_paid_is_a_409_with_a_message(api, contact):
    contribution = svc.complete(pending(contact))
    response = api.post(detail(contribution, "refund"), {"amount": "50.01"}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "At most 50.00 GBP is left to refund.",
        "code": "RefundNotAllowed",
    }


def test_refunding_a_pending_contribution_is_a_409(api, contact):
    response = api.post(detail(pending(contact), "refund"), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "RefundNotAllowed"


@pytest.mark.parametrize("amount", ["-1", "0", "abc", "1.001", 5.5, False, [1]])
def test_bad_refund_amounts_are_a_400_naming_amount(api, contact, amount):
    contribution = svc.complete(pending(contact))
    response = api.post(detail(contribution, "refund"), {"amount": amount}, format="json")
    assert response.status_code == 400
    assert "amount" in response.json()


def test_cancelling_and_failing_through_the_api(api, contact):
    first, second = pending(contact), pending(contact)
    assert (
        api.post(detail(first, "fail"), {"reason": "Declined"}, format="json").json()["status"]
        == "failed"
    )
    assert api.post(detail(second, "cancel"), {}, format="json").json()["status"] == "cancelled"


def test_cancelling_a_paid_contribution_is_a_409(api, contact):
    response = api.post(detail(svc.complete(pending(contact)), "cancel"), {}, format="json")
    assert response.status_code == 409
    assert "refund it instead" in response.json()["detail"]


# -- permissions ----------------------------------------------------------------------------


def client_with(*perms):
    client = APIClient()
    client.force_authenticate(grant(UserFactory(), *perms))
    return client


def test_anonymous_requests_are_refused(contact):
    assert APIClient().get(LIST).status_code == 401


def test_reading_needs_the_view_permission(contact):
    assert client_with().get(LIST).status_code == 403
    assert client_with("crm_core.view_contribution").get(LIST).status_code == 200


def test_recording_a_payment_needs_its_permission(contact):
    contribution = pending(contact)
    client = client_with("crm_core.view_contribution", "crm_core.change_contribution")
    response = client.post(
        detail(contribution, "complete"), {"payment_method": "cash"}, format="json"
    )
    assert response.status_code == 403
    client = client_with("crm_core.view_contribution", "crm_core.record_offline_payment")
    response = client.post(
        detail(contribution, "complete"), {"payment_method": "cash"}, format="json"
    )
    assert response.status_code == 200


def test_refunding_needs_its_permission(contact):
    contribution = svc.complete(pending(contact))
    client = client_with("crm_core.view_contribution", "crm_core.change_contribution")
    assert client.post(detail(contribution, "refund"), {}, format="json").status_code == 403
    contribution.refresh_from_db()
    assert contribution.status == "completed"


def test_creating_needs_the_add_permission(contact):
    client = client_with("crm_core.view_contribution")
    assert client.post(LIST, body(contact), format="json").status_code == 403


# -- queries --------------------------------------------------------------------------------


def make_contributions(count):
    for _ in range(count):
        contact = ContactFactory()
        svc.create_pending(
            contact,
            currency="GBP",
            lines=[{"amount": "5"}, {"amount": "10", "quantity": 2}],
            soft_credits=[{"contact": ContactFactory(), "kind": "in_honour"}],
        )


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    ("url", "make"),
    [
        (LIST, make_contributions),
        (reverse("crm_api:recurring-contribution-list"), None),
        (reverse("crm_api:financial-type-list"), None),
        (reverse("crm_api:campaign-list"), None),
    ],
)
def test_lists_run_the_same_queries_for_one_row_as_for_twenty(api, url, make):
    def add(count):
        if make:
            make(count)
        elif "recurring" in url:
            for _ in range(count):
                svc.create_recurring(
                    ContactFactory(),
                    amount="5",
                    currency="GBP",
                    frequency_unit="month",
                    financial_type=FinancialType.objects.get(slug="donation"),
                )
        elif "financial" in url:
            for _ in range(count):
                FinancialTypeFactory(slug=f"fund-{FinancialType.objects.count()}")
        else:
            for _ in range(count):
                CampaignFactory()

    add(1)
    one = count_queries(api, url)
    add(19)
    assert count_queries(api, url) == one


def test_the_contribution_list_takes_three_queries_after_authentication(api):
    make_contributions(5)
    with CaptureQueriesContext(connection) as ctx:
        api.get(LIST)
    # contributions, line items, soft credits
    assert len([q for q in ctx.captured_queries if "crm_core_" in q["sql"]]) == 3


# -- funds, campaigns and recurring ----------------------------------------------------------


def test_a_fund_in_use_cannot_be_deleted(api, contact):
    fund = FinancialTypeFactory(slug="roof-appeal")
    pending(contact, financial_type=fund)
    response = api.delete(reverse("crm_api:financial-type-detail", args=[fund.pk]))
    assert response.status_code == 409
    assert FinancialType.objects.filter(pk=fund.pk).exists()


def test_an_unused_fund_can_be_deleted(api):
    fund = FinancialTypeFactory(slug="spare")
    assert api.delete(reverse("crm_api:financial-type-detail", args=[fund.pk])).status_code == 204


def test_a_campaign_goal_is_checked_against_its_currency(api):
    url = reverse("crm_api:campaign-list")
    response = api.post(
        url,
        {"name": "Roof", "slug": "roof", "goal_amount": "10.5", "currency": "JPY"},
        format="json",
    )
    assert response.status_code == 400
    assert "goal_amount" in response.json()
    response = api.post(
        url,
        {"name": "Roof", "slug": "roof", "goal_amount": "5000", "currency": "gbp"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["goal_amount"], response.json()["currency"]) == ("5000.00", "GBP")


def test_setting_up_and_cancelling_a_recurring_contribution(api, contact):
    url = reverse("crm_api:recurring-contribution-list")
    fund = FinancialType.objects.get(slug="donation")
    response = api.post(
        url,
        {
            "contact": contact.pk,
            "amount": "10.00",
            "currency": "GBP",
            "frequency_unit": "month",
            "financial_type": fund.pk,
            "start_date": "2026-01-31",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["status"], response.json()["next_date"]) == ("pending", "2026-01-31")
    cancel = reverse("crm_api:recurring-contribution-cancel", args=[response.json()["id"]])
    assert api.post(cancel, {}, format="json").status_code == 400
    response = api.post(cancel, {"reason": "Lost job"}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")


@pytest.mark.parametrize("ordering", ["next_date", "-next_date"])
def test_paging_by_next_date_returns_each_recurring_contribution_once(api, contact, ordering):
    fund = FinancialType.objects.get(slug="donation")
    made = [
        svc.create_recurring(
            contact, amount="10", currency="GBP", frequency_unit="month", financial_type=fund
        )
        for _ in range(4)
    ]
    for recurring in made[1:]:
        svc.cancel_recurring(recurring, reason="Lost job")  # no next date
    url = reverse("crm_api:recurring-contribution-list")
    ids = walk_pages(api, url, {"ordering": ordering, "page_size": 1})
    ended = [recurring.pk for recurring in made[1:]]
    if ordering == "next_date":
        assert ids == [made[0].pk, *ended]
    else:
        assert ids == [*reversed(ended), made[0].pk]


@pytest.mark.parametrize(
    "extra",
    [
        {"amount": "0"},
        {"amount": 1.5},
        {"currency": "XXX"},
        {"frequency_unit": "week"},
        {"frequency_interval": 0},
        {"start_date": "2999-01-01"},
        {"installments": -1},
        {"frequency_unit": "year", "frequency_interval": 10, "installments": 1200},
    ],
)
def test_bad_recurring_contributions_are_a_400(api, contact, extra):
    fund = FinancialType.objects.get(slug="donation")
    data = {
        "contact": contact.pk,
        "amount": "10.00",
        "currency": "GBP",
        "frequency_unit": "month",
        "financial_type": fund.pk,
        **extra,
    }
    response = api.post(reverse("crm_api:recurring-contribution-list"), data, format="json")
    assert response.status_code == 400
    assert not RecurringContribution.objects.exists()
