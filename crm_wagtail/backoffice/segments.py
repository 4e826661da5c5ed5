"""Smart groups in the back office: a search built from form fields, with a live count.

Staff never type JSON: each criterion of ``crm_core.selectors.segments`` is a
form field of the same name, and the form turns them into the criteria the
model stores. A "Count" button re-renders the form with the number of
contacts that match, without saving and without JavaScript.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_countries import countries
from wagtail.admin import messages
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn
from wagtail.admin.widgets import AdminDateInput
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views import snippets

from crm_core.models import (
    ContactKind,
    CustomField,
    Event,
    FieldType,
    Group,
    MembershipStatus,
    MembershipType,
    SmartGroup,
    Tag,
)
from crm_core.selectors.segments import MAX_TEXT, segment_contacts, validate_criteria

from .choosers import CRMSnippetViewSet
from .service_views import add_service_errors

# Contacts listed on a smart group's page; the count covers all of them.
INSPECT_LIMIT = 50

DATE_FIELDS = (
    "created_from",
    "created_to",
    "attended_from",
    "attended_to",
    "giving_from",
    "giving_to",
    "last_gift_before",
    "last_gift_after",
)
TEXT_FIELDS = ("name_contains", "email_contains", "city", "postcode")
MODEL_FIELDS = ("in_groups", "not_in_groups", "tags", "membership_types", "events")
CHOICE_FIELDS = ("kinds", "membership_statuses", "countries")
YEAR_FIELDS = ("gave_in_year", "not_gave_in_year")
AMOUNT_FIELDS = ("total_given_min", "total_given_max")


def _text(label, help_text=""):
    return forms.CharField(label=label, required=False, max_length=MAX_TEXT, help_text=help_text)


def _date(label):
    return forms.DateField(label=label, required=False, widget=AdminDateInput)


def _rows(model_class, label, help_text=""):
    return forms.ModelMultipleChoiceField(
        label=label,
        queryset=model_class.objects.all(),
        required=False,
        help_text=help_text,
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )


def _year(label):
    return forms.IntegerField(label=label, required=False, min_value=1900, max_value=2200)


def _amount(label):
    return forms.DecimalField(
        label=label, required=False, min_value=0, max_digits=14, decimal_places=3
    )


class SmartGroupForm(WagtailAdminModelForm):
    """One field per criterion; ``clean()`` builds and checks ``instance.criteria``."""

    match = forms.ChoiceField(
        label=_("Contacts must match"),
        choices=[("all", _("every condition below")), ("any", _("any condition below"))],
        initial="all",
        widget=forms.RadioSelect,
    )
    kinds = forms.MultipleChoiceField(
        label=_("Kind of contact"),
        choices=ContactKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    name_contains = _text(_("Name contains"))
    email_contains = _text(_("Email contains"))
    city = _text(_("City"))
    postcode = _text(_("Postcode starts with"), _("Spaces and case do not matter."))
    countries = forms.MultipleChoiceField(
        label=_("Country"),
        choices=list(countries),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )
    created_from = _date(_("Created on or after"))
    created_to = _date(_("Created on or before"))
    in_groups = _rows(Group, _("In any of these groups"))
    not_in_groups = _rows(Group, _("In none of these groups"))
    tags = _rows(Tag, _("Has any of these tags"))
    custom_field = forms.ModelChoiceField(
        label=_("Custom field"), queryset=CustomField.objects.all(), required=False
    )
    custom_value = forms.CharField(
        label=_("equals"),
        required=False,
        max_length=2000,
        help_text=_("For a multiple choice, separate the choices with commas."),
    )
    membership_types = _rows(MembershipType, _("Membership of type"))
    membership_statuses = forms.MultipleChoiceField(
        label=_("Membership status"),
        choices=MembershipStatus.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("With types chosen, the same membership must have both."),
    )
    events = _rows(Event, _("Registered for or attended"))
    attended_from = _date(_("Attended an event starting on or after"))
    attended_to = _date(_("Attended an event starting on or before"))
    giving_from = _date(_("Gifts from"))
    giving_to = _date(_("Gifts to"))
    total_given_min = _amount(_("Gave at least"))
    total_given_max = _amount(_("Gave at most"))
    giving_currency = forms.CharField(
        label=_("Currency"),
        required=False,
        max_length=3,
        help_text=_("ISO 4217 code such as GBP; needed with an amount."),
    )
    last_gift_before = _date(_("Last gift before"))
    last_gift_after = _date(_("Gave on or after"))
    gave_in_year = _year(_("Gave in year"))
    not_gave_in_year = _year(_("Did not give in year"))

    class Meta:
        model = SmartGroup
        fields = ["name", "slug", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk:
            self.initial.update(self._initial_from(self.instance.criteria or {}))

    @staticmethod
    def _initial_from(criteria):
        initial = {key: value for key, value in criteria.items() if key != "custom_fields"}
        conditions = criteria.get("custom_fields") or []
        if conditions:
            # The form edits one custom field condition: the first.
            initial["custom_field"] = conditions[0]["field"]
            value = conditions[0]["value"]
            initial["custom_value"] = ", ".join(value) if isinstance(value, list) else value
        return initial

    def _criteria_from_fields(self):
        data = self.cleaned_data
        criteria = {}
        if data.get("match") == "any":
            criteria["match"] = "any"
        for name in TEXT_FIELDS:
            if data.get(name):
                criteria[name] = data[name]
        for name in CHOICE_FIELDS:
            if data.get(name):
                criteria[name] = list(data[name])
        for name in MODEL_FIELDS:
            if data.get(name):
                criteria[name] = [row.pk for row in data[name]]
        for name in DATE_FIELDS:
            if data.get(name):
                criteria[name] = data[name].isoformat()
        for name in YEAR_FIELDS:
            if data.get(name) is not None:
                criteria[name] = data[name]
        for name in AMOUNT_FIELDS:
            if data.get(name) is not None:
                criteria[name] = str(data[name])
        if data.get("giving_currency"):
            criteria["giving_currency"] = data["giving_currency"].upper()
        field = data.get("custom_field")
        if field is not None:
            value = data.get("custom_value", "")
            if field.field_type == FieldType.MULTI_CHOICE:
                value = [part.strip() for part in value.split(",") if part.strip()]
            criteria["custom_fields"] = [{"field": field.pk, "value": value}]
        elif data.get("custom_value"):
            self.add_error("custom_field", gettext("Choose the field the value is for."))
        return criteria

    def clean(self):
        cleaned = super().clean()
        # Until the new criteria pass, the instance holds none: the model's own
        # clean() must not report the old ones under a field the form lacks.
        self.instance.criteria = {}
        if any(name in self.errors for name in self.fields):
            return cleaned
        criteria = self._criteria_from_fields()
        try:
            self.instance.criteria = validate_criteria(criteria)
        except ValidationError as error:
            # Criteria errors are keyed by criterion, which is the field's name.
            renamed = {
                ("custom_value" if key == "custom_fields" else key): messages
                for key, messages in error.message_dict.items()
            }
            add_service_errors(self, ValidationError(renamed))
        return cleaned

    def match_count(self):
        """How many contacts the cleaned criteria match now (one COUNT query)."""
        return segment_contacts(self.instance.criteria).count()


def _panels():
    return [
        FieldPanel("name"),
        FieldPanel("slug"),
        FieldPanel("description"),
        FieldPanel("match"),
        MultiFieldPanel(
            [
                FieldPanel("kinds"),
                FieldRowPanel([FieldPanel("name_contains"), FieldPanel("email_contains")]),
                FieldRowPanel([FieldPanel("city"), FieldPanel("postcode")]),
                FieldPanel("countries"),
                FieldRowPanel([FieldPanel("created_from"), FieldPanel("created_to")]),
            ],
            heading=_("Who and where"),
        ),
        MultiFieldPanel(
            [
                FieldRowPanel([FieldPanel("in_groups"), FieldPanel("not_in_groups")]),
                FieldPanel("tags"),
                FieldRowPanel([FieldPanel("custom_field"), FieldPanel("custom_value")]),
            ],
            heading=_("Groups, tags and custom fields"),
        ),
        MultiFieldPanel(
            [FieldPanel("membership_types"), FieldPanel("membership_statuses")],
            heading=_("Membership"),
        ),
        MultiFieldPanel(
            [
                FieldPanel("events"),
                FieldRowPanel([FieldPanel("attended_from"), FieldPanel("attended_to")]),
            ],
            heading=_("Events"),
        ),
        MultiFieldPanel(
            [
                FieldRowPanel([FieldPanel("giving_from"), FieldPanel("giving_to")]),
                FieldRowPanel(
                    [
                        FieldPanel("total_given_min"),
                        FieldPanel("total_given_max"),
                        FieldPanel("giving_currency"),
                    ]
                ),
                FieldRowPanel([FieldPanel("last_gift_before"), FieldPanel("last_gift_after")]),
                FieldRowPanel([FieldPanel("gave_in_year"), FieldPanel("not_gave_in_year")]),
            ],
            heading=_("Giving"),
        ),
    ]


class CountButtonMixin:
    """A POST with ``count`` re-renders the form with the number of matches; nothing is saved."""

    match_count = None
    criteria_error = None

    def post(self, request, *args, **kwargs):
        if "count" not in request.POST:
            return super().post(request, *args, **kwargs)
        if not hasattr(self, "object"):
            self.object = self.get_object() if isinstance(self, snippets.EditView) else None
        form = self.get_form()
        self.form = form
        if form.is_valid():
            self.match_count = form.match_count()
        else:
            messages.validation_error(
                request, gettext("Correct the errors below to count the matching contacts."), form
            )
        return self.render_to_response(self.get_context_data(form=form))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["match_count"] = self.match_count
        context["criteria_error"] = self.criteria_error
        return context


class SmartGroupCreateView(CountButtonMixin, snippets.CreateView):
    def save_instance(self):
        instance = self.form.save(commit=False)
        instance.created_by = self.request.user
        instance.save()
        return instance


class SmartGroupEditView(CountButtonMixin, snippets.EditView):
    def get(self, request, *args, **kwargs):
        # The saved group's count, shown before anything is changed.
        try:
            self.match_count = self.object.contacts().count()
        except ValidationError as error:
            self.criteria_error = " ".join(error.messages)
        return super().get(request, *args, **kwargs)


class SmartGroupInspectView(snippets.InspectView):
    def get_fields(self):
        return ["name", "slug", "description", "created_by", "created_at", "updated_at"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["criteria_summary"] = criteria_summary(self.object.criteria or {})
        try:
            contacts = self.object.contacts()
            context["match_count"] = contacts.count()
            context["matching_contacts"] = list(contacts[:INSPECT_LIMIT])
        except ValidationError as error:
            context["criteria_error"] = " ".join(error.messages)
        context["inspect_limit"] = INSPECT_LIMIT
        context["can_view_contacts"] = self.request.user.has_perm("crm_core.view_contact")
        return context


def criteria_summary(criteria):
    """(label, value) pairs that say in words what ``criteria`` match."""
    form = SmartGroupForm()
    initial = SmartGroupForm._initial_from(criteria)
    summary = []
    for name, value in initial.items():
        field = form.fields.get(name)
        if field is None or value in (None, "", []):
            continue
        if isinstance(field, forms.ModelMultipleChoiceField):
            shown = ", ".join(str(row) for row in field.queryset.filter(pk__in=value))
        elif isinstance(field, forms.ModelChoiceField):
            shown = str(field.queryset.filter(pk=value).first() or value)
        elif isinstance(field, forms.ChoiceField):
            labels = dict(field.choices)
            values = value if isinstance(value, list) else [value]
            shown = ", ".join(str(labels.get(v, v)) for v in values)
        else:
            shown = str(value)
        summary.append((field.label, shown))
    return summary


class SmartGroupViewSet(CRMSnippetViewSet):
    model = SmartGroup
    icon = "group"
    menu_label = _("Smart groups")
    # Its own menu item beside "CRM": it is registered by register(), not in that group.
    add_to_admin_menu = True
    menu_order = 151
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    add_view_class = SmartGroupCreateView
    edit_view_class = SmartGroupEditView
    inspect_view_class = SmartGroupInspectView
    create_template_name = "crm_wagtail/smart_group/create.html"
    edit_template_name = "crm_wagtail/smart_group/edit.html"
    inspect_template_name = "crm_wagtail/smart_group/inspect.html"
    search_fields = ["name"]
    search_backend_name = None
    list_display = [
        Column("name", label=_("Name"), sort_key="name"),
        Column("slug", label=_("Slug")),
        DateColumn("updated_at", label=_("Updated"), sort_key="updated_at"),
    ]
    edit_handler = ObjectList(_panels(), base_form_class=SmartGroupForm)


def register():
    """Register the smart groups viewset with the Wagtail admin."""
    register_snippet(SmartGroupViewSet)
