"""Card-testing defence: velocity limits on payment starts and declines.

Card testers try hundreds of stolen card numbers through a donation form. We
count payment starts, declines and fraud signals per client IP address and per
email address over a sliding window (settings in ``crm_payments.conf``) and
refuse new payments from an address that went over a limit, for a while.
Blocks are rows staff can see and lift in the admin.
"""

import datetime
import ipaddress

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import payments_setting
from ..exceptions import PaymentBlocked
from ..models import BlockKind, PaymentBlock, VelocityEvent, VelocityKind


def client_ip(request):
    """The visitor's IP address: REMOTE_ADDR, or X-Forwarded-For behind trusted proxies.

    With TRUSTED_PROXY_COUNT = n > 0, the n-th address from the right of
    X-Forwarded-For is the one our own nearest proxy saw; anything further
    left was typed by the client and is ignored. Returns None when no valid
    address is found.
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
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _normal_email(email):
    return (email or "").strip().lower()[:254]


def _window_start():
    return timezone.now() - datetime.timedelta(seconds=payments_setting("VELOCITY_WINDOW"))


def active_block(*, ip=None, email=""):
    """The block that stops this IP or email paying now, or None."""
    email = _normal_email(email)
    match = Q(pk__in=[])
    if ip:
        match |= Q(kind=BlockKind.IP, value=ip)
    if email:
        match |= Q(kind=BlockKind.EMAIL, value=email)
    return (
        PaymentBlock.objects.filter(match, lifted_at=None, expires_at__gt=timezone.now())
        .order_by("-expires_at")
        .first()
    )


def _count(kind, *, ip=None, email=""):
    since = _window_start()
    if ip:
        return VelocityEvent.objects.filter(kind=kind, ip=ip, created_at__gte=since).count()
    return VelocityEvent.objects.filter(kind=kind, email=email, created_at__gte=since).count()


def _block(kind, value, reason):
    if active_block(**({"ip": value} if kind == BlockKind.IP else {"email": value})):
        return
    PaymentBlock.objects.create(
        kind=kind,
        value=value,
        reason=reason,
        expires_at=timezone.now() + datetime.timedelta(seconds=payments_setting("BLOCK_SECONDS")),
    )


def _refuse():
    raise PaymentBlocked(
        _(
            "We cannot take this payment right now because of too many attempts. "
            "Please try again later or contact us."
        )
    )


def check_payment_start(*, ip=None, email=""):
    """Refuse (``PaymentBlocked``) or allow and count a new payment from ip / email."""
    email = _normal_email(email)
    if active_block(ip=ip, email=email):
        _refuse()
    if ip and _count(VelocityKind.START, ip=ip) >= payments_setting("MAX_STARTS_PER_IP"):
        _block(BlockKind.IP, ip, _("Too many payments started"))
        _refuse()
    if email and _count(VelocityKind.START, email=email) >= payments_setting(
        "MAX_STARTS_PER_EMAIL"
    ):
        _block(BlockKind.EMAIL, email, _("Too many payments started"))
        _refuse()
    VelocityEvent.objects.create(kind=VelocityKind.START, ip=ip, email=email)


def record_decline(*, ip=None, email="", fraud=False):
    """Count a declined payment (``fraud``: the provider flagged it); block over the limits."""
    email = _normal_email(email)
    kind = VelocityKind.FRAUD if fraud else VelocityKind.DECLINE
    VelocityEvent.objects.create(kind=kind, ip=ip, email=email)
    if ip:
        if _count(VelocityKind.DECLINE, ip=ip) >= payments_setting("MAX_DECLINES_PER_IP"):
            _block(BlockKind.IP, ip, _("Too many declined payments"))
        if _count(VelocityKind.FRAUD, ip=ip) >= payments_setting("MAX_FRAUD_PER_IP"):
            _block(BlockKind.IP, ip, _("Payments flagged as fraud"))
    if email and _count(VelocityKind.DECLINE, email=email) >= payments_setting(
        "MAX_DECLINES_PER_EMAIL"
    ):
        _block(BlockKind.EMAIL, email, _("Too many declined payments"))


def lift_block(block, *, actor=None):
    """Staff let an address pay again before its block expires. Idempotent."""
    if block.lifted_at is None:
        block.lifted_at = timezone.now()
        block.lifted_by = actor if getattr(actor, "is_authenticated", False) else None
        block.save(update_fields=["lifted_at", "lifted_by"])
    return block


def purge_old_events():
    """Delete counted events older than the window (a scheduled task calls this)."""
    return VelocityEvent.objects.filter(created_at__lt=_window_start()).delete()[0]
