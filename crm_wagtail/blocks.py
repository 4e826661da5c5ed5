"""StreamField blocks that place CRM forms on pages.

``CRM_FORM_BLOCKS`` is the list a site adds to its own StreamFields::

    body = StreamField([("text", blocks.RichTextBlock()), *CRM_FORM_BLOCKS])

Each block stores the editor's settings; ``crm_config(value)`` turns them into
the configuration crm_forms validates (``clean`` refuses what the core would
refuse, so an editor cannot publish a form that cannot be paid) and re-reads
from the published revision when a visitor submits.
"""

from django.core.exceptions import ValidationError
from django.forms.utils import ErrorList
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.rich_text import expand_db_html
from wagtail.snippets.blocks import SnippetChooserBlock

from crm_forms.kinds import get_kind
from crm_payments.providers import all_providers


def _payment_method_choices():
    return [(p.identifier, p.verbose_name) for p in all_providers()]


def _staff_choices():
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")
    return [(str(user.pk), user.get_full_name() or user.get_username()) for user in staff]


class SuggestedAmountBlock(blocks.StructBlock):
    amount = blocks.DecimalBlock(label=_("Amount"), min_value=0, decimal_places=3)
    label = blocks.CharBlock(label=_("What it pays for"), required=False, max_length=100)


class ConsentBlock(blocks.StructBlock):
    purpose = blocks.ChoiceBlock(
        choices=[
            ("newsletter", _("Newsletter")),
            ("fundraising", _("Fundraising")),
            ("events", _("Events")),
        ],
        default="newsletter",
    )
    wording = blocks.TextBlock(label=_("Wording shown next to the checkbox"), max_length=2000)
    required = blocks.BooleanBlock(required=False, label=_("Must be ticked"))


TEXT_FEATURES = ["bold", "italic", "link"]


def _intro_block():
    return blocks.RichTextBlock(label=_("Introduction"), required=False, features=TEXT_FEATURES)


def _thank_you_block():
    return blocks.RichTextBlock(
        label=_("Thank-you message"), required=False, features=TEXT_FEATURES
    )


def _consent_block():
    return blocks.ListBlock(ConsentBlock(), label=_("Consent checkboxes"), default=[])


def _payment_methods_block():
    return blocks.MultipleChoiceBlock(
        label=_("Payment methods"), choices=_payment_method_choices, default=["stripe", "offline"]
    )


class CRMFormBlock(blocks.StructBlock):
    """A CRM form placed on a page; subclasses name their ``crm_kind``."""

    crm_kind = ""

    def crm_config(self, value):
        raise NotImplementedError

    def clean(self, value):
        value = super().clean(value)
        try:
            get_kind(self.crm_kind).clean_config(self.crm_config(value))
        except ValidationError as error:
            block_errors, non_block = {}, []
            for name, messages in getattr(
                error, "message_dict", {"__all__": error.messages}
            ).items():
                if name in self.child_blocks:
                    block_errors[name] = ErrorList(messages)
                else:
                    non_block.extend(messages)
            raise StructBlockValidationError(
                block_errors=block_errors, non_block_errors=ErrorList(non_block)
            ) from None
        return value

    def render(self, value, context=None):
        # Rendered through crm_wagtail's {% crm_form_stream %} tag, which knows
        # the page and block id the form needs; plain rendering shows nothing.
        return ""


def _rich_text_html(value):
    # Wagtail stores links to pages and documents by id; visitors need hrefs.
    return expand_db_html(value.source) if value else ""


def _common_config(value):
    """The settings every CRM form block has, as crm_forms reads them."""
    return {
        "title": value.get("title") or "",
        "intro": _rich_text_html(value.get("intro")),
        "thank_you": _rich_text_html(value.get("thank_you")),
        "consent": _consent_config(value),
    }


def _consent_config(value):
    return [
        {
            "purpose": c["purpose"],
            "channel": "email",
            "wording": c["wording"],
            "required": c["required"],
        }
        for c in value.get("consent") or []
    ]


class DonationFormBlock(CRMFormBlock):
    crm_kind = "donation"

    title = blocks.CharBlock(label=_("Heading"), default=_("Make a donation"), max_length=255)
    intro = _intro_block()
    currency = blocks.CharBlock(label=_("Currency (ISO code)"), default="GBP", max_length=3)
    amounts = blocks.ListBlock(SuggestedAmountBlock(), label=_("Suggested amounts"))
    allow_custom_amount = blocks.BooleanBlock(
        label=_("Donors may give another amount"), required=False, default=True
    )
    min_amount = blocks.DecimalBlock(label=_("Smallest amount"), default=1, min_value=0)
    max_amount = blocks.DecimalBlock(label=_("Largest amount"), default=10000, min_value=0)
    financial_type = SnippetChooserBlock("crm_core.FinancialType", label=_("Fund"))
    campaign = SnippetChooserBlock("crm_core.Campaign", label=_("Campaign"), required=False)
    frequencies = blocks.MultipleChoiceBlock(
        label=_("How often donors may give"),
        choices=[
            ("one_off", _("Once")),
            ("monthly", _("Every month")),
            ("annual", _("Every year")),
        ],
        default=["one_off"],
    )
    cover_fees_percent = blocks.DecimalBlock(
        label=_("Offer to cover the payment fees (percent)"), required=False, min_value=0
    )
    allow_tribute = blocks.BooleanBlock(
        label=_("Donors may give in honour or in memory of someone"), required=False
    )
    payment_methods = _payment_methods_block()
    consent = _consent_block()
    thank_you = _thank_you_block()

    class Meta:
        icon = "pick"
        label = _("Donation form")

    def crm_config(self, value):
        return {
            **_common_config(value),
            "currency": (value.get("currency") or "").upper(),
            "amounts": [
                {"amount": str(a["amount"]) if a["amount"] is not None else "", "label": a["label"]}
                for a in value.get("amounts") or []
            ],
            "allow_custom_amount": bool(value.get("allow_custom_amount")),
            "min_amount": _text(value.get("min_amount")),
            "max_amount": _text(value.get("max_amount")),
            "financial_type": getattr(value.get("financial_type"), "pk", None),
            "campaign": getattr(value.get("campaign"), "pk", None),
            "frequencies": list(value.get("frequencies") or []),
            "cover_fees_percent": _text(value.get("cover_fees_percent")),
            "allow_tribute": bool(value.get("allow_tribute")),
            "payment_methods": list(value.get("payment_methods") or []),
        }


