"""Newsletter signup with double opt-in."""

from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crm_core.exceptions import ContactDeleted
from crm_core.links import contact_after_merges
from crm_core.models import Group
from crm_core.services import consent as consent_services
from crm_core.services.contacts import upsert_contact
from crm_core.services.groups import add_to_group
from crm_payments.services.velocity import client_ip

from ..models import Submission
from ..tasks import send_form_email_task
from .common import SubmissionResult, claim_submission, thanks_url

SOURCE = "form:signup"
CONFIRM_SALT = "crm_forms.signup-confirm"
CONFIRM_MAX_AGE = 7 * 24 * 60 * 60


def submit_signup(request, form, placement, config):
    """Record a newsletter signup; with double opt-in, email a confirmation link.

    The contact is matched or created (never renamed). Nothing else happens
    until the link is followed (``confirm_signup``): no group, no consent.
    Without double opt-in the signup is confirmed at once.
    """
    data = form.cleaned_data
    with transaction.atomic():
        submission = claim_submission(data["token"], "signup", placement)
        if submission is None:
            return SubmissionResult.replayed(data["token"])
        contact = (
            data.get("contact")
            or upsert_contact(
                {"first_name": data["first_name"], "emails": [data["email"]]},
                source=SOURCE,
                update_mode="fill_blanks",
            ).contact
        )
        submission.contact = contact
        submission.thank_you = config["thank_you"]
        submission.pending = {
            "groups": [int(pk) for pk in data["groups"]],
            "consents": [item for item, granted in form.given_consents() if granted],
            "where": (
                f"page {placement.page_id} revision {placement.revision_id} "
                f"block {placement.block_id}"
            ),
            "ip": client_ip(request),
            "email": data["email"],
        }
        submission.next_url = thanks_url(submission)
        submission.save()
        if config["double_opt_in"]:
            link = request.build_absolute_uri(
                reverse(
                    "crm_forms:confirm",
                    args=[signing.dumps(str(submission.reference), salt=CONFIRM_SALT)],
                )
            )
            body = _(
                "Please confirm that you would like our emails by opening this link:"
                "\n\n%(link)s\n\n"
                "If you did not ask for them, ignore this email and nothing happens."
            ) % {"link": link}
            transaction.on_commit(
                lambda: send_form_email_task.enqueue(
                    str(_("Please confirm your subscription")), body, [data["email"]]
                )
            )
        else:
            confirm_signup(submission)
    return SubmissionResult(submission)


def read_confirm_token(token):
    try:
        reference = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    except signing.BadSignature:
        return None
    return Submission.objects.filter(reference=reference, kind="signup").first()


@transaction.atomic
def confirm_signup(submission):
    """Put the contact in the groups chosen and record the consents; once only.

    The link may be followed days later, so the contact is looked up again:
    one merged into another since is followed to the contact kept, and groups
    deactivated since are skipped. Raises ``ContactDeleted`` when the contact
    is in the trash (and was not merged) or gone; nothing is recorded then.
    """
    submission = Submission.objects.select_for_update().get(pk=submission.pk)
    if submission.confirmed_at is not None:
        return submission
    contact = contact_after_merges(submission.contact_id)
    if contact is None:
        raise ContactDeleted(_("The contact who signed up is no longer in the CRM."))
    submission.contact = contact
    pending = submission.pending or {}
    for group in Group.objects.filter(pk__in=pending.get("groups") or [], is_active=True):
        add_to_group(submission.contact, group, source=SOURCE)
    for item in pending.get("consents") or []:
        consent_services.record_consent(
            submission.contact,
            purpose=item["purpose"],
            channel=item["channel"],
            granted=True,
            wording=item["wording"],
            source=SOURCE,
            source_reference=pending.get("where", ""),
            ip_address=pending.get("ip"),
        )
    submission.confirmed_at = timezone.now()
    submission.save(update_fields=["contact", "confirmed_at"])
    return submission
