"""FilterSets of the CRM API.

Every parameter goes through a Django form field, so a bad value (a word for a
date, a null byte, an id too large for the database) is a 400 naming the
parameter, never a 500.
"""

import datetime

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeRangeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from ..models import (
    Activity,
    ActivityStatus,
    ActivityType,
    Channel,
    ConsentRecord,
    Contact,
    ContactKind,
    CustomField,
    FieldType,
    Group,
    GroupMembership,
    Relationship,
    RelationshipType,
    Tag,
)
from ..selectors.contacts import search_filter

# Largest id a BigAutoField holds; larger ids can match nothing.
MAX_ID = 2**63 - 1


class IdFilter(django_filters.Filter):
    """An integer id, bounded so no database sees an out-of-range number."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class UTCDateTimeRangeField(IsoDateTimeRangeField):
    """An ISO date-time range whose ends the database can store.

    "9999-12-31T23:00-10:00" parses, but is past the year 9999 in UTC, which
    is how the databases compare it: refused here, not an OverflowError.
    """

    default_error_messages = {
        "out_of_range": _("Enter a date and time between the years 1 and 9999 (in UTC)."),
    }

    def compress(self, data_list):
        for value in data_list or ():
            if value is None:
                continue
            try:
                value.astimezone(datetime.UTC)
            except OverflowError:
                raise forms.ValidationError(
                    self.error_messages["out_of_range"], code="out_of_range"
                ) from None
        return super().compress(data_list)


class DateTimeRangeFilter(django_filters.IsoDateTimeFromToRangeFilter):
    """``<name>_after`` / ``<name>_before`` in ISO 8601, bounded as the database is."""

    field_class = UTCDateTimeRangeField


class ContactFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=200,
        label=_("Quick search: name, email or phone number."),
    )
    kind = django_filters.ChoiceFilter(choices=ContactKind.choices)
    tag = django_filters.CharFilter(field_name="tags__slug", max_length=100, label=_("Tag slug."))
    group = IdFilter(method="filter_group", label=_("Id of a group the contact is currently in."))
    employer = IdFilter(field_name="employer_id")
    created = DateTimeRangeFilter(field_name="created_at")
    updated = DateTimeRangeFilter(field_name="updated_at")

    class Meta:
        model = Contact
        fields = [
            "kind",
            "is_deceased",
            "do_not_email",
            "do_not_phone",
            "do_not_mail",
            "do_not_sms",
            "is_opt_out",
            "preferred_language",
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def filter_search(self, queryset, name, value):
        return search_filter(queryset, value)

    @extend_schema_field(OpenApiTypes.INT)
    def filter_group(self, queryset, name, value):
        return queryset.filter(
            group_memberships__group_id=value, group_memberships__left_at__isnull=True
        )


class GroupFilter(django_filters.FilterSet):
    class Meta:
        model = Group
        fields = ["is_active"]


class GroupMembershipFilter(django_filters.FilterSet):
    contact = IdFilter(field_name="contact_id")
    group = IdFilter(field_name="group_id")
    current = django_filters.BooleanFilter(
        method="filter_current", label=_("true: current members only; false: past spells only.")
    )

    class Meta:
        model = GroupMembership
        fields = []

    @extend_schema_field(OpenApiTypes.BOOL)
    def filter_current(self, queryset, name, value):
        return queryset.filter(left_at__isnull=value)


class TagFilter(django_filters.FilterSet):
    class Meta:
        model = Tag
        fields = ["slug"]


class RelationshipTypeFilter(django_filters.FilterSet):
    class Meta:
        model = RelationshipType
        fields = ["is_active", "slug"]


class RelationshipFilter(django_filters.FilterSet):
    contact = IdFilter(method="filter_contact", label=_("Id of a contact on either side."))
    contact_a = IdFilter(field_name="contact_a_id")
    contact_b = IdFilter(field_name="contact_b_id")
    relationship_type = IdFilter(field_name="relationship_type_id")

    class Meta:
        model = Relationship
        fields = ["is_active"]

    @extend_schema_field(OpenApiTypes.INT)
    def filter_contact(self, queryset, name, value):
        return queryset.filter(contact_a_id=value) | queryset.filter(contact_b_id=value)


class ActivityFilter(django_filters.FilterSet):
    contact = IdFilter(field_name="contact_id")
    assignee = IdFilter(field_name="assignee_id")
    activity_type = django_filters.MultipleChoiceFilter(choices=ActivityType.choices)
    status = django_filters.ChoiceFilter(choices=ActivityStatus.choices)
    occurred = DateTimeRangeFilter(field_name="occurred_at")
    due = django_filters.DateFromToRangeFilter(field_name="due_date")

    class Meta:
        model = Activity
        fields = []


class CustomFieldFilter(django_filters.FilterSet):
    field_type = django_filters.ChoiceFilter(choices=FieldType.choices)
    applies_to = django_filters.ChoiceFilter(choices=ContactKind.choices)

    class Meta:
        model = CustomField
        fields = ["is_active"]


class ConsentRecordFilter(django_filters.FilterSet):
    contact = IdFilter(field_name="contact_id")
    purpose = django_filters.CharFilter(max_length=64)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    recorded = DateTimeRangeFilter(field_name="recorded_at")

    class Meta:
        model = ConsentRecord
        fields = ["granted"]
