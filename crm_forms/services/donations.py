"""The donation form's submission service."""

from django.db import transaction
from django.utils.translation import gettext as _

from crm_core.models import Campaign, FinancialType
from crm_core.services import contributions as contribution_services
from crm_core.services.contacts import create_contact
from crm_payments.services.velocity import client_ip

from ..kinds import FREQUENCIES
from .common import (
    SubmissionResult,
    claim_submission,
    keeping_payment_blocks,
    record_consents,
    start_visitor_payment,
    thanks_url,
    upsert_visitor,
)

SOURCE = "form:donation"


@keeping_payment_blocks
def submit_donation(request, form, placement, config):
    """Turn a valid donation form into a contact, a pending contribution and a payment.

    One transaction: the contact (matched or created, never blanked), the
    consent records with the wording shown and where, the pending
    contribution (and standing order for monthly or annual gifts) and the
    payment attempt. If the payment provider refuses, nothing is kept and the
    error reaches the visitor. A second submission with the same form token
    returns the first one's result. Returns a ``SubmissionResult``.
    """
    data = form.cleaned_data
    return _submit(request, form, placement, config, data, client_ip(request))


def _tribute(data, gift):
    """The soft credit of a gift made in honour or in memory of someone.

    The person honoured is a new contact: a name alone is too weak to match
    on, and staff merge them from the duplicates queue when they are known.
    """
    if not data.get("tribute"):
        return []
    honoured = create_contact(
        source=SOURCE,
        first_name=data["tribute_first_name"].strip(),
        last_name=data["tribute_last_name"].strip(),
    )
    return [{"contact": honoured, "kind": data["tribute"], "amount": gift}]


def _submit(request, form, placement, config, data, ip):
    with transaction.atomic():
        submission = claim_submission(data["token"], "donation", placement)
        if submission is None:
            return SubmissionResult.replayed(data["token"])
        contact = upsert_visitor(data, source=SOURCE)
        record_consents(form, contact, placement, ip=ip, source=SOURCE)
        fund = FinancialType.objects.get(pk=config["financial_type"])
        campaign = (
            Campaign.objects.filter(pk=config["campaign"]).first() if config["campaign"] else None
        )
        gift, fees = data["gift"], data["fees"]
        unit = FREQUENCIES[data["frequency"]]
        recurring = None
        if unit:
            recurring = contribution_services.create_recurring(
                contact,
                amount=gift + fees,
                currency=config["currency"],
                frequency_unit=unit,
                financial_type=fund,
                campaign=campaign,
                source=SOURCE,
            )
        lines = [{"kind": "donation", "amount": gift, "label": config["title"] or _("Donation")}]
        if fees:
            lines.append(
                {"kind": "donation", "amount": fees, "label": _("Covering the payment fees")}
            )
        contribution = contribution_services.create_pending(
            contact,
            currency=config["currency"],
            lines=lines,
            financial_type=fund,
            campaign=campaign,
            recurring=recurring,
            soft_credits=_tribute(data, gift),
            source=SOURCE,
        )
        start = start_visitor_payment(request, contribution, data, recurring=recurring)
        submission.contact = contact
        submission.contribution = contribution
        submission.thank_you = config["thank_you"]
        submission.instructions = start.instructions or ""
        submission.next_url = start.redirect_url or thanks_url(submission)
        submission.save()
    return SubmissionResult(submission, instructions=start.instructions)
