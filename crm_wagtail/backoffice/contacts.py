"""Contacts in the back office: listing, search, filters, summary, create, edit, trash."""

from urllib.parse import urlencode

import django_filters
from django import forms
from django.contrib.admin.utils import unquote
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_countries import countries
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn
from wagtail.permissions import policy_registry
from wagtail.snippets.views.snippets import InspectView

from crm_core.models import (
    Activity,
    Contact,
    ContactKind,
    Contribution,
    ContributionStatus,
    FieldType,
    Group,
    GroupMembership,
    Participant,
    Tag,
)
from crm_core.selectors.contacts import (
    contact_giving,
    contact_households,
    contact_memberships,
    contact_participations,
    contact_possible_duplicates,
    contact_relationships,
    contact_timeline,
    current_consent,
    search_filter,
)
from crm_core.services.contacts import (
    ADDRESS_TEXT_FIELDS,
    CONTACT_FIELDS,
    create_contact,
    trash_contact,
    update_contact,
)

from .bulk_actions import ServiceBulkActionsIndexView
from .choosers import CRMSnippetViewSet
from .duplicates import can_merge
from .receipts import statement_links
from .service_views import (
    ServiceCreateView,
    ServiceDeleteView,
    ServiceEditView,
)

# The scalar contact fields staff edit. The contact's own ``source`` is left
# out: the services take ``source`` as the writer's source (here "admin")
# and use it as the contact's source on creation.
CONTACT_FORM_FIELDS = [name for name in CONTACT_FIELDS if name != "source"]
ADDRESS_FORM_FIELDS = [
    "street_address",
    "supplemental_address",
    "city",
    "region",
    "postal_code",
    "country",
]
SOURCE = "admin"


def _country_choices():
    return [("", "---------"), *countries]


