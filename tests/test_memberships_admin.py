"""Memberships in the Wagtail back office: writes go through the services."""

import datetime

import pytest
from django.urls import reverse

from crm_core.models import Membership, MembershipType
from crm_core.services import memberships
from tests.conftest import grant
from tests.factories import ContactFactory, MembershipTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("wagtailsnippets_crm_core_membership:list")
ADD = reverse("wagtailsnippets_crm_core_membership:add")
TYPES = reverse("wagtailsnippets_crm_core_membershiptype:list")
RULES = reverse("wagtailsnippets_crm_core_membershipstatusrule:list")


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def member(contact):
    return memberships.join(contact, MembershipTypeFactory(name="Friends"))


def test_a_superuser_sees_the_memberships_list(admin_client, member):
    response = admin_client.get(LIST)
    assert response.status_code == 200
    assert member.contact.display_name in response.content.decode()


def test_the_list_filters_by_status(admin_client, member):
    other = memberships.join(ContactFactory(last_name="Zzyzx"), MembershipTypeFactory())
    memberships.cancel(other)
    response = admin_client.get(LIST, {"status": "cancelled"})
    assert response.status_code == 200
    assert "Zzyzx" in response.content.decode()
    assert member.contact.display_name not in response.content.decode()


def test_adding_a_membership_in_the_admin_joins_through_the_service(admin_client, superuser):
    contact = ContactFactory()
    mtype = MembershipTypeFactory()
    response = admin_client.post(
        ADD,
        {
            "contact": contact.pk,
            "membership_type": mtype.pk,
            "join_date": "2025-01-10",
            "start_date": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    membership = Membership.objects.get(contact=contact)
    assert membership.end_date == datetime.date(2026, 1, 9)
    event = contact.activities.order_by("-id").first()
    assert (event.created_by, event.source) == (superuser, "admin")


def test_a_second_membership_of_the_same_type_shows_an_error_in_the_form(admin_client, member):
    response = admin_client.post(
        ADD, {"contact": member.contact_id, "membership_type": member.membership_type_id}
    )
    assert response.status_code == 200
    assert "renew it" in response.content.decode()
    assert Membership.objects.count() == 1


def test_a_bad_date_in_the_admin_form_is_an_error_not_a_crash(admin_client, contact):
    response = admin_client.post(
        ADD,
        {
            "contact": contact.pk,
            "membership_type": MembershipTypeFactory().pk,
            "join_date": "0001-01-01",
        },
    )
    assert response.status_code == 200
    assert not Membership.objects.exists()


def test_editing_a_membership_changes_only_its_type(admin_client, member):
    gold = MembershipTypeFactory(name="Gold")
    url = reverse("wagtailsnippets_crm_core_membership:edit", args=[member.pk])
    response = admin_client.post(
        url, {"membership_type": gold.pk, "end_date": "2099-01-01", "status": "current"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    member.refresh_from_db()
    assert member.membership_type == gold
    assert member.end_date != datetime.date(2099, 1, 1)


def test_renewing_in_the_admin(admin_client, member):
    old_end = member.end_date
    response = admin_client.post(reverse("crm_membership_renew", args=[member.pk]), {"terms": 2})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.end_date > old_end


def test_a_renew_form_sent_twice_renews_once(admin_client, member):
    url = reverse("crm_membership_renew", args=[member.pk])
    token = admin_client.get(url).context["form"]["action_token"].initial
    first = admin_client.post(url, {"terms": 1, "action_token": token})
    member.refresh_from_db()
    renewed_to = member.end_date
    again = admin_client.post(url, {"terms": 1, "action_token": token}, follow=True)
    assert first.status_code == 302
    assert "it was not carried out again" in again.content.decode()
    member.refresh_from_db()
    assert member.end_date == renewed_to
    # A new form (a new token) renews again, as staff mean it to.
    token = admin_client.get(url).context["form"]["action_token"].initial
    admin_client.post(url, {"terms": 1, "action_token": token})
    member.refresh_from_db()
    assert member.end_date > renewed_to


def test_a_refused_action_keeps_its_form_usable(admin_client, member):
    memberships.cancel(member)
    url = reverse("crm_membership_renew", args=[member.pk])
    token = admin_client.get(url).context["form"]["action_token"].initial
    assert admin_client.post(url, {"terms": 1, "action_token": token}).status_code == 200
    # The refusal rolled the token back: sent again, the form is judged again.
    response = admin_client.post(url, {"terms": 1, "action_token": token})
    assert "cannot be renewed" in response.content.decode()


def test_renewing_a_cancelled_membership_in_the_admin_shows_why_not(admin_client, member):
    memberships.cancel(member)
    response = admin_client.post(reverse("crm_membership_renew", args=[member.pk]), {"terms": 1})
    assert response.status_code == 200
    assert "cannot be renewed" in response.content.decode()


def test_cancelling_in_the_admin_stores_the_reason_without_markup(admin_client, member):
    response = admin_client.post(
        reverse("crm_membership_cancel", args=[member.pk]), {"reason": "<script>x</script>"}
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.status == "cancelled"
    assert "<script>" not in member.cancel_reason


def test_memberships_cannot_be_deleted_in_the_admin(admin_client, member):
    url = reverse("wagtailsnippets_crm_core_membership:delete", args=[member.pk])
    admin_client.post(url)
    assert Membership.objects.filter(pk=member.pk).exists()


def test_a_user_without_permissions_cannot_list_memberships(client, member):
    staff(client)
    response = client.get(LIST)
    assert response.status_code in (302, 403)
    assert member.contact.display_name not in response.content.decode()


def test_renewing_needs_the_renew_permission(client, member):
    staff(client, "crm_core.view_membership", "crm_core.change_membership")
    old_end = member.end_date
    response = client.post(reverse("crm_membership_renew", args=[member.pk]), {"terms": 1})
    assert response.status_code in (302, 403)
    member.refresh_from_db()
    assert member.end_date == old_end


def test_cancelling_needs_the_change_permission(client, member):
    staff(client, "crm_core.view_membership", "crm_core.renew_membership")
    response = client.post(reverse("crm_membership_cancel", args=[member.pk]), {"reason": ""})
    assert response.status_code in (302, 403)
    member.refresh_from_db()
    assert member.status == "new"


def test_a_superuser_can_add_a_membership_type(admin_client):
    response = admin_client.post(
        reverse("wagtailsnippets_crm_core_membershiptype:add"),
        {
            "name": "Student",
            "slug": "student",
            "description": "",
            "fee": "10.00",
            "currency": "gbp",
            "financial_type": MembershipTypeFactory().financial_type_id,
            "duration_unit": "year",
            "duration_interval": 1,
            "period_type": "rolling",
            "grace_period_days": 30,
            "auto_renew": "no",
            "weight": 0,
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert MembershipType.objects.get(slug="student").currency == "GBP"


def test_a_membership_type_in_use_is_not_deleted(admin_client, member):
    url = reverse(
        "wagtailsnippets_crm_core_membershiptype:delete", args=[member.membership_type_id]
    )
    admin_client.post(url)
    assert MembershipType.objects.filter(pk=member.membership_type_id).exists()


def test_status_rules_are_listed_and_cannot_be_added(admin_client):
    assert admin_client.get(RULES).status_code == 200
    response = admin_client.get(reverse("wagtailsnippets_crm_core_membershipstatusrule:add"))
    assert response.status_code in (302, 403)


def test_a_user_without_permissions_cannot_list_membership_types(client):
    staff(client)
    assert client.get(TYPES).status_code in (302, 403)
