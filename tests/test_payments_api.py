"""REST API of payments, refunds, disputes and payment blocks, and refunds through the core API."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from crm_core.models import ContributionStatus
from crm_core.services import contributions as contribution_services
from crm_payments.exceptions import ProviderError
from crm_payments.models import PaymentBlock, Refund, RefundStatus
from crm_payments.providers.base import PaymentProvider, PaymentStart, ProviderRefundResult
from crm_payments.services import payments, velocity
from tests.conftest import grant
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

NS = "crm_payments_api"
REFUNDS = reverse(f"{NS}:refund-list")
LISTS = {
    "payment": reverse(f"{NS}:payment-list"),
    "refund": REFUNDS,
    "dispute": reverse(f"{NS}:dispute-list"),
    "paymentblock": reverse(f"{NS}:payment-block-list"),
}
HUGE = [10**30, 2**63, -1, 0]


class FakeCardProvider(PaymentProvider):
    """An online provider whose refunds answer what the test asks for."""

    identifier = "fakecard"
    verbose_name = "Fake card"
    refund_answer = "succeeded"
    refunded = []

    def start(self, payment, *, return_url, cancel_url, recurring=None):
        return PaymentStart(redirect_url="https://pay.example/")

    def refund(self, refund):
        if self.refund_answer == "error":
            raise ProviderError("The card issuer refused the refund.")
        FakeCardProvider.refunded.append(refund.amount)
        return ProviderRefundResult(status=self.refund_answer, provider_id=f"re_{refund.pk}")


def use_fake_card(settings):
    """Offer FakeCardProvider next to pay later; returns the provider class."""
    settings.CRM = {
        **settings.CRM,
        "PAYMENT_PROVIDERS": [
            "crm_payments.providers.offline.OfflineProvider",
            "tests.test_payments_api.FakeCardProvider",
        ],
    }
    FakeCardProvider.refund_answer = "succeeded"
    FakeCardProvider.refunded = []
    return FakeCardProvider


@pytest.fixture
def fake_card(settings):
    return use_fake_card(settings)


@pytest.fixture
def api(superuser):
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def client_with(*perms):
    client = APIClient()
    client.force_authenticate(grant(UserFactory(), *perms))
    return client


def pending(amount="50.00"):
    return contribution_services.create_pending(
        ContactFactory(), currency="GBP", lines=[{"amount": Decimal(amount)}]
    )


def paid_offline(amount="50.00"):
    contribution = pending(amount)
    payments.start_payment(contribution, provider="offline", return_url="/", cancel_url="/")
    return payments.record_offline_payment(contribution, payment_method="cheque")


def paid_by_card(amount="50.00"):
    contribution = pending(amount)
    payment, _start = payments.start_payment(
        contribution, provider="fakecard", return_url="/", cancel_url="/", client_ip="192.0.2.5"
    )
    payments.mark_payment_succeeded(payment, payment_intent_id=f"pi_{payment.pk}")
    contribution.refresh_from_db()
    return contribution


def core_refund_url(contribution):
    return reverse("crm_api:contribution-refund", args=[contribution.pk])


# -- refunds ----------------------------------------------------------------------------------


def test_refunding_an_offline_paid_contribution_records_it_once(api):
    contribution = paid_offline()

    response = api.post(
        REFUNDS, {"contribution": contribution.pk, "amount": "20.00", "reason": "Asked"}, "json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["amount"], body["provider"]) == ("succeeded", "20.00", "offline")
    contribution.refresh_from_db()
    assert contribution.refunded_amount == Decimal("20.00")
    assert contribution.status == ContributionStatus.PARTIALLY_REFUNDED
    assert Refund.objects.count() == 1


def test_a_card_refund_goes_back_through_the_provider(api, fake_card):
    contribution = paid_by_card()

    response = api.post(REFUNDS, {"contribution": contribution.pk}, "json")

    assert response.status_code == 201
    assert response.json()["provider"] == "fakecard"
    assert fake_card.refunded == [Decimal("50.00")]
    contribution.refresh_from_db()
    assert contribution.status == ContributionStatus.REFUNDED


def test_a_provider_refusal_is_a_502_and_the_contribution_is_unchanged(api, fake_card):
    contribution = paid_by_card()
    fake_card.refund_answer = "error"

    response = api.post(REFUNDS, {"contribution": contribution.pk}, "json")

    assert response.status_code == 502
    assert response.json() == {
        "detail": "The card issuer refused the refund.",
        "code": "ProviderError",
    }
    contribution.refresh_from_db()
    assert contribution.status == ContributionStatus.COMPLETED
    assert Refund.objects.get().status == RefundStatus.FAILED


def test_refunding_more_than_is_left_is_a_409(api):
    contribution = paid_offline()
    response = api.post(REFUNDS, {"contribution": contribution.pk, "amount": "50.01"}, "json")
    assert response.status_code == 409
    assert response.json()["detail"] == "At most 50.00 GBP is left to refund."
    assert not Refund.objects.exists()


def test_refunding_a_pending_contribution_is_a_409(api):
    response = api.post(REFUNDS, {"contribution": pending().pk}, "json")
    assert (response.status_code, response.json()["code"]) == (409, "RefundNotAllowed")


@pytest.mark.parametrize(
    "amount", ["-1", "0", "abc", "1.001", "1" * 40, "9" * 41, str(10**30), 5.5, True, [1], {}]
)
def test_bad_refund_amounts_are_a_400_naming_amount(api, amount):
    contribution = paid_offline()
    response = api.post(REFUNDS, {"contribution": contribution.pk, "amount": amount}, "json")
    assert response.status_code == 400
    assert "amount" in response.json()
    assert not Refund.objects.exists()


@pytest.mark.parametrize("contribution", [*HUGE, "x", None, 1.5, True, [1], 999999])
def test_bad_or_unknown_contributions_are_a_400_naming_contribution(api, contribution):
    response = api.post(REFUNDS, {"contribution": contribution}, "json")
    assert response.status_code == 400
    assert "contribution" in response.json()


def test_unknown_fields_and_bad_reasons_are_a_400(api):
    contribution = paid_offline()
    assert api.post(REFUNDS, {"contribution": contribution.pk, "x": 1}, "json").status_code == 400
    response = api.post(REFUNDS, {"contribution": contribution.pk, "reason": ["a"]}, "json")
    assert response.status_code == 400
    assert "reason" in response.json()


# -- the core's contribution refund goes through the payments service ------------------------


def test_the_core_refund_endpoint_refunds_an_offline_payment_once(api):
    contribution = paid_offline()

    response = api.post(core_refund_url(contribution), {"amount": "10.00"}, "json")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["refunded_amount"]) == (
        "partially_refunded",
        "10.00",
    )
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.provider) == (
        Decimal("10.00"),
        "succeeded",
        "offline",
    )


def test_the_core_refund_endpoint_refunds_a_card_payment_at_the_provider(api, fake_card):
    contribution = paid_by_card()

    response = api.post(core_refund_url(contribution), {}, "json")

    assert (response.status_code, response.json()["status"]) == (200, "refunded")
    assert fake_card.refunded == [Decimal("50.00")]


def test_a_refund_the_provider_is_still_working_on_is_a_202(api, fake_card):
    contribution = paid_by_card()
    fake_card.refund_answer = "pending"

    response = api.post(core_refund_url(contribution), {}, "json")

    assert (response.status_code, response.json()["status"]) == (202, "completed")
    assert Refund.objects.get().status == RefundStatus.PENDING


def test_the_core_refund_endpoint_shows_a_provider_refusal_as_a_502(api, fake_card):
    contribution = paid_by_card()
    fake_card.refund_answer = "error"
    assert api.post(core_refund_url(contribution), {}, "json").status_code == 502


def test_the_core_complete_endpoint_settles_the_open_pay_later_payment(api):
    contribution = pending()
    payment, _start = payments.start_payment(
        contribution, provider="offline", return_url="/", cancel_url="/"
    )

    response = api.post(
        reverse("crm_api:contribution-complete", args=[contribution.pk]),
        {"payment_method": "bank_transfer"},
        "json",
    )

    assert (response.status_code, response.json()["status"]) == (200, "completed")
    payment.refresh_from_db()
    assert payment.status == "succeeded"


# -- reading ----------------------------------------------------------------------------------


def test_payments_are_listed_with_amount_contact_and_status(api, fake_card):
    contribution = paid_by_card("12.50")

    body = api.get(LISTS["payment"]).json()

    [row] = body["results"]
    assert (row["amount"], row["currency"], row["status"]) == ("12.50", "GBP", "succeeded")
    assert (row["contribution"], row["contact"]) == (contribution.pk, contribution.contact_id)
    assert row["payment_intent_id"].startswith("pi_")


def test_payments_filter_by_status_provider_contribution_and_needs_attention(api, fake_card):
    card = paid_by_card()
    paid_offline()
    payments.start_payment(pending(), provider="offline", return_url="/", cancel_url="/")

    def ids(**params):
        return [row["contribution"] for row in api.get(LISTS["payment"], params).json()["results"]]

    assert ids(provider="fakecard") == [card.pk]
    assert len(ids(status="succeeded")) == 2
    assert len(ids(status=["pending", "succeeded"])) == 3
    assert ids(contribution=card.pk) == [card.pk]
    assert ids(needs_attention="true") == []
    assert len(ids(needs_attention="false")) == 3


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("payment", {"contribution": 10**30}),
        ("payment", {"status": "nope"}),
        ("payment", {"created_after": "yesterday"}),
        ("refund", {"payment": "x"}),
        ("dispute", {"contribution": -1}),
        ("paymentblock", {"kind": "phone"}),
    ],
)
def test_bad_filters_are_a_400(api, name, params):
    assert api.get(LISTS[name], params).status_code == 400


@pytest.mark.parametrize("name", ["payment", "refund", "dispute", "payment-block"])
@pytest.mark.parametrize("pk", [10**30, 999999])
def test_unknown_ids_are_a_404(api, name, pk):
    assert api.get(reverse(f"{NS}:{name}-detail", args=[pk])).status_code == 404


def test_disputes_and_blocks_are_read(api, fake_card):
    contribution = paid_by_card()
    payments.record_dispute(
        contribution.payments.get(),
        provider_id="dp_1",
        amount=Decimal("50.00"),
        status="needs_response",
        reason="fraudulent",
    )
    for _ in range(10):
        velocity.record_decline(ip="198.51.100.9")

    [dispute] = api.get(LISTS["dispute"]).json()["results"]
    assert (dispute["contribution"], dispute["amount"]) == (contribution.pk, "50.00")
    [block] = api.get(LISTS["paymentblock"], {"active": "true"}).json()["results"]
    assert (block["value"], block["is_active"]) == ("198.51.100.9", True)


# -- lifting blocks -----------------------------------------------------------------------------


def blocked_ip():
    for _ in range(10):
        velocity.record_decline(ip="198.51.100.9")
    return PaymentBlock.objects.get()


def test_lifting_a_block_lets_the_address_pay_again(api, superuser):
    block = blocked_ip()

    response = api.post(reverse(f"{NS}:payment-block-lift", args=[block.pk]))

    assert (response.status_code, response.json()["is_active"]) == (200, False)
    block.refresh_from_db()
    assert block.lifted_by == superuser
    velocity.check_payment_start(ip="198.51.100.9")


def test_lifting_needs_the_change_permission():
    block = blocked_ip()
    url = reverse(f"{NS}:payment-block-lift", args=[block.pk])
    assert client_with("crm_payments.view_paymentblock").post(url).status_code == 403
    block.refresh_from_db()
    assert block.is_active
    assert client_with("crm_payments.change_paymentblock").post(url).status_code == 200


def test_lifting_an_unknown_block_is_a_404(api):
    assert api.post(reverse(f"{NS}:payment-block-lift", args=[10**30])).status_code == 404


# -- authentication and permissions -------------------------------------------------------------


@pytest.mark.parametrize("name", LISTS)
def test_anonymous_requests_are_a_401(name):
    assert APIClient().get(LISTS[name]).status_code == 401


def test_anonymous_refunds_are_a_401():
    contribution = paid_offline()
    assert APIClient().post(REFUNDS, {"contribution": contribution.pk}, "json").status_code == 401


@pytest.mark.parametrize("name", LISTS)
def test_reading_needs_the_view_permission(name):
    assert client_with().get(LISTS[name]).status_code == 403
    assert client_with(f"crm_payments.view_{name}").get(LISTS[name]).status_code == 200


def test_refunding_needs_the_refund_permission():
    contribution = paid_offline()
    client = client_with("crm_payments.view_refund", "crm_payments.add_refund")
    assert client.post(REFUNDS, {"contribution": contribution.pk}, "json").status_code == 403
    assert not Refund.objects.exists()
    client = client_with("crm_core.refund_contribution")
    assert client.post(REFUNDS, {"contribution": contribution.pk}, "json").status_code == 201


def test_refunds_cannot_be_changed_or_deleted(api):
    paid_offline()
    payments.refund_contribution(paid_offline(), amount="1.00")
    url = reverse(f"{NS}:refund-detail", args=[Refund.objects.get().pk])
    assert api.put(url, {}, "json").status_code == 405
    assert api.delete(url).status_code == 405


# -- queries ------------------------------------------------------------------------------------


def make_rows(count):
    for _ in range(count):
        contribution = paid_offline("5.00")
        payments.refund_contribution(contribution, amount="1.00")
        payments.record_dispute(
            contribution.payments.get(),
            provider_id=f"dp_{contribution.pk}",
            amount=Decimal("5.00"),
            status="needs_response",
        )
        PaymentBlock.objects.create(
            kind="email",
            value=f"x{contribution.pk}@example.org",
            reason="r",
            expires_at="2099-01-01T00:00Z",
        )


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("name", LISTS)
def test_lists_run_the_same_queries_for_three_rows_as_for_twenty_five(api, name):
    make_rows(3)
    three = count_queries(api, LISTS[name])
    make_rows(22)
    assert count_queries(api, LISTS[name]) == three