class ContactAdminForm(WagtailAdminModelForm):
    """The contact form; ``service_arguments()`` is what create/update_contact take.

    Emails and phones are edited one per line (the first is primary); the
    primary address has its own fields. Rows that stay the same keep their
    location, type, extension and bounce hold.
    """

    emails = forms.CharField(
        label=_("Email addresses"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line. The first is the primary address."),
    )
    phones = forms.CharField(
        label=_("Phone numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line. The first is the primary number."),
    )
    street_address = forms.CharField(label=_("Street address"), required=False, max_length=255)
    supplemental_address = forms.CharField(
        label=_("Address line 2"), required=False, max_length=255
    )
    city = forms.CharField(label=_("City"), required=False, max_length=100)
    region = forms.CharField(label=_("Region"), required=False, max_length=100)
    postal_code = forms.CharField(label=_("Postal code"), required=False, max_length=20)
    country = forms.ChoiceField(label=_("Country"), required=False, choices=_country_choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        contact = self.instance
        if contact.pk:
            self.initial.setdefault("emails", "\n".join(e.email for e in self._emails))
            self.initial.setdefault("phones", "\n".join(str(p) for p in self._phones))
            primary = self._primary_address
            if primary is not None:
                for name in ADDRESS_FORM_FIELDS:
                    self.initial.setdefault(name, str(getattr(primary, name) or ""))

    @cached_property
    def _emails(self):
        return list(self.instance.emails.all()) if self.instance.pk else []

    @cached_property
    def _phones(self):
        return list(self.instance.phones.all()) if self.instance.pk else []

    @cached_property
    def _addresses(self):
        return list(self.instance.addresses.all()) if self.instance.pk else []

    @cached_property
    def _primary_address(self):
        rows = self._addresses
        return next((a for a in rows if a.is_primary), rows[0] if rows else None)

    @staticmethod
    def _lines(text):
        return [line.strip() for line in (text or "").splitlines() if line.strip()]

    def _email_rows(self):
        known = {e.email.lower(): e for e in self._emails}
        rows = []
        for line in self._lines(self.cleaned_data.get("emails")):
            row = {"email": line}
            if existing := known.get(line.lower()):
                row["location"] = existing.location
            rows.append(row)
        return rows

    def _phone_rows(self):
        known = {str(p): p for p in self._phones}
        rows = []
        for line in self._lines(self.cleaned_data.get("phones")):
            if existing := known.get(line):
                rows.append(
                    {
                        "number": existing.number,
                        "extension": existing.extension,
                        "phone_type": existing.phone_type,
                        "location": existing.location,
                    }
                )
            else:
                rows.append({"number": line})
        return rows

    def _address_rows(self):
        primary = self._primary_address
        others = [
            {
                **{name: getattr(a, name) for name in ADDRESS_TEXT_FIELDS},
                "country": str(a.country or ""),
                "location": a.location,
            }
            for a in self._addresses
            if a is not primary
        ]
        edited = {name: self.cleaned_data.get(name) or "" for name in ADDRESS_FORM_FIELDS}
        if not any(edited.values()):
            return others
        edited["location"] = primary.location if primary else "home"
        edited["is_primary"] = True
        return [edited, *others]

    def service_arguments(self):
        arguments = {name: self.cleaned_data[name] for name in CONTACT_FORM_FIELDS}
        arguments["emails"] = self._email_rows()
        arguments["phones"] = self._phone_rows()
        arguments["addresses"] = self._address_rows()
        arguments["tags"] = list(self.cleaned_data.get("tags") or [])
        return arguments


contact_edit_handler = ObjectList(
    [
        MultiFieldPanel(
            [
                FieldPanel("kind"),
                FieldRowPanel([FieldPanel("prefix"), FieldPanel("first_name")]),
                FieldRowPanel([FieldPanel("middle_name"), FieldPanel("last_name")]),
                FieldRowPanel([FieldPanel("suffix"), FieldPanel("nickname")]),
                FieldPanel("organization_name"),
                FieldPanel("household_name"),
                FieldRowPanel([FieldPanel("job_title"), FieldPanel("employer")]),
                FieldPanel("birth_date"),
            ],
            heading=_("Name"),
        ),
        MultiFieldPanel(
            [FieldPanel("emails"), FieldPanel("phones")],
            heading=_("Email and phone"),
        ),
        MultiFieldPanel(
            [FieldPanel(name) for name in ADDRESS_FORM_FIELDS],
            heading=_("Primary address"),
        ),
        MultiFieldPanel(
            [
                FieldRowPanel([FieldPanel("preferred_language"), FieldPanel("preferred_channel")]),
                FieldRowPanel(
                    [
                        FieldPanel("do_not_email"),
                        FieldPanel("do_not_phone"),
                        FieldPanel("do_not_mail"),
                        FieldPanel("do_not_sms"),
                    ]
                ),
                FieldPanel("is_opt_out"),
            ],
            heading=_("Communication preferences"),
        ),
        FieldPanel("tags", widget=forms.CheckboxSelectMultiple),
        MultiFieldPanel(
            [
                FieldRowPanel([FieldPanel("is_deceased"), FieldPanel("deceased_date")]),
                FieldPanel("external_id"),
            ],
            heading=_("Other"),
        ),
    ],
    base_form_class=ContactAdminForm,
)


class ContactFilterSet(WagtailFilterSet):
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=ContactKind.choices)
    group = django_filters.ModelChoiceFilter(
        label=_("Group"), queryset=Group.objects.all(), method="filter_group"
    )
    tag = django_filters.ModelChoiceFilter(
        label=_("Tag"), queryset=Tag.objects.all(), method="filter_tag"
    )
    do_not_email = django_filters.BooleanFilter(label=_("Do not email"))
    is_deceased = django_filters.BooleanFilter(label=_("Deceased"))

    class Meta:
        model = Contact
        fields = ["kind"]

    def filter_group(self, queryset, name, value):
        members = GroupMembership.objects.current().filter(group=value).values("contact_id")
        return queryset.filter(pk__in=members)

    def filter_tag(self, queryset, name, value):
        # A subquery, not a join: a join would repeat contacts and break paging.
        tagged = Contact.tags.through.objects.filter(tag=value).values("contact_id")
        return queryset.filter(pk__in=tagged)


class ContactIndexView(ServiceBulkActionsIndexView):
    """Checkboxes offer only the CRM's bulk actions (bulk_actions.py)."""

    def search_queryset(self, queryset):
        # The same quick search as the API: emails, phones, fuzzy names.
        if not self.is_searching:
            return queryset
        return search_filter(queryset, self.search_query)


def _primary_email(contact):
    row = contact.primary_email
    return row.email if row else ""


def _primary_phone(contact):
    row = contact.primary_phone
    return str(row) if row else ""


def _tag_names(contact):
    return ", ".join(tag.name for tag in contact.tags.all())


class ContactCreateView(ServiceCreateView):
    def save_with_service(self):
        return create_contact(
            actor=self.request.user, source=SOURCE, **self.form.service_arguments()
        )


class ContactEditView(ServiceEditView):
    def save_with_service(self):
        return update_contact(
            self.object, actor=self.request.user, source=SOURCE, **self.form.service_arguments()
        )


class ContactDeleteView(ServiceDeleteView):
    page_title = _("Move to trash")
    success_message = _("%(model_name)s '%(object)s' moved to the trash.")

    @property
    def confirmation_message(self):
        return gettext(
            "Move this contact to the trash? It disappears from lists and search, "
            "keeps all its records and can be restored."
        )

    def delete_with_service(self):
        trash_contact(self.object, actor=self.request.user, source=SOURCE)


def _display_custom_value(row):
    value = row.value
    if row.field.field_type == FieldType.BOOLEAN:
        return gettext("Yes") if value else gettext("No")
    if row.field.field_type == FieldType.MULTI_CHOICE:
        return ", ".join(value or [])
    if row.field.field_type == FieldType.MONEY and value is not None:
        return f"{value:.2f} {row.field.currency}"
    if row.field.field_type == FieldType.NUMBER and value is not None:
        return f"{value.normalize():f}"
    return value


def _display_change_value(value):
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _with_change_rows(activities):
    """Give each activity ``change_rows``: (field, old, new) ready to show.

    "Nothing to nothing" pairs (blank fields given on creation) are left out.
    """
    for activity in activities:
        activity.change_rows = [
            (name, _display_change_value(old), _display_change_value(new))
            for name, (old, new) in (activity.changes or {}).items()
            if old not in (None, "", [], False) or new not in (None, "", [], False)
        ]
    return activities


def _communication_notes(contact):
    notes = []
    if contact.preferred_channel:
        notes.append(
            gettext("Prefers %(channel)s.")
            % {"channel": contact.get_preferred_channel_display().lower()}
        )
    for flag, text in (
        ("do_not_email", gettext("Do not email.")),
        ("do_not_phone", gettext("Do not phone.")),
        ("do_not_mail", gettext("Do not mail.")),
        ("do_not_sms", gettext("Do not SMS.")),
        ("is_opt_out", gettext("Opted out of bulk mail.")),
        ("is_deceased", gettext("Deceased.")),
    ):
        if getattr(contact, flag):
            notes.append(text)
    return notes


# Membership statuses the renewal service refuses (see MembershipIndexView).
CLOSED_MEMBERSHIP_STATUSES = ("cancelled", "deceased", "pending")
UNPAID_CONTRIBUTION_STATUSES = (ContributionStatus.PENDING, ContributionStatus.FAILED)


def _can(user, model, action):
    return policy_registry.get_by_type(model).user_has_permission(user, action)


def _renewable(membership):
    return (
        membership.status not in CLOSED_MEMBERSHIP_STATUSES
        and not membership.inherited_from_id
        and membership.end_date is not None
    )


class ContactInspectView(InspectView):
    """The contact summary: details, memberships, events, giving, consent, timeline.

    Every list comes from a ``crm_core.selectors.contacts`` function running
    a fixed number of queries, so the page costs the same for a contact with
    three contributions or three hundred.
    """

    def get_object(self, queryset=None):
        return get_object_or_404(Contact.objects.with_details(), pk=unquote(str(self.pk)))

    def get_fields_context(self):
        return []

    def get_actions(self, contact, memberships=()):
        """Links to the admin views that act on this contact, for those allowed.

        Each carries ``?contact=`` (the form starts with this contact) and
        ``?next=`` (back to this summary once saved); ``memberships`` are
        those shown, already marked with their ``renew_url``.
        """
        user = self.request.user
        query = "?" + urlencode({"contact": contact.pk, "next": self.request.path})
        back = "?" + urlencode({"next": self.request.path})
        actions = [
            (reverse(f"wagtailsnippets_crm_core_{model._meta.model_name}:add") + query, label)
            for model, label in (
                (Activity, gettext("Log an activity")),
                (GroupMembership, gettext("Add to group")),
                (Participant, gettext("Register for an event")),
                (Contribution, gettext("Record a contribution")),
            )
            if _can(user, model, "add")
        ]
        actions += [
            (m.renew_url + back, gettext("Renew %(type)s") % {"type": m.membership_type})
            for m in memberships
            if m.renew_url
        ]
        if can_merge(user):
            url = reverse("crm_contact_merge", args=[contact.pk])
            actions.append((url, gettext("Merge with another contact")))
        return actions

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        contact, user = self.object, self.request.user
        consent = current_consent(contact)
        relationships = contact_relationships(contact)
        memberships = contact_memberships(contact)
        may_renew = user.has_perm("crm_core.renew_membership")
        for membership in memberships:
            membership.renew_url = (
                reverse("crm_membership_renew", args=[membership.pk])
                if may_renew and _renewable(membership)
                else None
            )
        giving = contact_giving(contact)
        may_record_payment = user.has_perm("crm_core.record_offline_payment")
        for contribution in giving["contributions"]:
            contribution.record_payment_url = (
                reverse(
                    "wagtailsnippets_crm_core_contribution:record_payment", args=[contribution.pk]
                )
                if may_record_payment and contribution.status in UNPAID_CONTRIBUTION_STATUSES
                else None
            )
        merges = []
        if can_merge(user):
            merges = [
                (
                    reverse("crm_duplicates_review", args=[pair.pk]),
                    pair.contact_b if pair.contact_a_id == contact.pk else pair.contact_a,
                )
                for pair in contact_possible_duplicates(contact)
            ]
        context.update(
            {
                "contact": contact,
                "communication": _communication_notes(contact),
                "memberships": contact.group_memberships.current()
                .select_related("group")
                .order_by("group__name"),
                "relationships": relationships,
                "households": contact_households(contact, relationships),
                "custom_values": [
                    (row.field.label, _display_custom_value(row))
                    for row in sorted(
                        contact.custom_values.all(), key=lambda v: (v.field.weight, v.field.label)
                    )
                ],
                "consent": [consent[key] for key in sorted(consent)],
                "crm_memberships": memberships,
                "participations": contact_participations(contact),
                "giving": giving,
                "can_view_contributions": _can(user, Contribution, "view"),
                "statement_links": statement_links(contact, user),
                "can_view_contacts": _can(user, Contact, "view"),
                "contact_actions": self.get_actions(contact, memberships),
                "merges": merges,
                "timeline": _with_change_rows(contact_timeline(contact)),
            }
        )
        return context


class ContactViewSet(CRMSnippetViewSet):
    model = Contact
    icon = "user"
    menu_label = _("Contacts")
    menu_order = 100
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = ContactIndexView
    add_view_class = ContactCreateView
    edit_view_class = ContactEditView
    delete_view_class = ContactDeleteView
    inspect_view_class = ContactInspectView
    inspect_template_name = "crm_wagtail/contact/inspect.html"
    edit_handler = contact_edit_handler
    filterset_class = ContactFilterSet
    # Turns on the search box; ContactIndexView searches with search_filter.
    search_fields = ["display_name"]
    search_backend_name = None
    list_per_page = 50
    list_display = [
        "display_name",
        Column("kind", label=_("Kind"), accessor="get_kind_display"),
        Column("email", label=_("Email"), accessor=_primary_email),
        Column("phone", label=_("Phone"), accessor=_primary_phone),
        Column("tags", label=_("Tags"), accessor=_tag_names),
        DateColumn("updated_at", label=_("Updated"), sort_key="updated_at"),
    ]

    def get_queryset(self, request):
        # Emails, phones and tags are prefetched: the listing runs a fixed
        # number of queries however many rows it shows.
        return Contact.objects.with_details()
