"""Card-testing defence: limits on payment starts, declines and fraud signals."""

import datetime
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone
from freezegun import freeze_time

from crm_core.services import contributions as contribution_services
from crm_payments.exceptions import PaymentBlocked
from crm_payments.models import BlockKind, PaymentBlock, PaymentStatus, VelocityEvent
from crm_payments.providers.base import PaymentProvider, PaymentStart
from crm_payments.services import payments, velocity
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"
EMAIL = "Tester@Example.org"


class FakeCardProvider(PaymentProvider):
    """An online provider that sends the visitor to a hosted page and talks to nobody."""

    identifier = "fakecard"
    verbose_name = "Fake card"

    def start(self, payment, *, return_url, cancel_url, recurring=None):
        return PaymentStart(redirect_url=f"https://pay.example/{payment.reference}")


@pytest.fixture
def fake_card(settings):
    settings.CRM = {
        **settings.CRM,
        "PAYMENT_PROVIDERS": [
            "crm_payments.providers.offline.OfflineProvider",
            "tests.test_payments_velocity.FakeCardProvider",
        ],
    }
    return settings


def pending():
    return contribution_services.create_pending(
        ContactFactory(), currency="GBP", lines=[{"amount": Decimal("5.00")}]
    )


def starts(count, **address):
    for _ in range(count):
        velocity.check_payment_start(**address)


def declines(count, **address):
    for _ in range(count):
        velocity.record_decline(**address)


def blocked(**address):
    return velocity.active_block(**address) is not None


# -- limits trip at their threshold, not before -----------------------------------------------


def test_an_ip_is_blocked_at_its_tenth_decline_and_not_before():
    declines(9, ip=IP)
    assert not blocked(ip=IP)
    declines(1, ip=IP)
    block = velocity.active_block(ip=IP)
    assert (block.kind, block.value, block.reason) == ("ip", IP, "Too many declined payments")


def test_an_ip_is_blocked_at_its_third_fraud_signal_and_not_before():
    velocity.record_decline(ip=IP, fraud=True)
    velocity.record_decline(ip=IP, fraud=True)
    assert not blocked(ip=IP)
    velocity.record_decline(ip=IP, fraud=True)
    assert velocity.active_block(ip=IP).reason == "Payments flagged as fraud"


def test_an_email_is_blocked_at_its_fifth_decline_whatever_the_case_or_the_ip():
    for number in range(4):
        velocity.record_decline(ip=f"198.51.100.{number}", email=EMAIL.upper())
    assert not blocked(email=EMAIL)
    velocity.record_decline(ip="198.51.100.9", email=EMAIL.lower())
    assert blocked(email=EMAIL)
    assert not blocked(ip="198.51.100.9")


def test_thirty_starts_from_one_ip_are_allowed_and_the_thirty_first_is_refused():
    starts(30, ip=IP)
    with pytest.raises(PaymentBlocked) as refused:
        velocity.check_payment_start(ip=IP)
    assert "too many payment attempts" in str(refused.value.message)
    assert PaymentBlock.objects.get().reason == "Too many payments started"


def test_ten_starts_for_one_email_are_allowed_and_the_eleventh_is_refused():
    for number in range(10):
        velocity.check_payment_start(ip=f"198.51.100.{number}", email=EMAIL)
    with pytest.raises(PaymentBlocked):
        velocity.check_payment_start(ip="198.51.100.99", email=EMAIL)
    assert PaymentBlock.objects.get().kind == BlockKind.EMAIL


def test_a_blocked_address_is_refused_and_the_refusal_is_not_counted():
    declines(10, ip=IP)
    for _ in range(3):
        with pytest.raises(PaymentBlocked):
            velocity.check_payment_start(ip=IP, email="someone@example.org")
    assert PaymentBlock.objects.count() == 1
    assert not VelocityEvent.objects.filter(kind="start").exists()


def test_other_addresses_are_not_affected_by_a_block():
    declines(10, ip=IP, email=EMAIL)
    velocity.check_payment_start(ip="203.0.113.8", email="other@example.org")


