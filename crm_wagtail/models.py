"""Page types with CRM forms, usable as they are or mixed into a site's own pages."""

from django.conf import settings
from django.db import models
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.contrib.routable_page.models import RoutablePageMixin, path
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

from crm_core.dates import in_zone
from crm_core.models import Event

from .blocks import CRM_FORM_BLOCKS


def crm_body_field(**kwargs):
    """A StreamField of rich text and every CRM form block."""
    return StreamField(
        [("text", blocks.RichTextBlock(label=_("Text"))), *CRM_FORM_BLOCKS],
        blank=True,
        use_json_field=True,
        verbose_name=_("body"),
        **kwargs,
    )


BODY_TEMPLATE = "crm_wagtail/pages/form_page.html"


def offers_page_types():
    """Whether editors may create this app's own page types.

    ``CRM_WAGTAIL_PAGE_TYPES = False`` hides them from "Add child page" for a
    site that builds its page types on its own base page with the mixins
    below; pages already made keep working.
    """
    return getattr(settings, "CRM_WAGTAIL_PAGE_TYPES", True)


class OfferedPageType:
    """This app's own page types: offered to editors unless the site says not."""

    @classmethod
    def can_create_at(cls, parent):
        return offers_page_types() and super().can_create_at(parent)


class CRMBodyPageMixin(models.Model):
    """An introduction and a body of text and CRM forms, for any page model.

    Mix it into a site's own base page (``class AppealPage(CRMBodyPageMixin,
    SitePage)``) to keep that base page's fields, templates and behaviour;
    ``crm_content_panels`` lists its panels to add to the page's own.
    """

    intro = RichTextField(_("introduction"), blank=True)
    body = crm_body_field()

    crm_content_panels = ["intro", "body"]

    class Meta:
        abstract = True


class CRMBodyPage(OfferedPageType, CRMBodyPageMixin, Page):
    """A page with an introduction and a body of text and CRM forms.

    A site's own page shows CRM forms the same way: ``CRMBodyPageMixin``, a
    ``crm_body_field()`` or its own StreamField with ``CRM_FORM_BLOCKS``,
    rendered with ``{% crm_stream page.body %}`` from ``crm_forms_tags``.
    """

    # Wagtail gives each page class a template named after it unless the class
    # itself names one: each subclass repeats ``template = BODY_TEMPLATE``.
    template = BODY_TEMPLATE
    content_panels = [*Page.content_panels, *CRMBodyPageMixin.crm_content_panels]

    class Meta:
        abstract = True


class DonationPage(CRMBodyPage):
    template = BODY_TEMPLATE

    class Meta:
        verbose_name = _("donation page")
        verbose_name_plural = _("donation pages")


class MembershipPage(CRMBodyPage):
    template = BODY_TEMPLATE

    class Meta:
        verbose_name = _("membership page")
        verbose_name_plural = _("membership pages")


