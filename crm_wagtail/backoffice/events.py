"""Events in the back office: events, fee levels, questions, roles and participants.

Events, fee levels, questions and roles are configuration edited with
Wagtail's own views (model validation applies). Participants are written
only through ``crm_core.services.events``: "Add" registers a person, and
check-in, undo check-in, no-show and cancel are confirmation pages that
call the service. An event's row offers its waiting list the free seats.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.generic import TemplateView
from wagtail import hooks
from wagtail.admin import messages
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.widgets.button import ListingButton
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views import snippets
from wagtail.snippets.views.snippets import SnippetViewSetGroup

from crm_core.exceptions import CRMError
from crm_core.models import (
    Event,
    EventFeeLevel,
    EventQuestion,
    Participant,
    ParticipantRole,
    ParticipantStatus,
)
from crm_core.selectors.events import seats_left_of, with_seats
from crm_core.services import events as services

from . import checkin
from .bulk_actions import ServiceBulkActionsIndexView, is_service_bulk_action
from .choosers import CRMSnippetViewSet
from .columns import CalendarDateColumn
from .service_views import ContactPrefillMixin, ServiceCreateView

SOURCE = "admin"


def _error_text(error):
    return error.message if isinstance(error, CRMError) else " ".join(error.messages)


# -- events ---------------------------------------------------------------------------------


def offer_seats_applies(event):
    """Whether offering free seats could help: someone waits without an offer,
    a seat is free (or there is no limit) and the event has not ended.

    ``event`` comes from ``EventViewSet.get_queryset`` (seats and the waiting
    count annotated, so the listing asks nothing per row).
    """
    seats_left = seats_left_of(event)
    return (
        event.waiting_without_offer > 0
        and (seats_left is None or seats_left > 0)
        and event.ends_at >= timezone.now()
    )


class OfferSeatsView(WagtailAdminTemplateMixin, TemplateView):
    """GET asks for confirmation, POST offers the free seats through the service."""

    template_name = "crm_wagtail/event/offer_seats.html"
    # The same permission as the API's promote-waitlist: it changes participants.
    permission = "crm_core.change_participant"
    page_title = _("Offer free seats to the waiting list")
    header_icon = "date"
    viewset = None

    def dispatch(self, request, pk):
        if not request.user.has_perm(self.permission):
            raise PermissionDenied
        self.event = get_object_or_404(Event, pk=pk)
        return super().dispatch(request, pk=pk)

    def get_page_subtitle(self):
        return str(self.event)

    @property
    def index_url(self):
        return reverse(self.viewset.get_url_name("list"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(event=self.event, back_url=self.index_url)
        return context

    def post(self, request, pk):
        try:
            offered = services.promote_from_waitlist(self.event, actor=request.user, source=SOURCE)
        except (CRMError, ValidationError) as error:
            messages.error(request, _error_text(error))
        else:
            if offered:
                messages.success(
                    request,
                    ngettext(
                        "%(count)d person on the waiting list was offered a seat.",
                        "%(count)d people on the waiting list were offered a seat.",
                        len(offered),
                    )
                    % {"count": len(offered)},
                )
            else:
                messages.warning(
                    request,
                    _("No one was offered a seat: no seat is free or no one is waiting."),
                )
        return redirect(self.index_url)


class EventIndexView(snippets.IndexView):
    """Events, with "Offer free seats" in the row menu while it could help."""

    def get_list_more_buttons(self, instance):
        buttons = list(super().get_list_more_buttons(instance))
        if self.request.user.has_perm(OfferSeatsView.permission) and offer_seats_applies(instance):
            buttons.append(
                ListingButton(
                    OfferSeatsView.page_title,
                    url=reverse(
                        self.index_url_name.rsplit(":", 1)[0] + ":offer_seats",
                        args=[instance.pk],
                    ),
                    icon_name="group",
                    priority=40,
                )
            )
        if self.request.user.has_perm(checkin.PERMISSION):
            buttons.append(
                ListingButton(
                    checkin.CheckInView.page_title,
                    url=reverse(checkin.URL_NAME, args=[instance.pk]),
                    icon_name="tick",
                    priority=30,
                )
            )
        return buttons


class EventViewSet(CRMSnippetViewSet):
    model = Event
    # Upcoming and recent events first (Wagtail would sort by last edit).
    ordering = "-starts_at"
    icon = "date"
    menu_label = _("Events")
    add_to_reference_index = False
    search_fields = ["title"]
    search_backend_name = None
    index_view_class = EventIndexView
    list_filter = ["is_active", "is_public"]
    list_display = [
        # A field name first: Wagtail's title column, which carries the row's menu.
        "title",
        CalendarDateColumn("starts_at", label=_("Starts")),
        Column("capacity", label=_("Capacity")),
        Column("seats_taken", label=_("Seats taken")),
        Column("seats_left", label=_("Seats left"), accessor=seats_left_of),
    ]
    edit_handler = ObjectList(
        [
            FieldPanel("title"),
            FieldPanel("slug"),
            FieldPanel("summary"),
            FieldPanel("description"),
            MultiFieldPanel(
                [
                    FieldRowPanel([FieldPanel("starts_at"), FieldPanel("ends_at")]),
                    FieldPanel("time_zone"),
                ],
                heading=_("When"),
            ),
            MultiFieldPanel(
                [FieldPanel("location"), FieldPanel("address"), FieldPanel("online_url")],
                heading=_("Where"),
            ),
            MultiFieldPanel(
                [
                    FieldPanel("capacity"),
                    FieldRowPanel(
                        [
                            FieldPanel("registration_opens_at"),
                            FieldPanel("registration_closes_at"),
                        ]
                    ),
                    FieldPanel("max_seats_per_registration"),
                    FieldRowPanel(
                        [FieldPanel("waitlist_enabled"), FieldPanel("waitlist_offer_hours")]
                    ),
                    FieldPanel("roles"),
                ],
                heading=_("Registration"),
            ),
            FieldRowPanel([FieldPanel("currency"), FieldPanel("financial_type")]),
            FieldRowPanel([FieldPanel("is_public"), FieldPanel("is_active")]),
        ]
    )

    def get_queryset(self, request):
        return with_seats().annotate(
            waiting_without_offer=Count(
                "participants",
                filter=Q(
                    participants__status=ParticipantStatus.WAITLISTED,
                    participants__offer_expires_at__isnull=True,
                ),
            )
        )

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path(
                "offer-seats/<int:pk>/",
                OfferSeatsView.as_view(viewset=self),
                name="offer_seats",
            ),
        ]


class EventFeeLevelViewSet(CRMSnippetViewSet):
    model = EventFeeLevel
    icon = "tag"
    menu_label = _("Fee levels")
    add_to_reference_index = False
    list_filter = ["event", "is_active"]
    list_display = ["label", "event", "amount", "is_default", "is_active"]
    form_fields = ["event", "label", "amount", "is_default", "is_active", "weight"]

    def get_queryset(self, request):
        return EventFeeLevel.objects.select_related("event")


class EventQuestionViewSet(CRMSnippetViewSet):
    model = EventQuestion
    icon = "help"
    menu_label = _("Questions")
    add_to_reference_index = False
    list_filter = ["event"]
    list_display = ["field", "event", "is_required", "weight"]
    form_fields = ["event", "field", "is_required", "weight"]

    def get_queryset(self, request):
        return EventQuestion.objects.select_related("event", "field")


class ParticipantRoleViewSet(CRMSnippetViewSet):
    model = ParticipantRole
    icon = "user"
    menu_label = _("Roles")
    add_to_reference_index = False
    list_display = ["name", "slug", "counts_towards_capacity", "is_active"]
    form_fields = ["name", "slug", "counts_towards_capacity", "is_active", "weight"]


# -- participants ---------------------------------------------------------------------------

# action slug -> (service, permission needed, button label, question)
PARTICIPANT_ACTIONS = {
    "check-in": (
        services.check_in,
        "crm_core.check_in_participant",
        _("Check in"),
        _("Mark %(name)s as attended?"),
    ),
    "undo-check-in": (
        services.undo_check_in,
        "crm_core.check_in_participant",
        _("Undo check-in"),
        _("Undo the check-in of %(name)s? They go back to registered."),
    ),
    "no-show": (
        services.mark_no_show,
        "crm_core.check_in_participant",
        _("Mark no-show"),
        _("Mark %(name)s as a no-show?"),
    ),
    "accept-offer": (
        services.accept_waitlist_offer,
        "crm_core.change_participant",
        _("Accept seat offer"),
        _("Take up the seat offered to %(name)s?"),
    ),
    "cancel": (
        services.cancel_registration,
        "crm_core.change_participant",
        _("Cancel place"),
        _("Cancel the place of %(name)s? The seat is offered to the waiting list."),
    ),
}


def action_applies(slug, participant):
    """Whether a row offers the action: only the ones the service would accept."""
    status = participant.status
    if slug == "check-in":
        return status in (ParticipantStatus.REGISTERED, ParticipantStatus.NO_SHOW)
    if slug == "undo-check-in":
        return status == ParticipantStatus.ATTENDED
    if slug == "no-show":
        return status == ParticipantStatus.REGISTERED
    if slug == "accept-offer":
        return status == ParticipantStatus.WAITLISTED and participant.offer_expires_at is not None
    if slug == "cancel":
        return status in (
            ParticipantStatus.PENDING_PAYMENT,
            ParticipantStatus.REGISTERED,
            ParticipantStatus.WAITLISTED,
        )
    return False


class ParticipantActionView(WagtailAdminTemplateMixin, TemplateView):
    """GET asks for confirmation, POST calls the service; permission-checked."""

    template_name = "crm_wagtail/participant/action.html"
    viewset = None

    def dispatch(self, request, pk, action):
        if action not in PARTICIPANT_ACTIONS:
            raise PermissionDenied
        self.service, perm, self.label, self.question = PARTICIPANT_ACTIONS[action]
        if not request.user.has_perm(perm):
            raise PermissionDenied
        self.participant = get_object_or_404(
            Participant.objects.select_related("contact", "event"), pk=pk
        )
        self.action = action
        return super().dispatch(request, pk=pk, action=action)

    def get_page_title(self):
        return self.label

    def get_page_subtitle(self):
        return str(self.participant)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            participant=self.participant,
            question=self.question % {"name": self.participant.contact.display_name},
            label=self.label,
            asks_reason=self.action == "cancel",
            back_url=self.index_url,
        )
        return context

    @property
    def index_url(self):
        return reverse(self.viewset.get_url_name("list"))

    def post(self, request, pk, action):
        kwargs = {"actor": request.user, "source": SOURCE}
        if self.action == "cancel":
            kwargs["reason"] = request.POST.get("reason", "")[:255]
        try:
            self.service(self.participant, **kwargs)
        except (CRMError, ValidationError) as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, _("%(label)s: done.") % {"label": self.label})
        return redirect(self.index_url)


class ParticipantIndexView(ServiceBulkActionsIndexView):
    """Participants, with the service actions in each row's menu (as permitted)
    and "Mark attended" for the rows ticked (bulk_actions.py)."""

    @cached_property
    def action_url_name(self):
        return self.index_url_name.rsplit(":", 1)[0] + ":action"

    def get_list_more_buttons(self, instance):
        buttons = list(super().get_list_more_buttons(instance))
        user = self.request.user
        for priority, (slug, (_service, perm, label, _question)) in enumerate(
            PARTICIPANT_ACTIONS.items(), start=40
        ):
            if user.has_perm(perm) and action_applies(slug, instance):
                buttons.append(
                    ListingButton(
                        label,
                        url=reverse(self.action_url_name, args=[instance.pk, slug]),
                        priority=priority,
                    )
                )
        return buttons


def _attendee_errors(error):
    """The service keys errors ``attendees.0.<field>``; the form has ``<field>``."""
    if not hasattr(error, "error_dict"):
        return error
    return ValidationError(
        {
            name.removeprefix("attendees.0.").removeprefix("attendees"): messages_
            for name, messages_ in error.message_dict.items()
        }
    )


class ParticipantAdminForm(WagtailAdminModelForm):
    """Role and fee level may be left to the service's defaults."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("role", "fee_level"):
            if name in self.fields:
                self.fields[name].required = False
        if "role" in self.fields:
            self.fields["role"].help_text = _("Leave blank for attendee.")