# -- the window, expiry and lifting -------------------------------------------------------------


def test_declines_older_than_two_hours_no_longer_count():
    with freeze_time("2026-03-01 10:00"):
        declines(9, ip=IP)
    with freeze_time("2026-03-01 12:00:01"):
        declines(1, ip=IP)
        assert not blocked(ip=IP)
    with freeze_time("2026-03-01 11:59"):
        assert velocity.purge_old_events() == 0


def test_declines_within_two_hours_still_count():
    with freeze_time("2026-03-01 10:00"):
        declines(9, ip=IP)
    with freeze_time("2026-03-01 11:59:59"):
        declines(1, ip=IP)
        assert blocked(ip=IP)


def test_a_block_expires_after_two_hours_and_the_address_starts_afresh():
    with freeze_time("2026-03-01 10:00"):
        declines(10, ip=IP)
        assert blocked(ip=IP)
    with freeze_time("2026-03-01 11:59"):
        assert blocked(ip=IP)
    with freeze_time("2026-03-01 12:00:01"):
        assert not blocked(ip=IP)
        velocity.check_payment_start(ip=IP)
        declines(1, ip=IP)
        assert not blocked(ip=IP)


def test_a_lifted_block_lets_the_address_pay_again(superuser):
    starts(30, ip=IP)
    with pytest.raises(PaymentBlocked):
        velocity.check_payment_start(ip=IP)
    block = PaymentBlock.objects.get()

    velocity.lift_block(block, actor=superuser)

    block.refresh_from_db()
    assert (block.is_active, block.lifted_by) == (False, superuser)
    # The thirty starts before the lift do not block it again at once.
    velocity.check_payment_start(ip=IP)
    assert PaymentBlock.objects.count() == 1


def test_after_a_lift_new_declines_count_from_zero():
    declines(10, ip=IP)
    velocity.lift_block(velocity.active_block(ip=IP))
    declines(9, ip=IP)
    assert not blocked(ip=IP)
    declines(1, ip=IP)
    assert blocked(ip=IP)
    assert PaymentBlock.objects.count() == 2


def test_lifting_twice_keeps_the_first_lift():
    declines(10, ip=IP)
    block = velocity.active_block(ip=IP)
    with freeze_time(timezone.now() + datetime.timedelta(minutes=1)):
        velocity.lift_block(block)
    first = block.lifted_at
    velocity.lift_block(block)
    block.refresh_from_db()
    assert block.lifted_at == first


def test_purging_deletes_only_events_older_than_the_window():
    with freeze_time("2026-03-01 08:00"):
        declines(3, ip=IP)
    with freeze_time("2026-03-01 11:00"):
        declines(2, ip=IP)
        assert velocity.purge_old_events() == 3
    assert VelocityEvent.objects.count() == 2


# -- the client's IP address ------------------------------------------------------------------


def request(remote_addr="192.0.2.1", forwarded=None):
    meta = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def proxies(settings, count):
    settings.CRM = {**settings.CRM, "TRUSTED_PROXY_COUNT": count}


def test_a_spoofed_forwarded_for_is_ignored_by_default(settings):
    proxies(settings, 0)
    assert velocity.client_ip(request("192.0.2.1", "10.9.9.9")) == "192.0.2.1"


def test_with_one_trusted_proxy_the_last_forwarded_address_is_the_client(settings):
    proxies(settings, 1)
    # The visitor typed 10.9.9.9; our proxy appended the address it saw.
    assert velocity.client_ip(request("10.0.0.2", "10.9.9.9, 198.51.100.4")) == "198.51.100.4"


def test_with_two_trusted_proxies_the_second_from_the_right_is_the_client(settings):
    proxies(settings, 2)
    forwarded = "10.9.9.9, 198.51.100.4, 10.0.0.3"
    assert velocity.client_ip(request("10.0.0.2", forwarded)) == "198.51.100.4"


def test_a_request_that_bypassed_the_proxies_is_taken_from_remote_addr(settings):
    proxies(settings, 2)
    assert velocity.client_ip(request("192.0.2.1", "10.9.9.9")) == "192.0.2.1"
    assert velocity.client_ip(request("192.0.2.1")) == "192.0.2.1"