def _calendar_response(content, filename):
    response = HttpResponse(content, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


class EventPageMixin(RoutablePageMixin, models.Model):
    """A page about one core Event: when and where, price and seats left, and
    a body where the editor places its registration form. ``calendar/`` below
    the page is the event as an .ics file for a visitor's calendar.

    Mix it into a site's own base page (``class ClubEventPage(EventPageMixin,
    SitePage)``); an ``EventIndexPageMixin`` page lists every such page below it.
    """

    event = models.ForeignKey(
        "crm_core.Event", on_delete=models.PROTECT, related_name="+", verbose_name=_("event")
    )
    intro = RichTextField(_("introduction"), blank=True)
    body = crm_body_field()

    crm_content_panels = ["event", "intro", "body"]

    class Meta:
        abstract = True

    def get_context(self, request, *args, **kwargs):
        from zoneinfo import ZoneInfo

        from crm_core.selectors.events import seats_left

        context = super().get_context(request, *args, **kwargs)
        event = self.event
        zone = ZoneInfo(event.time_zone)
        levels = sorted(
            (level for level in event.fee_levels.all() if level.is_active),
            key=lambda level: (level.weight, level.pk),
        )
        context.update(
            starts=in_zone(event.starts_at, zone),
            ends=in_zone(event.ends_at, zone),
            fee_levels=levels,
            seats_left=None if event.capacity is None else seats_left(event),
        )
        return context

    @path("")
    def event_view(self, request):
        return self.render(request)

    @path("calendar/", name="ics")
    def ics_view(self, request):
        from crm_core.ical import event_ics

        content = event_ics(self.event, url=self.get_full_url(request) or "")
        return _calendar_response(content, f"{self.event.slug or 'event'}.ics")


class EventPage(OfferedPageType, EventPageMixin, Page):
    template = "crm_wagtail/pages/event_page.html"
    content_panels = [*Page.content_panels, *EventPageMixin.crm_content_panels]

    class Meta:
        verbose_name = _("event page")
        verbose_name_plural = _("event pages")


def event_page_models():
    """Every concrete page model built on ``EventPageMixin``, this app's and the site's."""
    from wagtail.models import get_page_models

    return [
        model
        for model in get_page_models()
        if issubclass(model, EventPageMixin) and not model._meta.abstract
    ]


class EventIndexPageMixin(RoutablePageMixin, models.Model):
    """Upcoming events: the live event pages below it, soonest first, with
    seats left, and ``calendar/``, an .ics feed of the same events that
    calendar apps subscribe to. Mix it into a site's own base page as
    ``EventPageMixin``."""

    intro = RichTextField(_("introduction"), blank=True)

    crm_content_panels = ["intro"]

    class Meta:
        abstract = True

    def upcoming(self):
        """[(event page, local start, seats left or None)] of live, public events not yet ended.

        A fixed number of queries however many events: the pages (one query
        per event page model), their events with seats taken counted in the
        same query, and the site root for URLs.
        """
        from crm_core.selectors.events import seats_left_of, with_seats

        pages = [
            page
            for model in event_page_models()
            for page in model.objects.child_of(self).live().public()
        ]
        events = with_seats(
            Event.objects.filter(
                pk__in=[page.event_id for page in pages],
                is_active=True,
                is_public=True,
                ends_at__gte=timezone.now(),
            )
        ).in_bulk()
        rows = [(page, events[page.event_id]) for page in pages if page.event_id in events]
        rows.sort(key=lambda row: (row[1].starts_at, row[0].pk))
        for page, event in rows:
            page.event = event  # the annotated row: no query per page
        return [
            (page, in_zone(event.starts_at, event.zone), seats_left_of(event))
            for page, event in rows
        ]

    @path("")
    def index_view(self, request):
        return self.render(request, context_overrides={"events": self.upcoming()})

    @path("calendar/", name="feed")
    def feed_view(self, request):
        from crm_core.ical import events_feed_ics

        rows = self.upcoming()
        urls = {page.event_id: page.get_full_url(request) or "" for page, *_ in rows}
        content = events_feed_ics(
            [page.event for page, *_ in rows],
            name=self.title,
            url_for=lambda event: urls.get(event.pk, ""),
        )
        return _calendar_response(content, "events.ics")


class EventIndexPage(OfferedPageType, EventIndexPageMixin, Page):
    template = "crm_wagtail/pages/event_index_page.html"
    content_panels = [*Page.content_panels, *EventIndexPageMixin.crm_content_panels]
    subpage_types = ["crm_wagtail.EventPage"]

    class Meta:
        verbose_name = _("event index page")
        verbose_name_plural = _("event index pages")


class FormPage(CRMBodyPage):
    """Any page of text and CRM forms: "Stay in touch", "Contact us"."""

    template = BODY_TEMPLATE

    class Meta:
        verbose_name = _("form page")
        verbose_name_plural = _("form pages")


class UsedActionToken(models.Model):
    """The one-time token of a staff action form that was carried out.

    A form posted twice (a double click, the browser's back button and
    resubmit) would renew or refund twice; the second post finds its token
    here and does nothing (``service_views.ServiceActionView``).
    """

    token = models.UUIDField(_("token"), unique=True)
    used_at = models.DateTimeField(_("used"), default=timezone.now)

    class Meta:
        verbose_name = _("used action token")
        verbose_name_plural = _("used action tokens")
