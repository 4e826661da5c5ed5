"""Page types with CRM forms, usable as they are or mixed into a site's own pages."""

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


class DonationPage(Page):
    """A page with an introduction and a body holding CRM forms.

    A site's own page shows CRM forms the same way: a ``crm_body_field()``
    (or its own StreamField with ``CRM_FORM_BLOCKS``) rendered with
    ``{% crm_stream page.body %}`` from ``crm_forms_tags``.
    """

    template = "crm_wagtail/pages/form_page.html"
    intro = RichTextField(_("introduction"), blank=True)
    body = crm_body_field()

    content_panels = [*Page.content_panels, "intro", "body"]

    class Meta:
        verbose_name = _("donation page")
        verbose_name_plural = _("donation pages")


class MembershipPage(Page):
    """Like ``DonationPage``, for joining: an introduction and a body of CRM forms."""

    template = "crm_wagtail/pages/form_page.html"
    intro = RichTextField(_("introduction"), blank=True)
    body = crm_body_field()

    content_panels = [*Page.content_panels, "intro", "body"]

    class Meta:
        verbose_name = _("membership page")
        verbose_name_plural = _("membership pages")
