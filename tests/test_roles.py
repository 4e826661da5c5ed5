"""Staff roles (``manage.py crm_setup_roles``): what each role reaches in the admin and the API.

The expectations below are written out by hand, not read from
``crm_core.roles``: a wrong change to that table makes these tests fail.
"""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from crm_core.services import memberships
from crm_core.services.activities import log_activity
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    EventFactory,
    MembershipTypeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ROLES = ["CRM administrator", "Fundraiser", "Membership officer", "Event manager", "Read-only"]

# Areas of the back office: (snippet URL prefix, crm_api list URL name, offers add, offers edit).
# Contributions, participants and payments are never edited through Wagtail's generic edit
# view (services and actions instead), and payments are never added there.
AREAS = {
    "contacts": ("wagtailsnippets_crm_core_contact", "crm_api:contact-list", True, True),
    "activities": ("wagtailsnippets_crm_core_activity", "crm_api:activity-list", True, True),
    "contributions": (
        "wagtailsnippets_crm_core_contribution",
        "crm_api:contribution-list",
        True,
        False,
    ),
    "campaigns": ("wagtailsnippets_crm_core_campaign", "crm_api:campaign-list", True, True),
    "payments": ("wagtailsnippets_crm_payments_payment", "crm_payments_api:payment-list", 0, 0),
    "memberships": ("wagtailsnippets_crm_core_membership", "crm_api:membership-list", True, True),
    "membership types": (
        "wagtailsnippets_crm_core_membershiptype",
        "crm_api:membership-type-list",
        True,
        True,
    ),
    "events": ("wagtailsnippets_crm_core_event", "crm_api:event-list", True, True),
    "participants": (
        "wagtailsnippets_crm_core_participant",
        "crm_api:participant-list",
        True,
        False,
    ),
}

# role -> area -> "write" (list, add, edit), "read" (list only) or absent (nothing).
W, R = "write", "read"
EXPECTED = {
    "CRM administrator": {
        "contacts": W, "activities": W, "contributions": W, "campaigns": W, "payments": R,
        "memberships": W, "membership types": W, "events": W, "participants": W,
    },
    "Fundraiser": {
        "contacts": W, "activities": W, "contributions": W, "campaigns": R, "payments": R,
    },
    "Membership officer": {
        "contacts": W, "activities": R, "contributions": R, "memberships": W,
        "membership types": W,
    },
    "Event manager": {"contacts": W, "activities": R, "events": W, "participants": W},
    "Read-only": dict.fromkeys(AREAS, R),
}  # fmt: skip
# The payments API is read only for everyone; its admin area is too.
API_READ_ONLY = {"payments"}
# Participants are not POSTed to their list: registering is an event's action.
API_WRITE_URLS = {"participants": ("crm_api:event-register", "events")}
CHECKS_IN = {"CRM administrator", "Event manager"}


def setup_roles():
    out = StringIO()
    call_command("crm_setup_roles", stdout=out)
    return out.getvalue()


def group_permissions():
    return {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.filter(name__in=ROLES).prefetch_related(
            "permissions__content_type"
        )
    }


@pytest.fixture
def records():
    """One row per area with an edit view, for its edit URL."""
    contact = ContactFactory()
    return {
        "contacts": contact,
        "activities": log_activity(contact, activity_type="note", subject="Hello"),
        "campaigns": CampaignFactory(),
        "memberships": memberships.join(contact, MembershipTypeFactory(name="Friends")),
        "membership types": MembershipTypeFactory(name="Gold"),
        "events": EventFactory(),
    }


def log_in_as(client, role):
    setup_roles()
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def test_setup_roles_creates_the_five_groups_each_with_admin_access():
    setup_roles()
    permissions = group_permissions()
    assert sorted(permissions) == sorted(ROLES)
    assert all("wagtailadmin.access_admin" in names for names in permissions.values())


def test_setup_roles_twice_changes_nothing():
    first = setup_roles()
    before = group_permissions()
    second = setup_roles()
    assert group_permissions() == before
    assert "created" in first and "created" not in second
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)