class ParticipantCreateView(ContactPrefillMixin, ServiceCreateView):
    """Register one person through the service (seats, window, waiting list apply)."""

    def save_with_service(self):
        data = self.form.cleaned_data
        try:
            (participant,) = services.register(
                data["event"],
                registered_by=data["contact"],
                attendees=[
                    {
                        "contact": data["contact"],
                        "role": data.get("role"),
                        "fee_level": data.get("fee_level"),
                    }
                ],
                actor=self.request.user,
                source=SOURCE,
            )
        except CRMError as error:
            raise ValidationError(error.message) from None
        except ValidationError as error:
            raise _attendee_errors(error) from None
        return participant


class ParticipantViewSet(CRMSnippetViewSet):
    model = Participant
    ordering = "-registered_at"
    icon = "user"
    menu_label = _("Participants")
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = ParticipantIndexView
    add_view_class = ParticipantCreateView
    list_filter = ["event", "status"]
    search_fields = ["contact__display_name"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        # A field name first: Wagtail's title column, which carries the row's menu.
        "contact",
        Column("event", label=_("Event"), accessor="event"),
        Column("status", label=_("Status"), accessor="get_status_display"),
        Column("role", label=_("Role"), accessor="role"),
        DateColumn("registered_at", label=_("Registered"), sort_key="registered_at"),
        CalendarDateColumn("offer_expires_at", label=_("Offer until"), sort_key=None),
    ]
    edit_handler = ObjectList(
        [
            FieldPanel("event"),
            FieldPanel("contact"),
            FieldPanel("role"),
            FieldPanel("fee_level"),
        ],
        base_form_class=ParticipantAdminForm,
    )

    def get_queryset(self, request):
        return Participant.objects.select_related("contact", "event", "role")

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path(
                "action/<int:pk>/<slug:action>/",
                ParticipantActionView.as_view(viewset=self),
                name="action",
            ),
        ]


