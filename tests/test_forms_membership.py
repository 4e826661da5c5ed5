"""The membership form: joining through a Wagtail page, paying the type's fee."""

from decimal import Decimal

import pytest
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.models import Page

from crm_core.models import Contribution, Membership, RecurringContribution
from crm_core.services.contributions import record_offline_payment
from crm_core.services.memberships import join as join_membership
from crm_forms.models import Submission
from crm_payments.models import Payment
from crm_wagtail.blocks import MembershipFormBlock
from crm_wagtail.models import MembershipPage
from tests.factories import ContactFactory, MembershipTypeFactory

pytestmark = pytest.mark.django_db

SUBMIT = "/crm/forms/submit/"


@pytest.fixture
def types(db):
    return {
        "individual": MembershipTypeFactory(
            name="Individual", fee=Decimal("30.00"), auto_renew="optional"
        ),
        "friend": MembershipTypeFactory(name="Friend", fee=Decimal("0"), auto_renew="no"),
        "direct": MembershipTypeFactory(
            name="Direct debit", fee=Decimal("24.00"), auto_renew="required"
        ),
    }


@pytest.fixture
def join_page(types):
    page = MembershipPage(
        title="Join",
        slug="join",
        body=[
            (
                "membership_form",
                {
                    "title": "Join us",
                    "membership_types": list(types.values()),
                    "payment_methods": ["offline", "stripe"],
                    "consent": [],
                },
            )
        ],
    )
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def hidden_fields(client, page):
    html = client.get(page.url).content.decode()
    fields = {}
    for name in ("placement", "token"):
        marker = f'name="{name}" value="'
        start = html.index(marker) + len(marker)
        fields[name] = html[start : html.index('"', start)]
    return fields


def join(client, page, membership_type, **data):
    posted = {
        **hidden_fields(client, page),
        "membership_type": str(membership_type.pk),
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@example.org",
        "payment_method": "offline",
        **data,
    }
    return client.post(SUBMIT, posted, REMOTE_ADDR="203.0.113.7")


def test_the_page_offers_the_configured_types_with_their_fees(client, join_page):
    html = client.get(join_page.url).content.decode()
    assert "Individual: 30.00 GBP" in html
    assert "Friend (free)" in html


def test_joining_to_pay_later_reserves_a_membership_that_payment_makes_current(
    client, join_page, types
):
    response = join(client, join_page, types["individual"])
    assert response.status_code == 302
    membership = Membership.objects.get()
    assert (membership.membership_type, membership.status) == (types["individual"], "pending")
    contribution = Contribution.objects.get()
    assert contribution.total_amount == Decimal("30.00")
    assert contribution.line_items.get().membership == membership
    thanks = client.get(response["Location"]).content.decode()
    assert (
        "Your membership is reserved; it starts when your payment of 30.00 GBP arrives." in thanks
    )

    record_offline_payment(contribution, payment_method="bank_transfer")
    membership.refresh_from_db()
    assert membership.status in ("new", "current")


def test_a_free_type_is_joined_at_once_without_a_contribution(client, join_page, types):
    response = join(client, join_page, types["friend"])
    membership = Membership.objects.get()
    assert membership.status in ("new", "current")
    assert not Contribution.objects.exists()
    assert (
        "Welcome: you are now a member (Friend)."
        in client.get(response["Location"]).content.decode()
    )


def test_a_type_that_must_renew_automatically_sets_up_a_card_standing_order(
    client, join_page, types, fake_stripe
):
    response = join(client, join_page, types["direct"], payment_method="stripe")
    assert response.status_code == 302
    recurring = RecurringContribution.objects.get()
    assert recurring.membership == Membership.objects.get()
    assert (recurring.amount, recurring.frequency_unit) == (Decimal("24.00"), "year")
    assert Payment.objects.get().provider == "stripe"
    assert Membership.objects.get().auto_renew is True


def test_automatic_renewal_cannot_be_paid_later(client, join_page, types):
    response = join(client, join_page, types["direct"])
    assert response.status_code == 400
    assert "Automatic renewal can only be paid by card." in response.content.decode()
    assert not Membership.objects.exists()


def test_a_type_not_offered_on_the_form_is_refused(client, join_page, types):
    other = MembershipTypeFactory(name="Secret", fee=Decimal("1.00"))
    response = join(client, join_page, other)
    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert (Membership.objects.count(), Submission.objects.count()) == (0, 0)


def test_joining_with_a_members_email_does_not_reveal_their_membership(client, join_page, types):
    member = ContactFactory(first_name="Vera", last_name="Secret", emails=["vera@example.org"])
    join_membership(member, types["friend"])
    response = join(client, join_page, types["friend"], email="vera@example.org")
    html = response.content.decode()
    assert response.status_code == 409
    assert "A membership of this type is already held with the details given." in html
    assert "already has" not in html and "renew it instead" not in html
    assert Membership.objects.count() == 1