def test_setup_roles_resets_permissions_changed_by_hand_and_keeps_members():
    setup_roles()
    before = group_permissions()
    readonly = Group.objects.get(name="Read-only")
    user = UserFactory()
    user.groups.add(readonly)
    readonly.permissions.add(Permission.objects.get(codename="delete_contact"))
    readonly.permissions.remove(Permission.objects.get(codename="view_event"))
    setup_roles()
    assert group_permissions() == before
    assert user.groups.filter(pk=readonly.pk).exists()


@pytest.mark.parametrize(
    ("role", "granted", "refused"),
    [
        ("CRM administrator", "crm_core.delete_contact", "auth.add_user"),
        ("Fundraiser", "crm_core.refund_contribution", "crm_core.delete_contact"),
        ("Fundraiser", "crm_core.record_offline_payment", "crm_core.renew_membership"),
        ("Membership officer", "crm_core.renew_membership", "crm_core.refund_contribution"),
        # Adding to groups (the contacts listing's "Add to group"), not ending memberships.
        ("Membership officer", "crm_core.add_groupmembership", "crm_core.delete_groupmembership"),
        ("Event manager", "crm_core.change_participant", "crm_core.add_groupmembership"),
        ("Event manager", "crm_core.check_in_participant", "crm_core.view_contribution"),
        ("Read-only", "crm_payments.view_refund", "crm_core.change_contact"),
    ],
)
def test_roles_hold_their_special_permissions(role, granted, refused):
    setup_roles()
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    assert user.has_perm(granted)
    assert not user.has_perm(refused)


def refused(response):
    """403, or Wagtail's redirect to the dashboard with "no permission"."""
    return response.status_code == 403 or (
        response.status_code == 302 and response["Location"] == reverse("wagtailadmin_home")
    )


@pytest.mark.parametrize("role", ROLES)
def test_admin_areas_open_only_to_the_roles_that_work_in_them(client, records, role):
    log_in_as(client, role)
    assert client.get(reverse("wagtailadmin_home")).status_code == 200
    wrong = []
    for area, (prefix, _api, has_add, has_edit) in AREAS.items():
        access = EXPECTED[role].get(area)
        urls = [("list", reverse(f"{prefix}:list"), access in (R, W))]
        if has_add:
            urls.append(("add", reverse(f"{prefix}:add"), access == W))
        if has_edit:
            url = reverse(f"{prefix}:edit", args=[records[area].pk])
            urls.append(("edit", url, access == W))
        for view, url, allowed in urls:
            response = client.get(url)
            if allowed != (response.status_code == 200) or (not allowed and not refused(response)):
                wrong.append((area, view, response.status_code))
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_api_allows_and_refuses_the_same_as_the_admin(client, records, role):
    log_in_as(client, role)
    wrong = []
    for area, (_prefix, list_name, _add, _edit) in AREAS.items():
        access = EXPECTED[role].get(area)
        url = reverse(list_name)
        read = client.get(url).status_code
        if read != (200 if access in (R, W) else 403):
            wrong.append((area, "GET", read))
        if area in API_READ_ONLY:
            continue
        if area in API_WRITE_URLS:
            name, record = API_WRITE_URLS[area]
            url = reverse(name, args=[records[record].pk])
        # An empty body: 400 shows the permission check passed, 403 that it did not.
        write = client.post(url, {}, content_type="application/json").status_code
        if write != (400 if access == W else 403):
            wrong.append((area, "POST", write))
    assert wrong == []


def test_a_fundraiser_can_create_a_contact_through_the_api(client):
    log_in_as(client, "Fundraiser")
    response = client.post(
        reverse("crm_api:contact-list"),
        {"first_name": "Ann", "last_name": "Lee"},
        content_type="application/json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize("role", ROLES)
def test_only_event_managers_and_administrators_reach_the_check_in_page(client, role):
    log_in_as(client, role)
    event = EventFactory()
    response = client.get(reverse("crm_event_checkin", args=[event.pk]))
    assert response.status_code == (200 if role in CHECKS_IN else 403)


def test_demo_data_creates_a_login_per_role():
    out = StringIO()
    call_command("crm_demo_data", stdout=out)
    users = {
        "fundraiser": "Fundraiser",
        "membership": "Membership officer",
        "events": "Event manager",
        "readonly": "Read-only",
    }
    text = out.getvalue()
    for username, role in users.items():
        group = Group.objects.get(name=role)
        assert group.user_set.filter(username=username).exists()
        assert f"user: {username}  password: " in text
