"""Page types with CRM forms, usable as they are or mixed into a site's own pages."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page

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


class CRMBodyPage(Page):
    """A page with an introduction and a body of text and CRM forms.

    A site's own page shows CRM forms the same way: a ``crm_body_field()``
    (or its own StreamField with ``CRM_FORM_BLOCKS``) rendered with
    ``{% crm_stream page.body %}`` from ``crm_forms_tags``.
    """

    # Wagtail gives each page class a template named after it unless the class
    # itself names one: each subclass repeats ``template = BODY_TEMPLATE``.
    template = BODY_TEMPLATE
    intro = RichTextField(_("introduction"), blank=True)
    body = crm_body_field()

    content_panels = [*Page.content_panels, "intro", "body"]

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


class EventPage(Page):
    """A page about one core Event: when and where, price and seats left, and
    a body where the editor places its registration form."""

    template = "crm_wagtail/pages/event_page.html"
    event = models.ForeignKey(
        "crm_core.Event", on_delete=models.PROTECT, related_name="+", verbose_name=_("event")
    )
    intro = RichTextField(_("introduction"), blank=True)
    body = crm_body_field()

    content_panels = [*Page.content_panels, "event", "intro", "body"]

    class Meta:
        verbose_name = _("event page")
        verbose_name_plural = _("event pages")

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
            starts=event.starts_at.astimezone(zone),
            ends=event.ends_at.astimezone(zone),
            fee_levels=levels,
            seats_left=None if event.capacity is None else seats_left(event),
        )
        return context


class FormPage(CRMBodyPage):
    """Any page of text and CRM forms: "Stay in touch", "Contact us"."""

    template = BODY_TEMPLATE

    class Meta:
        verbose_name = _("form page")
        verbose_name_plural = _("form pages")
