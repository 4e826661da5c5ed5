"""What every submission service returns, and the thank-you address."""

from contextlib import suppress
from dataclasses import dataclass
from functools import wraps

from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse

from crm_core.services import consent as consent_services
from crm_core.services.contacts import upsert_contact
from crm_payments.exceptions import PaymentBlocked
from crm_payments.services import velocity
from crm_payments.services.payments import start_payment
from crm_payments.services.velocity import client_ip
from crm_payments.views import visitor_urls

from ..models import Submission
from ..placement import sign_placement

THANKS_SALT = "crm_forms.thanks"


def thanks_url(submission):
    token = signing.dumps(str(submission.reference), salt=THANKS_SALT)
    return reverse("crm_forms:thanks", args=[token])


def read_thanks_token(token):
    """The submission a thank-you address names, or None."""
    try:
        reference = signing.loads(token, salt=THANKS_SALT)
    except signing.BadSignature:
        return None
    return (
        Submission.objects.select_related("contribution", "membership__membership_type")
        .filter(reference=reference)
        .first()
    )


@dataclass
class SubmissionResult:
    submission: Submission
    instructions: str = ""
    replay: bool = False

    @property
    def next_url(self):
        return self.submission.next_url or thanks_url(self.submission)

    @classmethod
    def replayed(cls, token):
        return cls(Submission.objects.get(token=token), replay=True)


def upsert_visitor(data, *, source):
    """The contact a visitor's name and email describe, matched or created.

    A visitor who types someone else's email must not rename them, so a match
    only fills in what the contact lacks; a weaker match creates a new contact
    and queues the pair for staff (``upsert_contact``). A visitor identified
    by a personal link or login is their own contact, as they are.
    """
    if data.get("contact") is not None:
        return data["contact"]
    return upsert_contact(
        {
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "emails": [data["email"]],
        },
        source=source,
        update_mode="fill_blanks",
    ).contact


def record_consents(form, contact, placement, *, ip, source):
    """A consent record for each box ticked, with the exact wording shown and where."""
    where = f"page {placement.page_id} revision {placement.revision_id} block {placement.block_id}"
    for item, granted in form.given_consents():
        if granted:
            consent_services.record_consent(
                contact,
                purpose=item["purpose"],
                channel=item["channel"],
                granted=True,
                wording=item["wording"],
                source=source,
                source_reference=where,
                ip_address=ip,
            )


def claim_submission(token, kind, placement):
    """A new Submission for this one-time form token, or None when the token was
    used before (a replay). Call it inside the submission's transaction."""
    try:
        with transaction.atomic():
            return Submission.objects.create(
                token=token, kind=kind, placement=sign_placement(placement)[:255]
            )
    except IntegrityError:
        return None


def keeping_payment_blocks(submit):
    """Wrap a submission service that starts a payment in its transaction.

    When the card-testing defence refuses the payment, the block it wrote is
    rolled back with the rest; this writes it again on its own (the check
    refuses again and records it), so staff see it.
    """

    @wraps(submit)
    def wrapper(request, form, placement, config):
        try:
            return submit(request, form, placement, config)
        except PaymentBlocked:
            with suppress(PaymentBlocked):
                velocity.check_payment_start(
                    ip=client_ip(request), email=form.cleaned_data.get("email", "")
                )
            raise

    return wrapper


def start_visitor_payment(request, contribution, data, *, recurring=None):
    """Start paying ``contribution`` with the method the visitor chose; returns
    the provider's ``PaymentStart`` (a checkout address or instructions)."""
    urls = visitor_urls(request, back=request.POST.get("back", "") or "")
    _payment, start = start_payment(
        contribution,
        provider=data.get("payment_method") or "offline",
        email=data["email"],
        client_ip=client_ip(request),
        recurring=recurring,
        **urls,
    )
    return start
