"""Card-testing defence: velocity limits on payment starts and declines.

Card testers try hundreds of stolen card numbers through a donation form. We
count payment starts, declines and fraud signals per client IP address and per
email address over a sliding window (settings in ``crm_payments.conf``) and
refuse new payments from an address that went over a limit, for a while.
Blocks are rows staff can see and lift in the admin.

What counts as one address:

- an IPv4 address as it is; an IPv6 address by its /64 network, since one
  machine usually holds a whole /64 and could otherwise take a fresh address
  for every attempt (an IPv4-mapped IPv6 address counts as the IPv4 one);
- an email address in lower case.

Counting starts again when a block ends (it expires or staff lift it): the
attempts that caused it never cause a second one.
"""

import datetime
import ipaddress

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import payments_setting
from ..exceptions import PaymentBlocked
from ..models import BlockKind, PaymentBlock, VelocityEvent, VelocityKind

IPV6_PREFIX = 64


def _parse_ip(text):
    """An ``ip_address`` from text such as "1.2.3.4", "1.2.3.4:5678" or "[2001:db8::1]:443"."""
    text = (text or "").strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        # IPv4 with a port (some proxies add it); an IPv6 address has several colons.
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_ip(request):
    """The visitor's IP address as text: REMOTE_ADDR, or X-Forwarded-For behind trusted proxies.

    With TRUSTED_PROXY_COUNT = n > 0, each of our n proxies appended the
    address it received the request from, so the n-th address from the right
    of X-Forwarded-For is the visitor's; anything further left was typed by
    the visitor and is ignored. A request that reached us without passing
    through all of them (a shorter header) is taken from REMOTE_ADDR. With
    the default 0 the header is never read. Returns None when no valid
    address is found (a missing or malformed REMOTE_ADDR).
    """
    address = request.META.get("REMOTE_ADDR", "")
    proxies = payments_setting("TRUSTED_PROXY_COUNT")
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    parsed = _parse_ip(address)
    return str(parsed) if parsed else None


def _ip_key(ip):
    """What we count and block for an IP address: itself, or its /64 for IPv6."""
    parsed = _parse_ip(str(ip)) if ip else None
    if parsed is None:
        return None
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX}", strict=False).network_address)
    return str(parsed)


def _normal_email(email):
    return (email or "").strip().lower()[:254]


def _block_value(kind, key):
    """How a block names its address; IPv6 blocks show their prefix length."""
    if kind == BlockKind.IP and ":" in key:
        return f"{key}/{IPV6_PREFIX}"
    return key


def _blocks(ip, email, since):
    """Blocks of ``ip`` / ``email`` that are active or ended after ``since``."""
    match = Q(pk__in=[])
    if ip:
        match |= Q(kind=BlockKind.IP, value=_block_value(BlockKind.IP, ip))
    if email:
        match |= Q(kind=BlockKind.EMAIL, value=email)
    return list(PaymentBlock.objects.filter(match, expires_at__gte=since))


class _Address:
    """The state of one IP or email address: its active block and its counts."""

    def __init__(self):
        self.block = None
        self.counting_since = None
        self.counts = {}


def _state(ip, email):
    """(ip state, email state) in two queries, whatever the number of events."""
    window_start = timezone.now() - datetime.timedelta(seconds=payments_setting("VELOCITY_WINDOW"))
    states = {BlockKind.IP.value: _Address(), BlockKind.EMAIL.value: _Address()}
    for state in states.values():
        state.counting_since = window_start
    for block in _blocks(ip, email, window_start):
        state = states[block.kind]
        if block.is_active:
            if state.block is None or block.expires_at > state.block.expires_at:
                state.block = block
        else:
            state.counting_since = max(state.counting_since, block.lifted_at or block.expires_at)
    match, aggregates = Q(pk__in=[]), {}
    for kind, field, value in (("ip", "ip", ip), ("email", "email", email)):
        if not value:
            continue
        counted = Q(**{field: value}, created_at__gt=states[kind].counting_since)
        match |= counted
        for event_kind in VelocityKind.values:
            aggregates[f"{kind}__{event_kind}"] = Count("pk", filter=counted & Q(kind=event_kind))
    if aggregates:
        for name, value in VelocityEvent.objects.filter(match).aggregate(**aggregates).items():
            kind, event_kind = name.split("__")
            states[kind].counts[event_kind] = value or 0
    return states["ip"], states["email"]


