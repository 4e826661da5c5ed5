"""Factories that build through the services, as real callers do."""

import factory
from django.contrib.auth import get_user_model

from crm_core.models import CustomField, Group, RelationshipType, Tag
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
