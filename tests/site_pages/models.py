"""How a site with its own base page uses the CRM page mixins (tests only)."""

from django.db import models
from wagtail.models import Page

from crm_wagtail.models import CRMBodyPageMixin, EventIndexPageMixin, EventPageMixin


class SitePage(Page):
    """The site's base page: every page has a strapline under its title."""

    strapline = models.CharField(max_length=100, blank=True)

    content_panels = [*Page.content_panels, "strapline"]

    class Meta:
        abstract = True


class AppealPage(CRMBodyPageMixin, SitePage):
    template = "crm_wagtail/pages/form_page.html"
    content_panels = [*SitePage.content_panels, *CRMBodyPageMixin.crm_content_panels]


class ClubEventPage(EventPageMixin, SitePage):
    template = "crm_wagtail/pages/event_page.html"
    content_panels = [*SitePage.content_panels, *EventPageMixin.crm_content_panels]


class ClubEventsPage(EventIndexPageMixin, SitePage):
    template = "crm_wagtail/pages/event_index_page.html"
    content_panels = [*SitePage.content_panels, *EventIndexPageMixin.crm_content_panels]
    subpage_types = ["site_pages.ClubEventPage", "crm_wagtail.EventPage"]
