"""What every submission service returns, and the thank-you address."""

from dataclasses import dataclass

from django.core import signing
from django.urls import reverse

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
    return Submission.objects.select_related("contribution").filter(reference=reference).first()


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
