"""The membership form's submission service: joining, or renewing through a personal link."""

from django.db import transaction
from django.utils.translation import gettext as _

from crm_core.exceptions import AlreadyMember
from crm_core.services import contributions as contribution_services
from crm_core.services import memberships as membership_services
from crm_core.services.contacts import upsert_contact
from crm_core.services.messages import enqueue_after_commit
from crm_core.services.relationships import create_relationship
from crm_core.tasks import send_membership_confirmation_task
from crm_payments.services.velocity import client_ip

from .common import (
    SubmissionResult,
    claim_submission,
    keeping_payment_blocks,
    record_consents,
    start_visitor_payment,
    thanks_url,
    upsert_visitor,
)

SOURCE = "form:membership"


@keeping_payment_blocks
def submit_membership(request, form, placement, config):
    """Join the visitor to the chosen membership type, and start paying its fee.

    One transaction: the contact (matched or created, never renamed), the
    consents shown, a pending membership with the type's dates, its pending
    contribution (and a standing order when it renews automatically) and the
    payment attempt. A free type is joined at once with no contribution.
    A visitor identified by a personal link or login who holds a membership
    of the chosen type renews it instead: the contribution pays a further
    term of that membership, added when the payment completes (a free type
    is renewed at once).
    Replays of the same form return the first submission. The membership
    becomes current when the payment completes (the core's ``complete``).
    """
    data = form.cleaned_data
    return _submit(request, form, placement, config, data, client_ip(request))


def _organisation(person, name, config):
    """The organisation a person joins for, matched or created, and related to them.

    Matched on its name as the core's duplicate rules allow (a weak match
    creates a new organisation and queues the pair for staff); the person
    is related to it by the relationship type the editor chose, once.
    """
    from crm_core.models import Relationship, RelationshipType

    organisation = upsert_contact(
        {"kind": "organization", "organization_name": name},
        source=SOURCE,
        update_mode="fill_blanks",
    ).contact
    kind = RelationshipType.objects.get(pk=config["organisation_relationship"])
    related = Relationship.objects.filter(
        relationship_type=kind, contact_a=person, contact_b=organisation, is_active=True
    )
    if not related.exists():
        create_relationship(
            relationship_type=kind, contact_a=person, contact_b=organisation, source=SOURCE
        )
    return organisation


def _join(contact, kind, *, pending, auto_renew):
    """The core's ``join``, refusing a second membership in words fit for anyone.

    The core names the existing membership's status for staff; a visitor may
    have typed someone else's email, so, as CiviCRM never shows a stranger
    another person's record, they only learn how a member renews.
    """
    try:
        return membership_services.join(
            contact, kind, pending=pending, auto_renew=auto_renew, source=SOURCE
        )
    except AlreadyMember:
        raise AlreadyMember(
            _(
                "A membership of this type is already held with the details given. To renew "
                "it, follow the link in your renewal reminder, or contact us."
            )
        ) from None


def _submit(request, form, placement, config, data, ip):
    kind = data["type"]
    with transaction.atomic():
        submission = claim_submission(data["token"], "membership", placement)
        if submission is None:
            return SubmissionResult.replayed(data["token"])
        person = upsert_visitor(data, source=SOURCE)
        record_consents(form, person, placement, ip=ip, source=SOURCE)
        contact = person
        if data.get("on_behalf"):
            contact = _organisation(person, data["organisation_name"], config)
        free = not kind.fee
        membership = data.get("renewing")
        submission.pending = {"renewal": membership is not None}
        if membership is None:
            membership = _join(
                contact, kind, pending=not free, auto_renew=data["auto_renew"] and not free
            )
        elif free:
            membership = membership_services.renew(membership, source=SOURCE)
        submission.contact = contact
        submission.thank_you = config["thank_you"]
        start = None
        if not free:
            recurring = None
            if data["auto_renew"]:
                recurring = contribution_services.create_recurring(
                    contact,
                    amount=kind.fee,
                    currency=kind.currency,
                    frequency_unit=kind.duration_unit,
                    frequency_interval=kind.duration_interval,
                    financial_type=kind.financial_type,
                    membership=membership,
                    source=SOURCE,
                )
            contribution = contribution_services.create_pending(
                contact,
                currency=kind.currency,
                lines=[
                    {
                        "kind": "membership",
                        "amount": kind.fee,
                        "membership": membership,
                        "label": kind.name,
                    }
                ],
                financial_type=kind.financial_type,
                recurring=recurring,
                source=SOURCE,
            )
            start = start_visitor_payment(request, contribution, data, recurring=recurring)
            submission.contribution = contribution
            submission.instructions = start.instructions or ""
        submission.membership = membership
        submission.next_url = (start.redirect_url if start else "") or thanks_url(submission)
        submission.save()
        if free:  # paid terms are confirmed by the payment's receipt
            enqueue_after_commit(
                send_membership_confirmation_task, membership.pk, submission.pending["renewal"]
            )
    return SubmissionResult(submission, instructions=start.instructions if start else "")
