"""Event check-in at the door, on a phone: one page per event.

``/admin/crm/events/<id>/check-in/`` lists the event's confirmed
participants (registered, attended, no-show), searchable by name or email,
each with one large button. The buttons are plain forms posting to
``.../check-in/mark/``, which calls ``crm_core.services.events.check_in``
or ``undo_check_in`` and redirects back to the list with the search kept,
so the page works without JavaScript. Both need
``crm_core.check_in_participant``. The list runs the same number of queries
however many people it shows.
"""

from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView
from wagtail import hooks
from wagtail.admin import messages
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin

from crm_core.exceptions import CRMError
from crm_core.models import Contact, Event, Participant, ParticipantStatus
from crm_core.selectors.contacts import search_filter
from crm_core.services import events as services

PERMISSION = "crm_core.check_in_participant"
SOURCE = "admin check-in"
URL_NAME = "crm_event_checkin"
MARK_URL_NAME = "crm_event_checkin_mark"
# Who can be checked in (a no-show may still turn up late) and is counted.
CONFIRMED = (ParticipantStatus.REGISTERED, ParticipantStatus.ATTENDED, ParticipantStatus.NO_SHOW)
# A door list longer than this is narrowed with the search box instead.
MAX_SHOWN = 200
MAX_QUERY_LENGTH = 200

ACTIONS = {"check-in": services.check_in, "undo": services.undo_check_in}


def checkin_url(event, query=""):
    url = reverse(URL_NAME, args=[event.pk])
    return f"{url}?{urlencode({'q': query})}" if query else url


def _query(data):
    return " ".join(data.get("q", "").split())[:MAX_QUERY_LENGTH]


class CheckInView(WagtailAdminTemplateMixin, TemplateView):
    """GET: the door list; errors from the POST view are shown on the same page."""

    template_name = "crm_wagtail/event/checkin.html"
    page_title = gettext_lazy("Check-in")
    header_icon = "tick"

    def dispatch(self, request, pk, **kwargs):
        if not request.user.has_perm(PERMISSION):
            # A 403, not Wagtail's redirect to the dashboard: the door phone
            # should say plainly that this login cannot check people in.
            return HttpResponseForbidden(_("You do not have permission to check participants in."))
        self.event = get_object_or_404(Event, pk=pk)
        return super().dispatch(request, pk, **kwargs)

    def get_page_subtitle(self):
        return str(self.event)

    def get(self, request, pk):
        return self.render(_query(request.GET))

    def render(self, query, *, error="", status=200):
        counts = Participant.objects.filter(event=self.event, status__in=CONFIRMED).aggregate(
            total=Count("pk"),
            attended=Count("pk", filter=Q(status=ParticipantStatus.ATTENDED)),
        )
        participants = (
            Participant.objects.filter(event=self.event, status__in=CONFIRMED)
            .select_related("contact", "role")
            .prefetch_related("contact__emails")
            .order_by("contact__sort_name", "pk")
        )
        if query:
            participants = participants.filter(
                contact__in=search_filter(Contact.objects.all(), query)
            )
        shown = list(participants[: MAX_SHOWN + 1])
        context = self.get_context_data()
        context |= {
            "event": self.event,
            "query": query,
            "error": error,
            "participants": shown[:MAX_SHOWN],
            "more": len(shown) > MAX_SHOWN,
            "max_shown": MAX_SHOWN,
            "attended": counts["attended"],
            "total": counts["total"],
            "mark_url": reverse(MARK_URL_NAME, args=[self.event.pk]),
            "page_url": checkin_url(self.event),
            "events_url": reverse("wagtailsnippets_crm_core_event:list"),
            "ATTENDED": ParticipantStatus.ATTENDED,
        }
        return self.render_to_response(context, status=status)


class MarkView(CheckInView):
    """POST ``participant`` (id), ``action`` ("check-in" or "undo") and ``q``."""

    http_method_names = ["get", "post"]

    def get(self, request, pk):
        return self.render(
            _query(request.GET),
            error=_("Use the buttons on the check-in page."),
            status=405,
        )

    def post(self, request, pk):
        query = _query(request.POST)
        service = ACTIONS.get(request.POST.get("action", ""))
        if service is None:
            return self.render(query, error=_("Unknown action."), status=400)
        participant_id = request.POST.get("participant", "")
        if not (participant_id.isascii() and participant_id.isdigit()) or len(participant_id) > 18:
            return self.render(query, error=_("No participant was chosen."), status=400)
        participant = (
            Participant.objects.filter(event=self.event, pk=int(participant_id))
            .select_related("contact")
            .first()
        )
        if participant is None:
            return self.render(
                query, error=_("That person is not a participant of this event."), status=404
            )
        try:
            service(participant, actor=request.user, source=SOURCE)
        except (CRMError, ValidationError) as error:
            text = error.message if isinstance(error, CRMError) else " ".join(error.messages)
            return self.render(query, error=text, status=409)
        name = participant.contact.display_name
        if service is services.check_in:
            messages.success(request, _("%(name)s is checked in.") % {"name": name})
        else:
            messages.success(request, _("Check-in of %(name)s undone.") % {"name": name})
        return redirect(checkin_url(self.event, query))


def checkin_urls():
    return [
        path("crm/events/<int:pk>/check-in/", CheckInView.as_view(), name=URL_NAME),
        path("crm/events/<int:pk>/check-in/mark/", MarkView.as_view(), name=MARK_URL_NAME),
    ]


def register():
    """Register the check-in pages with the Wagtail admin."""
    hooks.register("register_admin_urls", checkin_urls)