def test_joining_with_the_email_of_a_deceased_contact_does_not_say_so(client, join_page, types):
    ContactFactory(emails=["late@example.org"], is_deceased=True)
    response = join(client, join_page, types["friend"], email="late@example.org")
    html = response.content.decode()
    assert response.status_code == 400
    assert "We could not accept this form with the details given." in html
    assert "deceased" not in html
    assert not Membership.objects.exists()


def test_a_replayed_join_makes_one_membership(client, join_page, types):
    fields = hidden_fields(client, join_page)
    first = join(client, join_page, types["individual"], **fields)
    second = join(client, join_page, types["individual"], **fields)
    assert first["Location"] == second["Location"]
    assert Membership.objects.count() == 1


def test_editors_cannot_offer_inactive_types_or_forced_renewal_without_card(types):
    block = MembershipFormBlock()
    inactive = MembershipTypeFactory(name="Old", is_active=False)
    value = block.to_python(
        {
            "title": "x",
            "membership_types": [inactive.pk],
            "payment_methods": ["offline"],
            "consent": [],
        }
    )
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(value)
    assert "membership_types" in info.value.block_errors
    value = block.to_python(
        {
            "title": "x",
            "membership_types": [types["direct"].pk],
            "payment_methods": ["offline"],
            "consent": [],
        }
    )
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(value)
    assert "payment_methods" in info.value.block_errors


# -- joining for an organisation -------------------------------------------------------------


@pytest.fixture
def employee_of(db):
    from tests.factories import RelationshipTypeFactory

    return RelationshipTypeFactory(
        slug="employee-of", label_a_to_b="Employee of", label_b_to_a="Employer of"
    )


@pytest.fixture
def org_page(types, employee_of):
    page = MembershipPage(
        title="Corporate",
        slug="corporate",
        body=[
            (
                "membership_form",
                {
                    "title": "Join as an organisation",
                    "membership_types": [types["individual"]],
                    "allow_organisation": True,
                    "organisation_relationship": employee_of,
                    "payment_methods": ["offline"],
                    "consent": [],
                },
            )
        ],
    )
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def test_joining_for_an_organisation_makes_it_the_member_and_relates_the_person(
    client, org_page, types, employee_of
):
    from crm_core.models import Contact, Relationship

    assert "I am joining on behalf of an organisation" in client.get(org_page.url).content.decode()
    response = join(
        client, org_page, types["individual"], on_behalf="on", organisation_name="  Acme Ltd "
    )
    assert response.status_code == 302
    membership = Membership.objects.get()
    organisation = membership.contact
    assert (organisation.kind, organisation.organization_name) == ("organization", "Acme Ltd")
    assert Contribution.objects.get().contact == organisation
    person = Contact.objects.get(kind="individual")
    relationship = Relationship.objects.get()
    assert (relationship.contact_a, relationship.relationship_type, relationship.contact_b) == (
        person,
        employee_of,
        organisation,
    )


def test_joining_for_an_organisation_needs_its_name(client, org_page, types):
    response = join(client, org_page, types["individual"], on_behalf="on")
    assert response.status_code == 400
    assert "Give the organisation&#x27;s name." in response.content.decode()
    assert not Membership.objects.exists()


def test_the_organisation_choice_is_only_offered_when_the_editor_allows_it(
    client, join_page, types
):
    assert "on behalf of an organisation" not in client.get(join_page.url).content.decode()
    join(client, join_page, types["individual"], on_behalf="on", organisation_name="Posted")
    assert Membership.objects.get().contact.kind == "individual"


def test_editors_must_say_how_the_person_relates_to_the_organisation(types):
    with pytest.raises(StructBlockValidationError) as caught:
        MembershipFormBlock().clean(
            MembershipFormBlock().to_python(
                {
                    "title": "Join",
                    "membership_types": [types["individual"].pk],
                    "allow_organisation": True,
                    "payment_methods": ["offline"],
                    "consent": [],
                }
            )
        )
    assert "organisation_relationship" in caught.value.block_errors


def test_a_type_deactivated_after_publishing_is_no_longer_offered_and_the_others_work(
    client, join_page, types
):
    hidden = hidden_fields(client, join_page)  # the form as the visitor loaded it
    types["direct"].is_active = False
    types["direct"].save()
    page = client.get(join_page.url).content.decode()
    assert "Direct debit" not in page and "Individual" in page
    response = client.post(
        SUBMIT,
        {
            **hidden,
            "membership_type": str(types["individual"].pk),
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": "grace@example.org",
            "payment_method": "offline",
        },
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 302
    assert Membership.objects.get().membership_type == types["individual"]
    response = join(client, join_page, types["direct"])
    assert response.status_code == 400
    assert Membership.objects.count() == 1