def test_ports_and_brackets_added_by_proxies_are_removed(settings):
    proxies(settings, 1)
    assert velocity.client_ip(request("10.0.0.2", "198.51.100.4:5123")) == "198.51.100.4"
    assert velocity.client_ip(request("10.0.0.2", "[2001:db8::1]:443")) == "2001:db8::1"


@pytest.mark.parametrize("remote_addr", ["", "unknown", "999.1.1.1", "1.2.3.4\x00", None])
def test_a_missing_or_malformed_address_is_none(remote_addr):
    req = RequestFactory().get("/")
    if remote_addr is None:
        del req.META["REMOTE_ADDR"]
    else:
        req.META["REMOTE_ADDR"] = remote_addr
    assert velocity.client_ip(req) is None


def test_a_payment_without_any_address_is_allowed_and_not_counted():
    starts(50)
    velocity.record_decline()
    assert not VelocityEvent.objects.exists()


def test_ipv6_addresses_are_normalised():
    assert velocity.client_ip(request("2001:DB8:0:0::1")) == "2001:db8::1"
    assert velocity.client_ip(request("::ffff:198.51.100.4")) == "198.51.100.4"


def test_ipv6_addresses_in_one_64_network_count_together():
    for number in range(10):
        velocity.record_decline(ip=f"2001:db8:1:2::{number + 1:x}")
    block = velocity.active_block(ip="2001:db8:1:2:ffff::1")
    assert block.value == "2001:db8:1:2::/64"
    assert not blocked(ip="2001:db8:1:3::1")
    with pytest.raises(PaymentBlocked):
        velocity.check_payment_start(ip="2001:db8:1:2:abcd::9")


def test_ipv4_mapped_ipv6_counts_as_the_ipv4_address():
    declines(9, ip="198.51.100.4")
    velocity.record_decline(ip="::ffff:198.51.100.4")
    assert blocked(ip="198.51.100.4")


# -- through start_payment ----------------------------------------------------------------------


def test_pay_later_is_never_velocity_limited(fake_card):
    declines(10, ip=IP, email=EMAIL)
    payment, _start = payments.start_payment(
        pending(), provider="offline", return_url="/", cancel_url="/", client_ip=IP, email=EMAIL
    )
    assert payment.status == PaymentStatus.PENDING
    assert not VelocityEvent.objects.filter(kind="start").exists()


def test_an_online_provider_is_refused_for_a_blocked_ip_and_nothing_is_created(fake_card):
    payment, start = payments.start_payment(
        pending(), provider="fakecard", return_url="/", cancel_url="/", client_ip=IP
    )
    assert start.redirect_url.startswith("https://pay.example/")
    declines(10, ip=IP)
    contribution = pending()
    with pytest.raises(PaymentBlocked):
        payments.start_payment(
            contribution, provider="fakecard", return_url="/", cancel_url="/", client_ip=IP
        )
    assert not contribution.payments.exists()


def test_declined_online_payments_block_the_ip_through_the_payment_service(fake_card):
    for _ in range(10):
        payment, _start = payments.start_payment(
            pending(), provider="fakecard", return_url="/", cancel_url="/", client_ip=IP
        )
        payments.mark_payment_failed(payment, reason="card_declined")
    with pytest.raises(PaymentBlocked):
        payments.start_payment(
            pending(), provider="fakecard", return_url="/", cancel_url="/", client_ip=IP
        )


# -- queries -----------------------------------------------------------------------------------


def test_checking_a_start_takes_three_queries_however_many_events_there_are(
    django_assert_num_queries,
):
    starts(1, ip=IP, email=EMAIL)
    with django_assert_num_queries(3):
        velocity.check_payment_start(ip=IP, email=EMAIL)
    declines(4, ip=IP, email=EMAIL)
    starts(7, ip=IP, email=EMAIL)
    with django_assert_num_queries(3):
        velocity.check_payment_start(ip=IP, email=EMAIL)
