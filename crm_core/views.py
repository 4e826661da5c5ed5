"""Public pages of crm_core: the unsubscribe page of mailings.

It works without a login: the signed link is the proof. GET shows a
button, POST unsubscribes. The POST is exempt from CSRF because mail
clients send RFC 8058 one-click unsubscribes as a bare POST without a
token; the signed link, made for one contact and one mailing, is what
protects it. A forged, altered or expired link is a 400 page.
"""

from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .exceptions import InvalidLink
from .models import Mailing
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
