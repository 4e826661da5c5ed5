"""From a contact's summary to an add form that already names the contact, and back.

The summary's action links carry ``?contact=<pk>&next=<summary>``; the add
views of activities, group memberships, event places and contributions fill
in the contact from it and return to the summary once saved.
"""

import re
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from crm_core.models import Activity, Contribution, GroupMembership, Participant
from crm_core.services import memberships
from crm_core.services.contacts import trash_contact
from crm_core.services.groups import add_to_group
from tests.conftest import grant
from tests.factories import (
    ContactFactory,
    EventFactory,
    FinancialTypeFactory,
    GroupFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SUMMARY_URL = "wagtailsnippets_crm_core_contact:inspect"
ADD_VIEWS = ["activity", "groupmembership", "participant", "contribution"]


def add_url(model, **params):
    url = reverse(f"wagtailsnippets_crm_core_{model}:add")
    return url + ("?" + urlencode(params) if params else "")


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def prefilled(response, contact):
    html = response.content.decode()
    return f'name="contact" value="{contact.pk}"' in html


@pytest.fixture
def ada(db):
    return ContactFactory(first_name="Ada", last_name="Lovelace")


def summary_links(client, contact):
    response = client.get(reverse(SUMMARY_URL, args=[contact.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_summary_links_name_the_contact_and_the_way_back(client, superuser, ada):
    client.force_login(superuser)
    html = summary_links(client, ada)
    back = reverse(SUMMARY_URL, args=[ada.pk])
    query = urlencode({"contact": ada.pk, "next": back}).replace("&", "&amp;")
    for model in ADD_VIEWS:
        assert f"{add_url(model)}?{query}" in html, model
    assert "Add to group" in html
    assert reverse("crm_contact_merge", args=[ada.pk]) in html


def test_summary_offers_renewal_of_each_renewable_membership_returning_to_it(
    client, superuser, ada
):
    client.force_login(superuser)
    membership = memberships.join(ada, MembershipTypeFactory(slug="annual", name="Annual"))
    html = summary_links(client, ada)
    back = urlencode({"next": reverse(SUMMARY_URL, args=[ada.pk])})
    assert f"{reverse('crm_membership_renew', args=[membership.pk])}?{back}" in html
    assert "Renew Annual" in html


def test_add_to_group_and_merge_links_need_their_permissions(client, ada):
    staff(client, "crm_core.view_contact", "crm_core.add_activity")
    html = summary_links(client, ada)
    assert add_url("activity") in html
    assert add_url("groupmembership") not in html
    assert reverse("crm_contact_merge", args=[ada.pk]) not in html

    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    html = summary_links(client, ada)
    assert add_url("groupmembership") in html
    assert add_url("activity") not in html


@pytest.mark.parametrize("model", ADD_VIEWS)
def test_each_add_view_starts_with_the_contact_it_was_opened_for(client, superuser, ada, model):
    client.force_login(superuser)
    response = client.get(add_url(model, contact=ada.pk))
    assert response.status_code == 200
    assert prefilled(response, ada)
    assert "Ada Lovelace" in response.content.decode()


@pytest.mark.parametrize("model", ADD_VIEWS)
@pytest.mark.parametrize(
    "junk", ["abc", "-1", "1.5", "99999999999999999999999999", "\u00b2", "", "0"]
)
def test_bad_contact_ids_leave_the_form_empty_without_an_error(client, superuser, ada, model, junk):
    client.force_login(superuser)
    response = client.get(add_url(model, contact=junk))
    assert response.status_code == 200
    assert not re.search(r'name="contact" value="\d', response.content.decode())


@pytest.mark.parametrize("model", ADD_VIEWS)
def test_unknown_and_trashed_contacts_are_not_prefilled(client, superuser, ada, model):
    client.force_login(superuser)
    trash_contact(ada)
    response = client.get(add_url(model, contact=ada.pk))
    assert response.status_code == 200
    assert not prefilled(response, ada)
    response = client.get(add_url(model, contact=ada.pk + 1000))
    assert response.status_code == 200


def test_saving_returns_to_the_summary_given_in_next(client, superuser, ada):
    client.force_login(superuser)
    back = reverse(SUMMARY_URL, args=[ada.pk])
    page = client.get(add_url("activity", contact=ada.pk, next=back))
    # The form posts to the same address, so ?next= survives the POST.
    assert add_url("activity", contact=ada.pk, next=back).replace("&", "&amp;") in (
        page.content.decode()
    )
    response = client.post(
        add_url("activity", contact=ada.pk, next=back),
        {
            "contact": ada.pk,
            "activity_type": "call",
            "subject": "Thank-you call",
            "details": "",
            "occurred_at": "2025-03-01 10:00",
            "status": "completed",
            "duration": "",
        },
    )
    assert response.status_code == 302
    assert response.url == back
    assert Activity.objects.filter(contact=ada, subject="Thank-you call").exists()


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]
)
def test_next_pointing_off_site_is_ignored(client, superuser, ada, next_url):
    client.force_login(superuser)
    event = EventFactory()
    response = client.post(
        add_url("participant", contact=ada.pk, next=next_url),
        {"event": event.pk, "contact": ada.pk, "role": "", "fee_level": ""},
    )
    assert response.status_code == 302
    assert response.url == reverse("wagtailsnippets_crm_core_participant:list")
    assert Participant.objects.filter(event=event, contact=ada).exists()


def test_recording_a_contribution_from_the_summary_goes_back_to_it(client, superuser, ada):
    client.force_login(superuser)
    back = reverse(SUMMARY_URL, args=[ada.pk])
    response = client.post(
        add_url("contribution", contact=ada.pk, next=back),
        {
            "contact": ada.pk,
            "amount": "12.00",
            "currency": "GBP",
            "financial_type": FinancialTypeFactory().pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response.url == back
    assert Contribution.objects.filter(contact=ada, total_amount="12.00").exists()


def test_adding_to_a_group_goes_through_the_service_and_back(client, ada):
    user = staff(client, "crm_core.add_groupmembership", "crm_core.view_groupmembership")
    group = GroupFactory(name="Volunteers")
    back = reverse(SUMMARY_URL, args=[ada.pk])
    response = client.post(
        add_url("groupmembership", contact=ada.pk, next=back),
        {"contact": ada.pk, "group": group.pk},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response.url == back
    membership = GroupMembership.objects.current().get(contact=ada, group=group)
    assert membership.added_by == user and membership.source == "admin"
    assert Activity.objects.filter(contact=ada, subject__contains="Volunteers").exists()


def test_adding_a_contact_to_a_group_twice_says_so_on_the_form(client, superuser, ada):
    client.force_login(superuser)
    group = GroupFactory(name="Volunteers")
    add_to_group(ada, group)
    response = client.post(add_url("groupmembership"), {"contact": ada.pk, "group": group.pk})
    assert response.status_code == 200
    assert "is in this group already" in response.content.decode()
    assert GroupMembership.objects.filter(contact=ada, group=group).count() == 1


def test_adding_to_a_group_needs_the_add_permission(client, ada):
    staff(client, "crm_core.view_groupmembership")
    group = GroupFactory()
    response = client.post(add_url("groupmembership"), {"contact": ada.pk, "group": group.pk})
    # Wagtail answers a refused add with a redirect to the dashboard.
    assert response.status_code == 403 or response.url == reverse("wagtailadmin_home")
    assert not GroupMembership.objects.exists()


def test_renewing_from_the_summary_goes_back_to_it(client, superuser, ada):
    client.force_login(superuser)
    membership = memberships.join(ada, MembershipTypeFactory(slug="annual"))
    end = membership.end_date
    back = reverse(SUMMARY_URL, args=[ada.pk])
    renew = reverse("crm_membership_renew", args=[membership.pk]) + "?" + urlencode({"next": back})
    assert renew.replace("&", "&amp;") in client.get(renew).content.decode()
    response = client.post(renew, {"terms": 1})
    assert response.status_code == 302
    assert response.url == back
    membership.refresh_from_db()
    assert membership.end_date > end
