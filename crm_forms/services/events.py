"""The event registration form's submission service."""

from django.db import transaction
from django.utils.translation import gettext as _

from crm_core.exceptions import AlreadyRegistered
from crm_core.models import ParticipantStatus
from crm_core.services import contributions as contribution_services
from crm_core.services import events as event_services
from crm_core.services.contacts import create_contact, upsert_contact
from crm_core.services.messages import enqueue_after_commit
from crm_core.tasks import send_registration_confirmation_task
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

SOURCE = "form:event"


@keeping_payment_blocks
def submit_registration(request, form, placement, config):
    """Book seats for the registrant and their guests, and start paying the fees.

    One transaction: the registrant (matched by email, never renamed), each
    guest (matched when they give an email, else a new contact), the
    consents shown, the seats through the core's ``register`` (all or
    nothing, capacity never exceeded; the whole group goes on the waiting
    list when full and the event has one), and for paid seats one pending
    contribution with a line per participant and its payment attempt.
    Waitlisted groups pay nothing now. Raises the core's
    ``RegistrationClosed``, ``EventFull`` or ``AlreadyRegistered`` (with a
    message that names nobody) for the visitor to read; nothing is kept then.
    """
    data = form.cleaned_data
    return _submit(request, form, placement, config, data, client_ip(request))


def _guest_contact(guest):
    person = {"first_name": guest["first_name"], "last_name": guest["last_name"]}
    if guest["email"]:
        return upsert_contact(
            {**person, "emails": [guest["email"]]}, source=SOURCE, update_mode="fill_blanks"
        ).contact
    return create_contact(source=SOURCE, **person)


def _submit(request, form, placement, config, data, ip):
    event, level = form.event, data["level"]
    with transaction.atomic():
        submission = claim_submission(data["token"], "event_registration", placement)
        if submission is None:
            return SubmissionResult.replayed(data["token"])
        contact = upsert_visitor(data, source=SOURCE)
        record_consents(form, contact, placement, ip=ip, source=SOURCE)
        people = [(contact, data["answers"])]
        people += [(_guest_contact(guest), guest["answers"]) for guest in data["guests"]]
        try:
            participants = event_services.register(
                event,
                registered_by=contact,
                attendees=[
                    {"contact": person, "fee_level": level, "answers": answers}
                    for person, answers in people
                ],
                source=SOURCE,
            )
        except AlreadyRegistered:
            # The core names the stored contact; a visitor may have typed
            # someone else's email, so they learn no name from us.
            raise AlreadyRegistered(
                _(
                    "Someone in this registration is already registered for this event. "
                    "If you think this is wrong, please contact us."
                )
            ) from None
        submission.contact = contact
        submission.thank_you = config["thank_you"]
        start = None
        paying = [p for p in participants if p.status == ParticipantStatus.PENDING_PAYMENT]
        if paying:
            contribution = contribution_services.create_pending(
                contact,
                currency=event.currency,
                lines=[
                    {
                        "kind": "event_fee",
                        "amount": level.amount,
                        "participant": participant,
                        # Each may be 255 characters long; a line label is at most that.
                        "label": f"{event.title}: {level.label}"[:255],
                    }
                    for participant in paying
                ],
                source=SOURCE,
            )
            start = start_visitor_payment(request, contribution, data)
            submission.contribution = contribution
            submission.instructions = start.instructions or ""
        waitlisted = any(p.status == ParticipantStatus.WAITLISTED for p in participants)
        if waitlisted:
            submission.instructions = _(
                "The event is full: you are on the waiting list. We will email you if a seat "
                "comes free."
            )
        submission.next_url = (start.redirect_url if start else "") or thanks_url(submission)
        submission.save()
        enqueue_after_commit(send_registration_confirmation_task, str(participants[0].registration))
    return SubmissionResult(submission, instructions=submission.instructions)