class EventsViewSetGroup(SnippetViewSetGroup):
    menu_label = _("Events")
    menu_icon = "date"
    menu_order = 160
    items = (
        EventViewSet,
        ParticipantViewSet,
        EventFeeLevelViewSet,
        EventQuestionViewSet,
        ParticipantRoleViewSet,
    )


class ParticipantPermissionPolicy(ModelPermissionPolicy):
    """View and add (register) only: status changes are the actions above, and
    Wagtail's edit and delete views would write around the services."""

    allowed = frozenset({"view", "add"})

    def user_has_permission(self, user, action):
        return action in self.allowed and super().user_has_permission(user, action)

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, action) for action in actions)

    def users_with_any_permission(self, actions):
        actions = [action for action in actions if action in self.allowed]
        if not actions:
            return get_user_model().objects.none()
        return super().users_with_any_permission(actions)


def refuse_participant_bulk_actions(request, action_type, objects, action):
    # Bulk delete would bypass the services and erase registration history;
    # our own bulk actions (bulk_actions.py) call the services.
    if getattr(action, "model", None) is Participant and not is_service_bulk_action(action):
        return HttpResponseForbidden(_("Change participants one at a time."))
    return None


def register():
    """Register this module's viewsets with the Wagtail admin."""
    register_permission_policy(Participant, ParticipantPermissionPolicy(Participant))
    register_snippet(EventsViewSetGroup)
    hooks.register("before_bulk_action", refuse_participant_bulk_actions)
