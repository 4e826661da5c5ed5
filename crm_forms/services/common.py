"""What every submission service returns, and the thank-you address."""

from dataclasses import dataclass

from django.core import signing
from django.urls import reverse

from crm_core.services import consent as consent_services
from crm_core.services.contacts import upsert_contact

from ..models import Submission

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
    and queues the pair for staff (``upsert_contact``).
    """
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
