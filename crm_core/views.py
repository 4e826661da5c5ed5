"""Public pages of crm_core: the unsubscribe page of mailings, and taking
up a waiting-list seat offer.

It works without a login: the signed link is the proof. GET shows a
button, POST unsubscribes. The POST is exempt from CSRF because mail
clients send RFC 8058 one-click unsubscribes as a bare POST without a
token; the signed link, made for one contact and one mailing, is what
protects it. A forged, altered or expired link is a 400 page.

The seat offer page (``waitlist_offer``) is opened from the offer email's
signed link: GET shows the offer, POST (with Django's CSRF token: it is a
page, not a mail client's one-click) takes the seats. An expired offer or one
already taken says so, without a change.
"""

from django.db import transaction
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .exceptions import CRMError, InvalidLink
from .links import read_registration_token
from .models import Mailing, Participant, ParticipantStatus
from .services.events import accept_waitlist_offer
from .services.mailings import read_unsubscribe_token, unsubscribe

MAX_TOKEN_LENGTH = 500


@csrf_exempt
@require_http_methods(["GET", "POST"])
def mailing_unsubscribe(request, mailing_id, token):
    mailing = Mailing.objects.filter(pk=mailing_id).first()
    try:
        if mailing is None or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLink("", code="link_invalid")
        contact = read_unsubscribe_token(mailing_id, token)
    except InvalidLink as error:
        return render(
            request,
            "crm_core/mailings/unsubscribe_invalid.html",
            {"error": error.message},
            status=400,
        )
    context = {"mailing": mailing, "action": request.path}
    if request.method == "POST":
        unsubscribe(contact, mailing)
        return render(request, "crm_core/mailings/unsubscribed.html", context)
    return render(request, "crm_core/mailings/unsubscribe.html", context)


def _invalid(request, message):
    return render(request, "crm_core/waitlist/invalid.html", {"error": message}, status=400)


@require_http_methods(["GET", "POST"])
def waitlist_offer(request, token):
    try:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLink("", code="link_invalid")
        registration = read_registration_token(token)
    except InvalidLink as error:
        return _invalid(request, error.message)
    participants = list(
        Participant.objects.filter(registration=registration)
        .select_related("event", "contact")
        .order_by("id")
    )
    if not participants:
        return _invalid(request, gettext("This link is not valid."))
    event = participants[0].event
    context = {"event": event, "participants": participants, "action": request.path}
    if request.method == "POST":
        waiting = [p for p in participants if p.status == ParticipantStatus.WAITLISTED]
        try:
            with transaction.atomic():
                for participant in waiting:
                    accept_waitlist_offer(participant, source="waitlist offer link")
        except CRMError as error:
            context["error"] = error.message
            return render(request, "crm_core/waitlist/offer.html", context, status=409)
        for participant in participants:
            participant.refresh_from_db(fields=["status", "offer_expires_at"])
        context["taken"] = bool(waiting)
    context["open"] = any(
        p.status == ParticipantStatus.WAITLISTED and p.offer_expires_at for p in participants
    )
    context["held"] = any(p.status == ParticipantStatus.PENDING_PAYMENT for p in participants)
    context["registered"] = all(
        p.status in (ParticipantStatus.REGISTERED, ParticipantStatus.ATTENDED) for p in participants
    )
    return render(request, "crm_core/waitlist/offer.html", context)
