"""Factories that build through the services, as real callers do."""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm_core.models import (
    Campaign,
    CustomField,
    Event,
    EventFeeLevel,
    FinancialType,
    Group,
    MembershipType,
    RelationshipType,
    Tag,
)
from crm_core.services.contacts import create_contact


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@staff.example.org")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-123")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class ContactFactory(factory.Factory):
    """``ContactFactory(first_name=..., emails=[...])`` calls create_contact."""

    class Meta:
        model = dict

    kind = "individual"
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    emails = factory.LazyAttributeSequence(
        lambda o, n: [f"person{n}@example.org"] if o.kind == "individual" else []
    )

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        if kwargs.get("kind") != "individual":
            kwargs.pop("first_name", None)
            kwargs.pop("last_name", None)
        return create_contact(**kwargs)

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        return dict(kwargs)


class OrganizationFactory(ContactFactory):
    kind = "organization"
    organization_name = factory.Faker("company")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tag {n}")
    slug = factory.Sequence(lambda n: f"tag-{n}")


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Group {n}")
    slug = factory.Sequence(lambda n: f"group-{n}")


class RelationshipTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RelationshipType
        django_get_or_create = ("slug",)

    slug = "employee-of"
    label_a_to_b = "Employee of"
    label_b_to_a = "Employer of"
    contact_kind_a = "individual"
    contact_kind_b = "organization"


class CustomFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomField
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"field_{n}")
    label = factory.LazyAttribute(lambda o: o.name.replace("_", " ").title())
    field_type = "text"


class FinancialTypeFactory(factory.django.DjangoModelFactory):
    """The funds the data migration creates are reused by slug."""

    class Meta:
        model = FinancialType
        django_get_or_create = ("slug",)

    slug = "donation"
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").capitalize())


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Appeal {n}")
    slug = factory.Sequence(lambda n: f"appeal-{n}")


class MembershipTypeFactory(factory.django.DjangoModelFactory):
    """A rolling one-year type costing 30 GBP."""

    class Meta:
        model = MembershipType
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Membership {n}")
    slug = factory.Sequence(lambda n: f"membership-{n}")
    fee = Decimal("30.00")
    currency = "GBP"
    financial_type = factory.SubFactory(FinancialTypeFactory, slug="member-dues")
    duration_unit = "year"
    duration_interval = 1
    period_type = "rolling"


class EventFactory(factory.django.DjangoModelFactory):
    """An event a month ahead, open for registration now, 50 seats."""

    class Meta:
        model = Event
        django_get_or_create = ("slug",)

    title = factory.Sequence(lambda n: f"Event {n}")
    slug = factory.Sequence(lambda n: f"event-{n}")
    starts_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=30))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + datetime.timedelta(hours=2))
    time_zone = "Europe/London"
    capacity = 50
    currency = "GBP"
    financial_type = factory.SubFactory(FinancialTypeFactory, slug="event-fee")


class EventFeeLevelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventFeeLevel

    event = factory.SubFactory(EventFactory)
    label = "Standard"
    amount = Decimal("25.00")
