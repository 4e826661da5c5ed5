"""Serializers of the CRM API: they check the shape and types of a request.

They never write. Views hand ``validated_data`` to the services, which clean
the content (markup, lengths, emails, phone numbers, countries, tags, custom
values) and save. Reference data (groups, tags, relationship types, custom
field definitions) has no service: ``FullCleanModelSerializer`` saves it after
the model's own validation.
"""

import datetime
from collections.abc import Mapping
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.validators import validate_slug
from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..models import (
    Activity,
    ConsentRecord,
    Contact,
    ContactAddress,
    ContactEmail,
    ContactPhone,
    CustomField,
    Group,
    GroupMembership,
    Relationship,
    RelationshipType,
    Tag,
)
from ..sanitize import plain_text
from ..services.contacts import CONTACT_FIELDS

# Largest value of a BigAutoField; a larger id names no row on any database.
MAX_ID = 2**63 - 1


class TextField(serializers.CharField):
    """Text only: a number, list or object is an error, not silently made text."""

    default_error_messages = {"invalid": _("Expected text.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class SlugTextField(serializers.SlugField):
    default_error_messages = {"invalid_type": _("Expected text.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_type")
        return super().to_internal_value(data)


class PlainTextField(TextField):
    """Text stored without markup: "<b>Ann</b>" becomes "Ann" (see crm_core.sanitize)."""

    def __init__(self, *, multiline=False, **kwargs):
        self.multiline = multiline
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return plain_text(super().to_internal_value(data), multiline=self.multiline)


class MultilinePlainTextField(PlainTextField):
    def __init__(self, **kwargs):
        kwargs.pop("style", None)
        super().__init__(multiline=True, style={"base_template": "textarea.html"}, **kwargs)


class IdRelatedField(serializers.PrimaryKeyRelatedField):
    """A related row named by its integer id.

    Booleans, fractions and ids beyond what the database holds are rejected
    before any query, so ``10**30`` is a 400 on SQLite and PostgreSQL alike.
    """

    def to_internal_value(self, data):
        if isinstance(data, str) and data.strip().isdigit():
            data = int(data.strip())
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= data <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class StrictFieldsMixin:
    """Reject keys the serializer does not know, naming each one.

    Read-only fields are known, so a body fetched with GET, changed and sent
    back with PUT is accepted (the read-only values are ignored).
    """

    # Sent by the browsable API's HTML forms along with the fields.
    form_keys = frozenset({"csrfmiddlewaretoken"})

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(
                str(name) for name in data if name not in self.fields and name not in self.form_keys
            )
            if unknown:
                raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
        return super().to_internal_value(data)


class CRMModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """ModelSerializer with strict text fields and bounded ids."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: PlainTextField,
        models.TextField: MultilinePlainTextField,
        models.SlugField: SlugTextField,
    }
    serializer_related_field = IdRelatedField


class FullCleanModelSerializer(CRMModelSerializer):
    """Saves reference data after ``Model.full_clean()``, so model rules
    (such as ``CustomField.clean``) hold for API writes as they do in forms.
    Django's ValidationError becomes a 400 in ``crm_core.api.errors``."""

    def create(self, validated_data):
        instance = self.Meta.model(**validated_data)
        instance.full_clean()
        instance.save()
        return instance

    def update(self, instance, validated_data):
        for name, value in validated_data.items():
            setattr(instance, name, value)
        instance.full_clean()
        instance.save()
        return instance


# -- contacts -------------------------------------------------------------------


class ContactEmailSerializer(CRMModelSerializer):
    class Meta:
        model = ContactEmail
        fields = ["id", "email", "location", "is_primary", "on_hold"]


class ContactPhoneSerializer(CRMModelSerializer):
    number = TextField(
        max_length=40, help_text=_("Any common format; stored in E.164 (+442079460000).")
    )

    class Meta:
        model = ContactPhone
        fields = ["id", "number", "extension", "phone_type", "location", "is_primary"]


class ContactAddressSerializer(CRMModelSerializer):
    country = TextField(
        max_length=2,
        required=False,
        allow_blank=True,
        help_text=_("ISO 3166-1 alpha-2 code, such as GB."),
    )

    class Meta:
        model = ContactAddress
        fields = [
            "id",
            "location",
            "street_address",
            "supplemental_address",
            "city",
            "region",
            "postal_code",
            "country",
            "is_primary",
        ]


def _custom_value_json(value):
    # Money and numbers as strings: JSON numbers would lose decimal places.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


class TagSlugsField(serializers.ListField):
    child = TextField(max_length=100)

    def to_representation(self, tags):
        # Reads the rows prefetched by Contact.objects.with_details().
        return [tag.slug for tag in tags.all()]


class CustomValuesField(serializers.DictField):
    """``{field name: value}`` in, the contact's active custom values out."""

    def get_attribute(self, contact):
        return contact.custom_values

    def to_representation(self, custom_values):
        # Reads the rows prefetched by Contact.objects.with_details().
        return {
            value.field.name: _custom_value_json(value.value)
            for value in custom_values.all()
            if value.field.is_active
        }


class ContactSerializer(CRMModelSerializer):
    """A contact with its emails, phones, addresses, tags and custom values.

    Lists given in a write replace the contact's current ones; left out, they
    are not touched. Saving is done by ``crm_core.services.contacts``.
    """

    # Text is checked for type and length here; the service strips markup.
    prefix = TextField(max_length=20, required=False, allow_blank=True)
    first_name = TextField(max_length=100, required=False, allow_blank=True)
    middle_name = TextField(max_length=100, required=False, allow_blank=True)
    last_name = TextField(max_length=100, required=False, allow_blank=True)
    suffix = TextField(max_length=20, required=False, allow_blank=True)
    nickname = TextField(max_length=100, required=False, allow_blank=True)
    organization_name = TextField(max_length=255, required=False, allow_blank=True)
    household_name = TextField(max_length=255, required=False, allow_blank=True)
    job_title = TextField(max_length=255, required=False, allow_blank=True)
    external_id = TextField(max_length=64, required=False, allow_blank=True, allow_null=True)
    employer = IdRelatedField(
        queryset=Contact.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("Id of an organization contact."),
    )
    emails = ContactEmailSerializer(many=True, required=False)
    phones = ContactPhoneSerializer(many=True, required=False)
    addresses = ContactAddressSerializer(many=True, required=False)
    tags = TagSlugsField(required=False, help_text=_("Tag slugs."))
    custom_fields = CustomValuesField(
        required=False,
        help_text=_("Custom values by field name; null clears a value."),
    )

    class Meta:
        model = Contact
        fields = [
            "id",
            "display_name",
            "sort_name",
            *CONTACT_FIELDS,
            "emails",
            "phones",
            "addresses",
            "tags",
            "custom_fields",
            "is_deleted",
            "created_at",
            "updated_at",
        ]
        # ``source`` is where the contact came from: "api" for contacts made here.
        read_only_fields = [
            "display_name",
            "sort_name",
            "source",
            "is_deleted",
            "created_at",
            "updated_at",
        ]

    def validate_custom_fields(self, value):
        # Names reach a database query: anything not slug-shaped is unknown.
        bad = []
        for name in value:
            try:
                validate_slug(name)
            except Exception:  # noqa: BLE001 - any failure means "not a field name"
                bad.append(name)
        if bad or any(len(name) > 64 for name in value):
            raise serializers.ValidationError(_("Unknown custom field name."))
        return value

    def create(self, validated_data):
        raise NotImplementedError("Contacts are saved by crm_core.services.contacts.")

    def update(self, instance, validated_data):
        raise NotImplementedError("Contacts are saved by crm_core.services.contacts.")


# -- groups and tags -----------------------------------------------------------------


class TagSerializer(FullCleanModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "slug", "description"]


class GroupSerializer(FullCleanModelSerializer):
    class Meta:
        model = Group
        fields = ["id", "name", "slug", "description", "is_active", "created_at"]
        read_only_fields = ["created_at"]


class GroupMembershipSerializer(CRMModelSerializer):
    """A spell of a contact in a group; leaving closes it (``left_at``)."""

    is_current = serializers.BooleanField(read_only=True)

    class Meta:
        model = GroupMembership
        fields = [
            "id",
            "contact",
            "group",
            "joined_at",
            "left_at",
            "is_current",
            "source",
            "added_by",
            "removed_by",
        ]
        read_only_fields = ["joined_at", "left_at", "source", "added_by", "removed_by"]

    def create(self, validated_data):
        raise NotImplementedError("Memberships are saved by crm_core.services.groups.")


# -- relationships -----------------------------------------------------------------


class RelationshipTypeSerializer(FullCleanModelSerializer):
    class Meta:
        model = RelationshipType
        fields = [
            "id",
            "slug",
            "label_a_to_b",
            "label_b_to_a",
            "contact_kind_a",
            "contact_kind_b",
            "description",
            "is_active",
        ]


class RelationshipSerializer(CRMModelSerializer):
    class Meta:
        model = Relationship
        fields = [
            "id",
            "relationship_type",
            "contact_a",
            "contact_b",
            "start_date",
            "end_date",
            "is_active",
            "description",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def create(self, validated_data):
        raise NotImplementedError("Relationships are saved by crm_core.services.relationships.")

    def update(self, instance, validated_data):
        raise NotImplementedError("Relationships are saved by crm_core.services.relationships.")


# -- activities ------------------------------------------------------------------------


class ActivitySerializer(CRMModelSerializer):
    """A timeline entry. ``contact`` and ``activity_type`` are fixed once logged;
    system events (``activity_type: system``) are read-only history."""

    # Rich text: the service keeps a small allowlist of tags (crm_core.sanitize).
    details = TextField(required=False, allow_blank=True, style={"base_template": "textarea.html"})
    assignee = IdRelatedField(
        queryset=get_user_model().objects.filter(is_active=True), required=False, allow_null=True
    )
    duration = serializers.DurationField(
        required=False,
        allow_null=True,
        min_value=datetime.timedelta(0),
        max_value=datetime.timedelta(days=366),
    )

    class Meta:
        model = Activity
        fields = [
            "id",
            "contact",
            "activity_type",
            "subject",
            "details",
            "occurred_at",
            "status",
            "assignee",
            "due_date",
            "duration",
            "changes",
            "source",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["changes", "source", "created_by", "created_at"]

    def create(self, validated_data):
        raise NotImplementedError("Activities are saved by crm_core.services.activities.")

    def update(self, instance, validated_data):
        raise NotImplementedError("Activities are saved by crm_core.services.activities.")


# -- custom fields ---------------------------------------------------------------------


class CustomFieldSerializer(FullCleanModelSerializer):
    choices = serializers.ListField(
        child=PlainTextField(max_length=255),
        required=False,
        help_text=_("For choice fields: the allowed values."),
    )

    class Meta:
        model = CustomField
        fields = [
            "id",
            "name",
            "label",
            "field_type",
            "choices",
            "currency",
            "applies_to",
            "is_required",
            "is_active",
            "help_text",
            "weight",
        ]

    def validate_field_type(self, value):
        # Values live in a column chosen by the type: changing it would hide them.
        instance = self.instance
        if instance and value != instance.field_type and instance.values.exists():
            raise serializers.ValidationError(
                _("The type cannot change once contacts have values for this field.")
            )
        return value


# -- consent ---------------------------------------------------------------------------


class ConsentRecordSerializer(CRMModelSerializer):
    """One statement of consent; records are only ever appended."""

    class Meta:
        model = ConsentRecord
        fields = [
            "id",
            "contact",
            "purpose",
            "channel",
            "granted",
            "recorded_at",
            "source",
            "source_reference",
            "wording",
            "ip_address",
            "recorded_by",
        ]
        read_only_fields = ["source", "recorded_by"]
        extra_kwargs = {"recorded_at": {"required": False}}

    def create(self, validated_data):
        raise NotImplementedError("Consent is recorded by crm_core.services.consent.")