def active_block(*, ip=None, email=""):
    """The block that stops this IP or email paying now, or None."""
    ip, email = _ip_key(ip), _normal_email(email)
    blocks = [block for block in _blocks(ip, email, timezone.now()) if block.is_active]
    return max(blocks, key=lambda block: block.expires_at, default=None)


def _block(kind, key, reason):
    return PaymentBlock.objects.create(
        kind=kind,
        value=_block_value(kind, key),
        reason=reason,
        expires_at=timezone.now() + datetime.timedelta(seconds=payments_setting("BLOCK_SECONDS")),
    )


def _refuse():
    raise PaymentBlocked(
        _(
            "We cannot take this payment right now because there have been too many "
            "payment attempts. Please try again in a few hours, or contact us."
        )
    )


def check_payment_start(*, ip=None, email=""):
    """Refuse (``PaymentBlocked``) or allow and count a new payment from ip / email.

    Allowed up to MAX_STARTS_PER_IP / MAX_STARTS_PER_EMAIL starts in the
    window; the next one is refused and blocks the address. An address that
    is blocked is refused. Three or four queries, however many events there
    are. Never raises for a missing or malformed address (it is not counted).
    """
    ip, email = _ip_key(ip), _normal_email(email)
    by_ip, by_email = _state(ip, email)
    if by_ip.block or by_email.block:
        _refuse()
    if ip and by_ip.counts[VelocityKind.START] >= payments_setting("MAX_STARTS_PER_IP"):
        _block(BlockKind.IP, ip, _("Too many payments started"))
        _refuse()
    if email and by_email.counts[VelocityKind.START] >= payments_setting("MAX_STARTS_PER_EMAIL"):
        _block(BlockKind.EMAIL, email, _("Too many payments started"))
        _refuse()
    if ip or email:
        VelocityEvent.objects.create(kind=VelocityKind.START, ip=ip, email=email)


def record_decline(*, ip=None, email="", fraud=False):
    """Count a declined payment (``fraud``: the provider flagged it); block over the limits.

    The IP is blocked at its MAX_DECLINES_PER_IP-th decline or MAX_FRAUD_PER_IP-th
    fraud signal in the window, the email at its MAX_DECLINES_PER_EMAIL-th
    decline; a payment flagged as fraud was declined too, so it counts as
    both. Returns the new blocks (usually none).
    """
    ip, email = _ip_key(ip), _normal_email(email)
    if not (ip or email):
        return []
    kind = VelocityKind.FRAUD if fraud else VelocityKind.DECLINE
    VelocityEvent.objects.create(kind=kind, ip=ip, email=email)
    by_ip, by_email = _state(ip, email)
    blocks = []
    if ip and not by_ip.block:
        frauds = by_ip.counts[VelocityKind.FRAUD]
        if frauds >= payments_setting("MAX_FRAUD_PER_IP"):
            blocks.append(_block(BlockKind.IP, ip, _("Payments flagged as fraud")))
        elif by_ip.counts[VelocityKind.DECLINE] + frauds >= payments_setting("MAX_DECLINES_PER_IP"):
            blocks.append(_block(BlockKind.IP, ip, _("Too many declined payments")))
    if email and not by_email.block:
        declines = by_email.counts[VelocityKind.DECLINE] + by_email.counts[VelocityKind.FRAUD]
        if declines >= payments_setting("MAX_DECLINES_PER_EMAIL"):
            blocks.append(_block(BlockKind.EMAIL, email, _("Too many declined payments")))
    return blocks


def lift_block(block, *, actor=None):
    """Staff let an address pay again before its block expires. Idempotent.

    The attempts counted before the lift no longer count towards a new block.
    """
    if block.lifted_at is None:
        block.lifted_at = timezone.now()
        block.lifted_by = actor if getattr(actor, "is_authenticated", False) else None
        block.save(update_fields=["lifted_at", "lifted_by"])
    return block


def purge_old_events():
    """Delete counted events older than the window (a scheduled task calls this)."""
    since = timezone.now() - datetime.timedelta(seconds=payments_setting("VELOCITY_WINDOW"))
    return VelocityEvent.objects.filter(created_at__lt=since).delete()[0]
