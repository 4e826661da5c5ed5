"""django-anymail's webhook URLs, made safe to include as they are.

``path("anymail/", include("crm_core.anymail_urls"))`` serves the same
addresses and names as ``anymail.urls`` (namespace ``anymail``, e.g.
``/anymail/postmark/tracking/``), with two differences:

- Without ``ANYMAIL["WEBHOOK_SECRET"]`` every post is refused (403) and
  logged. Anymail itself would accept it with a warning, and a webhook open
  to anyone lets anyone put addresses on hold and withdraw consent.
- A payload anymail cannot parse (not JSON, a missing field) is answered
  400, not 500: it is bad input, and a 500 would make the sender retry it.
  Database and configuration errors still answer 500, so the ESP retries.
"""

import logging
from functools import wraps

from anymail import urls as anymail_urls
from anymail.utils import get_anymail_setting
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.urls import URLPattern

logger = logging.getLogger("crm.bounces")

app_name = "anymail"


def _refuse_unsafe_posts(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if request.method == "POST" and not get_anymail_setting("webhook_secret", default=None):
            logger.warning(
                "ESP webhook %s refused: ANYMAIL WEBHOOK_SECRET is not set", request.path
            )
            return HttpResponseForbidden("Webhooks are disabled until WEBHOOK_SECRET is set.")
        try:
            return view(request, *args, **kwargs)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ESP webhook %s: unreadable payload: %r", request.path, exc)
            return HttpResponseBadRequest("Unreadable webhook payload.")

    return guarded


urlpatterns = [
    URLPattern(
        pattern.pattern, _refuse_unsafe_posts(pattern.callback), pattern.default_args, pattern.name
    )
    for pattern in anymail_urls.urlpatterns
]