def _text(value):
    return "" if value is None else str(value)


class MembershipFormBlock(CRMFormBlock):
    crm_kind = "membership"

    title = blocks.CharBlock(label=_("Heading"), default=_("Become a member"), max_length=255)
    intro = _intro_block()
    membership_types = blocks.ListBlock(
        SnippetChooserBlock("crm_core.MembershipType"), label=_("Membership types offered")
    )
    allow_organisation = blocks.BooleanBlock(
        label=_("Visitors may join on behalf of an organisation"), required=False
    )
    organisation_relationship = SnippetChooserBlock(
        "crm_core.RelationshipType",
        label=_("How the person joining is related to the organisation"),
        help_text=_("For example Employee of. Needed when visitors may join for an organisation."),
        required=False,
    )
    payment_methods = _payment_methods_block()
    consent = _consent_block()
    thank_you = _thank_you_block()

    class Meta:
        icon = "group"
        label = _("Membership form")

    def crm_config(self, value):
        return {
            **_common_config(value),
            "membership_types": [t.pk for t in value.get("membership_types") or [] if t],
            "allow_organisation": bool(value.get("allow_organisation")),
            "organisation_relationship": getattr(
                value.get("organisation_relationship"), "pk", None
            ),
            "payment_methods": list(value.get("payment_methods") or []),
        }


class EventRegistrationFormBlock(CRMFormBlock):
    crm_kind = "event_registration"

    title = blocks.CharBlock(label=_("Heading"), default=_("Register"), max_length=255)
    intro = _intro_block()
    event = SnippetChooserBlock("crm_core.Event", label=_("Event"))
    max_attendees = blocks.IntegerBlock(
        label=_("People one visitor may register"), default=1, min_value=1, max_value=50
    )
    payment_methods = _payment_methods_block()
    consent = _consent_block()
    thank_you = _thank_you_block()

    class Meta:
        icon = "date"
        label = _("Event registration form")

    def clean(self, value):
        value = super().clean(value)
        # Only when editing: the published form of an event deactivated since
        # stays on its page and tells visitors registration is not open.
        event = value.get("event")
        if event is not None and not event.is_active:
            raise StructBlockValidationError(
                block_errors={"event": ErrorList([_("Choose an active event.")])}
            )
        return value

    def crm_config(self, value):
        return {
            **_common_config(value),
            "event": getattr(value.get("event"), "pk", None),
            "max_attendees": value.get("max_attendees") or 1,
            "payment_methods": list(value.get("payment_methods") or []),
        }


class SignupFormBlock(CRMFormBlock):
    crm_kind = "signup"

    title = blocks.CharBlock(label=_("Heading"), default=_("Get our newsletter"), max_length=255)
    intro = _intro_block()
    groups = blocks.ListBlock(
        SnippetChooserBlock("crm_core.Group"), label=_("Groups visitors may join")
    )
    double_opt_in = blocks.BooleanBlock(
        label=_("Confirm by an emailed link first (recommended)"), required=False, default=True
    )
    consent = _consent_block()
    thank_you = _thank_you_block()

    class Meta:
        icon = "mail"
        label = _("Newsletter signup form")

    def crm_config(self, value):
        return {
            **_common_config(value),
            "groups": [g.pk for g in value.get("groups") or [] if g],
            "double_opt_in": bool(value.get("double_opt_in")),
        }


class ContactFormBlock(CRMFormBlock):
    crm_kind = "contact"

    title = blocks.CharBlock(label=_("Heading"), default=_("Contact us"), max_length=255)
    intro = _intro_block()
    subject = blocks.CharBlock(
        label=_("Subject on the timeline"), default=_("Message from the website"), max_length=200
    )
    assignee = blocks.ChoiceBlock(
        label=_("Staff member to follow up"), choices=_staff_choices, required=False
    )
    notify_emails = blocks.ListBlock(
        blocks.EmailBlock(), label=_("Also tell these addresses"), default=[]
    )
    consent = _consent_block()
    thank_you = _thank_you_block()

    class Meta:
        icon = "mail"
        label = _("Contact form")

    def crm_config(self, value):
        return {
            **_common_config(value),
            "subject": value.get("subject") or "",
            "assignee": value.get("assignee") or None,
            "notify_emails": list(value.get("notify_emails") or []),
        }


CRM_FORM_BLOCKS = [
    ("donation_form", DonationFormBlock()),
    ("membership_form", MembershipFormBlock()),
    ("event_registration_form", EventRegistrationFormBlock()),
    ("signup_form", SignupFormBlock()),
    ("contact_form", ContactFormBlock()),
]
