"""Contact us / lead capture."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from crm_core.services.activities import record_form_submission
from crm_payments.services.velocity import client_ip

from ..tasks import send_form_email_task
from .common import SubmissionResult, claim_submission, record_consents, thanks_url, upsert_visitor

SOURCE = "form:contact"


def submit_message(request, form, placement, config):
    """File a visitor's message on their contact's timeline, for the staff member
    the form names, and tell that person (and the form's notify addresses) by email.

    The email says who wrote and links to nothing a visitor controls; the
    message itself stays in the CRM.
    """
    data = form.cleaned_data
    with transaction.atomic():
        submission = claim_submission(data["token"], "contact", placement)
        if submission is None:
            return SubmissionResult.replayed(data["token"])
        contact = upsert_visitor(data, source=SOURCE)
        record_consents(form, contact, placement, ip=client_ip(request), source=SOURCE)
        assignee = get_user_model().objects.filter(pk=config["assignee"]).first()
        record_form_submission(
            contact,
            subject=config["subject"],
            details=data["message"],
            assignee=assignee,
            source=SOURCE,
        )
        submission.contact = contact
        submission.thank_you = config["thank_you"]
        submission.next_url = thanks_url(submission)
        submission.save()
        recipients = list(config["notify_emails"])
        if assignee is not None and assignee.email:
            recipients.append(assignee.email)
        if recipients:
            body = _(
                "%(name)s <%(email)s> sent a message through the website (%(subject)s).\n"
                "Read it on their timeline in the CRM."
            ) % {"name": contact.display_name, "email": data["email"], "subject": config["subject"]}
            transaction.on_commit(
                lambda: send_form_email_task.enqueue(
                    str(_("New message from the website")), body, sorted(set(recipients))
                )
            )
    return SubmissionResult(submission)
