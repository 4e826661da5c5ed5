"""Bulk actions on the contact, participant and contribution listings, through HTTP.

Each action is reached as Wagtail's listing reaches it: the action bar's
button links to ``wagtail_bulk_action`` with the ticked rows as ``?id=``;
GET asks for confirmation (and any choice), POST acts and redirects back.
"""

import csv
import io
from urllib.parse import urlencode

import openpyxl
import pytest
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.messages import get_messages
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm_core.models import (
    Activity,
    Contact,
    Contribution,
    GroupMembership,
    Participant,
    ParticipantStatus,
    SentMessage,
    Tag,
)
from crm_core.services import contributions as contribution_services
from crm_core.services import events as event_services
from crm_core.services.contacts import trash_contact
from crm_core.services.groups import add_to_group
from crm_core.services.messages import send_receipt
from tests.conftest import grant
from tests.factories import ContactFactory, EventFactory, GroupFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db

CONTACT_LIST = reverse("wagtailsnippets_crm_core_contact:list")
PARTICIPANT_LIST = reverse("wagtailsnippets_crm_core_participant:list")
CONTRIBUTION_LIST = reverse("wagtailsnippets_crm_core_contribution:list")
FORMULA = "=cmd|' /C calc'!A0"


def action_url(model_name, action, ids):
    base = reverse("wagtail_bulk_action", args=["crm_core", model_name, action])
    return base + "?" + urlencode([("id", pk) for pk in ids])


def contacts_url(action, ids):
    return action_url("contact", action, ids)


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def refused(response):
    """403, or Wagtail's redirect to the dashboard with "no permission"."""
    return response.status_code == 403 or (
        response.status_code == 302 and response["Location"] == reverse("wagtailadmin_home")
    )


def message_texts(response):
    return [str(message).strip() for message in get_messages(response.wsgi_request)]


def people(count, **fields):
    return [ContactFactory(**fields) for _ in range(count)]


def book(event, contact):
    (participant,) = event_services.register(
        event, registered_by=contact, attendees=[{"contact": contact}]
    )
    return participant


def paid(contact, amount="25.00"):
    pending = contribution_services.create_pending(
        contact, currency="GBP", lines=[{"kind": "donation", "amount": amount}]
    )
    return contribution_services.complete(pending, transaction_id="")


def pending(contact, amount="10.00"):
    return contribution_services.create_pending(
        contact, currency="GBP", lines=[{"kind": "donation", "amount": amount}]
    )


# -- the listings offer our actions, only to those allowed, and never Wagtail's delete ---


def test_contact_listing_offers_the_actions_the_user_may_run_and_no_generic_delete(client):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    ContactFactory()
    content = client.get(CONTACT_LIST).content.decode()
    assert contacts_url("crm_add_to_group", []).rstrip("?") in content
    assert contacts_url("crm_export", []).rstrip("?") in content
    assert contacts_url("crm_trash", []).rstrip("?") not in content
    assert contacts_url("crm_add_tag", []).rstrip("?") not in content
    assert contacts_url("delete", []).rstrip("?") not in content
    assert "data-bulk-action-checkbox" in content


def test_a_user_without_any_bulk_action_gets_no_checkboxes(client):
    staff(client, "crm_core.view_contribution")
    paid(ContactFactory())
    content = client.get(CONTRIBUTION_LIST).content.decode()
    assert "data-bulk-action-checkbox" not in content
    assert "crm_resend_receipt" not in content


def test_participant_listing_offers_mark_attended_to_door_staff(client):
    staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    book(EventFactory(), ContactFactory())
    content = client.get(PARTICIPANT_LIST).content.decode()
    assert action_url("participant", "crm_mark_attended", []).rstrip("?") in content
    assert action_url("participant", "delete", []).rstrip("?") not in content


@pytest.mark.parametrize(
    ("model_name", "make"),
    [
        ("contact", lambda: ContactFactory()),
        ("participant", lambda: book(EventFactory(), ContactFactory())),
        ("contribution", lambda: paid(ContactFactory())),
        ("groupmembership", lambda: add_to_group(ContactFactory(), GroupFactory())[0]),
    ],
)
def test_wagtails_generic_bulk_delete_is_refused_even_to_a_superuser(client, model_name, make):
    row = make()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    url = action_url(model_name, "delete", [row.pk])
    assert refused(client.get(url))
    assert refused(client.post(url))
    assert type(row)._base_manager.filter(pk=row.pk).exists()


# -- add to group ----------------------------------------------------------------------


def test_add_to_group_adds_the_new_members_and_counts_those_already_in(client):
    user = staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    volunteers = GroupFactory(name="Volunteers", slug="volunteers")
    contacts = people(3)
    add_to_group(contacts[0], volunteers)
    response = client.post(
        contacts_url("crm_add_to_group", [c.pk for c in contacts]), {"group": volunteers.pk}
    )
    assert response.status_code == 302
    assert response["Location"] == CONTACT_LIST
    assert "2 contacts added to Volunteers; 1 was already in it." in message_texts(response)
    assert GroupMembership.objects.current().filter(group=volunteers).count() == 3
    event = Activity.objects.get(contact=contacts[1], subject="Added to group Volunteers")
    assert event.created_by == user
    assert event.source == "admin"


@pytest.mark.parametrize(
    ("role", "may"),
    [("Fundraiser", True), ("Membership officer", True), ("Event manager", False)],
)
def test_add_to_group_is_for_the_roles_that_may_add_group_memberships(client, role, may):
    call_command("crm_setup_roles", stdout=io.StringIO())
    user = UserFactory()
    user.groups.add(AuthGroup.objects.get(name=role))
    client.force_login(user)
    volunteers = GroupFactory(name="Volunteers", slug="volunteers")
    ada = ContactFactory()
    response = client.post(contacts_url("crm_add_to_group", [ada.pk]), {"group": volunteers.pk})
    assert GroupMembership.objects.filter(contact=ada, group=volunteers).exists() is may
    assert refused(response) is not may


def test_add_to_group_asks_for_the_group_on_a_confirmation_page(client):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    GroupFactory(name="Volunteers", slug="volunteers")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    response = client.get(contacts_url("crm_add_to_group", [ada.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Ada Lovelace" in content
    assert "Volunteers" in content
    assert not GroupMembership.objects.exists()


@pytest.mark.parametrize("group", ["999999", "99999999999999999999999999", "abc", ""])
def test_add_to_group_with_a_group_that_does_not_exist_shows_the_form_again(client, group):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    ada = ContactFactory()
    response = client.post(contacts_url("crm_add_to_group", [ada.pk]), {"group": group})
    assert response.status_code == 200
    assert "error-message" in response.content.decode()
    assert not GroupMembership.objects.exists()


def test_add_to_group_refuses_an_inactive_group(client):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    closed = GroupFactory(name="Old committee", slug="old-committee", is_active=False)
    ada = ContactFactory()
    response = client.post(contacts_url("crm_add_to_group", [ada.pk]), {"group": closed.pk})
    assert response.status_code == 200
    assert not GroupMembership.objects.exists()


def test_add_to_group_page_runs_the_same_queries_for_2_and_10_contacts(
    client, django_assert_num_queries
):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    GroupFactory(name="Volunteers", slug="volunteers")
    two, ten = people(2), people(10)
    client.get(contacts_url("crm_add_to_group", [c.pk for c in two]))  # warm caches
    with CaptureQueriesContext(connection) as few:
        assert client.get(contacts_url("crm_add_to_group", [c.pk for c in two])).status_code == 200
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(contacts_url("crm_add_to_group", [c.pk for c in ten]))
    assert response.content.decode().count("<li>") >= 10


# -- add tag ---------------------------------------------------------------------------


def test_add_tag_tags_each_contact_through_the_contact_service(client):
    user = staff(client, "crm_core.view_contact", "crm_core.change_contact")
    donor = TagFactory(name="Major donor", slug="major-donor")
    keep = TagFactory(name="Newsletter", slug="newsletter")
    ada = ContactFactory(tags=[keep])
    bob = ContactFactory(tags=[donor])
    response = client.post(contacts_url("crm_add_tag", [ada.pk, bob.pk]), {"tag": donor.pk})
    assert "1 contact tagged Major donor; 1 already had it." in message_texts(response)
    assert set(ada.tags.values_list("slug", flat=True)) == {"newsletter", "major-donor"}
    change = Activity.objects.get(contact=ada, subject="Contact updated")
    assert change.changes["tags"] == [["newsletter"], ["major-donor", "newsletter"]]
    assert change.created_by == user


def test_add_tag_takes_a_typed_name_of_an_existing_tag(client):
    staff(client, "crm_core.view_contact", "crm_core.change_contact")
    TagFactory(name="Volunteer", slug="volunteer")
    ada = ContactFactory()
    client.post(contacts_url("crm_add_tag", [ada.pk]), {"new_tag": "volunteer"})
    assert list(ada.tags.values_list("slug", flat=True)) == ["volunteer"]
    assert Tag.objects.count() == 1


def test_add_tag_creates_a_typed_tag_only_for_those_who_may_add_tags(client):
    staff(client, "crm_core.view_contact", "crm_core.change_contact")
    ada = ContactFactory()
    response = client.post(contacts_url("crm_add_tag", [ada.pk]), {"new_tag": "Gala 2026"})
    assert response.status_code == 200
    assert "There is no tag called" in response.content.decode()
    assert not Tag.objects.exists()

    staff(client, "crm_core.view_contact", "crm_core.change_contact", "crm_core.add_tag")
    client.post(contacts_url("crm_add_tag", [ada.pk]), {"new_tag": "Gala 2026"})
    assert list(ada.tags.values_list("name", flat=True)) == ["Gala 2026"]


def test_add_tag_without_a_tag_shows_the_form_again(client):
    staff(client, "crm_core.view_contact", "crm_core.change_contact")
    ada = ContactFactory()
    response = client.post(contacts_url("crm_add_tag", [ada.pk]), {"tag": "", "new_tag": ""})
    assert response.status_code == 200
    assert "Choose a tag or type its name." in response.content.decode()
    assert not Activity.objects.filter(subject="Contact updated").exists()


# -- export ----------------------------------------------------------------------------


def export(client, ids, file_format):
    return client.post(contacts_url("crm_export", ids), {"format": file_format})


def csv_rows(response):
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_csv_export_has_the_selected_contacts_with_their_details(client):
    staff(client, "crm_core.view_contact")
    trustees = GroupFactory(name="Trustees", slug="trustees")
    ada = ContactFactory(
        first_name="Ada",
        last_name="Lovelace",
        emails=["ada@engine.example", "ada@home.example"],
        phones=["020 7946 0000"],
        addresses=[{"street_address": "1 St James's Square", "city": "London", "country": "GB"}],
        tags=[TagFactory(name="Volunteer", slug="volunteer")],
    )
    add_to_group(ada, trustees)
    ContactFactory(first_name="Charles", last_name="Babbage")
    response = export(client, [ada.pk], "csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    header, *rows = csv_rows(response)
    assert header == ["Name", "Emails", "Phones", "Address", "Tags", "Groups"]
    assert len(rows) == 1
    name, emails, phones, address, tags, groups = rows[0]
    assert name == "Ada Lovelace"
    assert "ada@engine.example" in emails and "ada@home.example" in emails
    assert "2079460000" in phones
    assert "1 St James's Square" in address and "London" in address
    assert tags == "Volunteer"
    assert groups == "Trustees"


def test_csv_export_neutralises_a_name_a_spreadsheet_would_run(client):
    staff(client, "crm_core.view_contact")
    evil = ContactFactory(kind="organization", organization_name=FORMULA)
    _header, row = csv_rows(export(client, [evil.pk], "csv"))
    assert row[0] == "'" + FORMULA


def test_xlsx_export_neutralises_a_name_a_spreadsheet_would_run(client):
    staff(client, "crm_core.view_contact")
    evil = ContactFactory(kind="organization", organization_name=FORMULA)
    response = export(client, [evil.pk], "xlsx")
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(workbook.active.iter_rows(values_only=True))
    assert rows[0][0] == "Name"
    cell = workbook.active.cell(row=2, column=1)
    assert cell.value == "'" + FORMULA
    assert cell.data_type == "s"


def test_export_runs_the_same_queries_for_2_and_10_contacts(client, django_assert_num_queries):
    staff(client, "crm_core.view_contact")
    group = GroupFactory(name="Trustees", slug="trustees")
    tag = TagFactory(name="Volunteer", slug="volunteer")

    def make(count):
        rows = people(count, phones=["020 7946 0000"], tags=[tag])
        for contact in rows:
            add_to_group(contact, group)
        return [c.pk for c in rows]

    two, ten = make(2), make(10)
    export(client, two, "csv")  # warm caches
    with CaptureQueriesContext(connection) as few:
        assert len(csv_rows(export(client, two, "csv"))) == 3
    with django_assert_num_queries(len(few.captured_queries)):
        response = export(client, ten, "csv")
        rows = csv_rows(response)
    assert len(rows) == 11
    # The page that asks for the format, too.
    with CaptureQueriesContext(connection) as page_for_two:
        assert client.get(contacts_url("crm_export", two)).status_code == 200
    with django_assert_num_queries(len(page_for_two.captured_queries)):
        assert client.get(contacts_url("crm_export", ten)).status_code == 200


# -- move to trash ---------------------------------------------------------------------


def test_move_to_trash_soft_deletes_through_the_contact_service(client):
    user = staff(client, "crm_core.view_contact", "crm_core.delete_contact")
    ada, bob, keep = people(3)
    response = client.post(contacts_url("crm_trash", [ada.pk, bob.pk]))
    assert "2 contacts moved to the trash." in message_texts(response)
    assert set(Contact.all_objects.filter(is_deleted=True).values_list("pk", flat=True)) == {
        ada.pk,
        bob.pk,
    }
    assert Contact.objects.filter(pk=keep.pk).exists()
    assert Activity.objects.get(contact_id=ada.pk, subject="Moved to trash").created_by == user


# -- mark attended ---------------------------------------------------------------------


def test_mark_attended_checks_in_and_reports_refused_rows_one_by_one(client):
    user = staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    event = EventFactory()
    here, late, gone = (book(event, ContactFactory()) for _ in range(3))
    late = event_services.mark_no_show(late)
    gone = event_services.cancel_registration(gone)
    response = client.post(
        action_url("participant", "crm_mark_attended", [here.pk, late.pk, gone.pk])
    )
    assert response.status_code == 302
    texts = message_texts(response)
    assert "2 participants marked attended." in texts
    [warning] = [t for t in texts if "not changed" in t]
    assert str(gone.contact) in warning and "cannot be marked attended" in warning
    statuses = dict(Participant.objects.values_list("pk", "status"))
    assert statuses[here.pk] == statuses[late.pk] == ParticipantStatus.ATTENDED
    assert statuses[gone.pk] == ParticipantStatus.CANCELLED
    recorded = Activity.objects.filter(
        contact=here.contact, changes__event_participation__isnull=False
    ).latest("id")
    assert recorded.created_by == user
    assert recorded.changes["event_participation"][1] == ParticipantStatus.ATTENDED


def test_mark_attended_counts_those_who_already_attended(client):
    staff(client, "crm_core.view_participant", "crm_core.check_in_participant")
    event = EventFactory()
    there = event_services.check_in(book(event, ContactFactory()))
    response = client.post(action_url("participant", "crm_mark_attended", [there.pk]))
    assert "0 participants marked attended; 1 had already attended." in message_texts(response)


# -- resend receipt --------------------------------------------------------------------


def test_resend_receipt_sends_again_each_time_and_skips_unpaid(client):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@engine.example"])
    gift = paid(ada)
    assert send_receipt(gift.pk)
    assert not send_receipt(gift.pk)  # the ordinary path sends once
    mail.outbox.clear()
    promise = pending(ContactFactory(first_name="Bob", last_name="Pending"))
    url = action_url("contribution", "crm_resend_receipt", [gift.pk, promise.pk])
    response = client.post(url)
    texts = message_texts(response)
    assert "1 receipt sent again." in texts
    assert any("Bob Pending" in t and "not paid, skipped" in t for t in texts)
    client.post(url)
    assert [m.to for m in mail.outbox] == [["ada@engine.example"], ["ada@engine.example"]]
    assert SentMessage.objects.filter(key__startswith=f"receipt:{gift.pk}:resend:").count() == 2
    assert Activity.objects.filter(contact=ada, subject__startswith="Email sent").count() == 3


def test_resend_receipt_marks_a_receipt_never_sent_as_sent(client):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    gift = paid(ContactFactory())
    client.post(action_url("contribution", "crm_resend_receipt", [gift.pk]))
    gift.refresh_from_db()
    assert gift.receipt_status == "sent"
    assert len(mail.outbox) == 1


# -- permissions: not offered, and refused when posted directly -------------------------


@pytest.mark.parametrize(
    ("view_perm", "model_name", "action", "data", "make", "unchanged"),
    [
        (
            "crm_core.view_contact",
            "contact",
            "crm_add_to_group",
            lambda: {"group": GroupFactory().pk},
            lambda: ContactFactory(),
            lambda row: not GroupMembership.objects.exists(),
        ),
        (
            "crm_core.view_contact",
            "contact",
            "crm_add_tag",
            lambda: {"tag": TagFactory().pk},
            lambda: ContactFactory(),
            lambda row: not row.tags.exists(),
        ),
        (
            "crm_core.view_contact",
            "contact",
            "crm_trash",
            dict,
            lambda: ContactFactory(),
            lambda row: Contact.objects.filter(pk=row.pk).exists(),
        ),
        (
            "crm_core.view_participant",
            "participant",
            "crm_mark_attended",
            dict,
            lambda: book(EventFactory(), ContactFactory()),
            lambda row: Participant.objects.get(pk=row.pk).status == ParticipantStatus.REGISTERED,
        ),
        (
            "crm_core.view_contribution",
            "contribution",
            "crm_resend_receipt",
            dict,
            lambda: paid(ContactFactory()),
            lambda row: not mail.outbox and not SentMessage.objects.exists(),
        ),
    ],
)
def test_an_action_is_refused_without_its_permission(
    client, view_perm, model_name, action, data, make, unchanged
):
    # Everything the roles give to contact work, but not this action's permission.
    staff(client, view_perm, "crm_core.view_contact", "crm_core.view_group")
    row = make()
    url = action_url(model_name, action, [row.pk])
    listing = reverse(f"wagtailsnippets_crm_core_{model_name}:list")
    assert reverse("wagtail_bulk_action", args=["crm_core", model_name, action]) not in (
        client.get(listing).content.decode()
    )
    assert refused(client.get(url))
    assert refused(client.post(url, data()))
    assert unchanged(row)


def test_export_is_refused_without_view_contact(client):
    staff(client, "crm_core.view_participant")
    ada = ContactFactory(first_name="Ada", last_name="Lovelace")
    response = export(client, [ada.pk], "csv")
    assert refused(response)
    assert b"Lovelace" not in response.content


# -- bad selections: a message, never a 500 ---------------------------------------------


@pytest.mark.parametrize(
    "ids",
    [[], ["999999"], ["99999999999999999999999999"], ["-1"], ["abc"], ["all"]],
    ids=["none", "unknown", "huge", "negative", "not-a-number", "all"],
)
def test_a_selection_with_no_usable_row_gives_a_message_and_changes_nothing(client, ids):
    staff(client, "crm_core.view_contact", "crm_core.delete_contact")
    keep = ContactFactory()
    for method in (client.get, client.post):
        response = method(contacts_url("crm_trash", ids))
        assert response.status_code == 302
        assert response["Location"] == CONTACT_LIST
        assert "Nothing was changed." in message_texts(response)[-1]
    assert Contact.objects.filter(pk=keep.pk).exists()


def test_trashed_contacts_in_a_selection_are_left_out_and_counted(client):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    volunteers = GroupFactory(name="Volunteers", slug="volunteers")
    ada, gone = people(2)
    trash_contact(gone)
    url = contacts_url("crm_add_to_group", [ada.pk, gone.pk, "99999999999999999999"])
    page = client.get(url).content.decode()
    assert "2 selected rows could not be found" in page
    response = client.post(url, {"group": volunteers.pk})
    [text] = message_texts(response)
    assert text.startswith("1 contact added to Volunteers.")
    assert "2 selected rows could not be found" in text
    assert not GroupMembership.objects.filter(contact_id=gone.pk).exists()


def test_only_trashed_contacts_selected_gives_a_message(client):
    staff(client, "crm_core.view_contact", "crm_core.add_groupmembership")
    gone = ContactFactory()
    trash_contact(gone)
    response = client.get(contacts_url("crm_add_to_group", [gone.pk]))
    assert response.status_code == 302
    assert "None of the selected contacts could be found" in message_texts(response)[0]


def test_contributions_of_trashed_contacts_cannot_be_resent(client):
    staff(client, "crm_core.view_contribution", "crm_core.change_contribution")
    gift = paid(ContactFactory())
    trash_contact(gift.contact)
    response = client.post(action_url("contribution", "crm_resend_receipt", [gift.pk]))
    assert response.status_code == 302
    assert not mail.outbox
    assert Contribution.objects.filter(pk=gift.pk).exists()


def test_a_forged_selection_of_more_ids_than_a_request_may_carry_is_a_400(client):
    staff(client, "crm_core.view_contact", "crm_core.delete_contact")
    ada = ContactFactory()
    response = client.post(contacts_url("crm_trash", [ada.pk, *range(10**6, 10**6 + 2000)]))
    assert response.status_code == 400
    assert not Contact.all_objects.get(pk=ada.pk).is_deleted


def test_a_selection_of_tens_of_thousands_of_ids_is_cut_short_with_a_message(client, settings):
    # A site that lifts Django's cap on request fields still gets bounded
    # queries: at most 500 ids are looked up.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = None
    staff(client, "crm_core.view_contact", "crm_core.delete_contact")
    ada = ContactFactory()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(contacts_url("crm_trash", [ada.pk, *range(10**6, 10**6 + 40000)]))
    assert max(len(query["sql"]) for query in queries.captured_queries) < 20000
    [text] = message_texts(response)
    assert text.startswith("1 contact moved to the trash.")
    assert "40000 selected rows could not be found" in text
    assert Contact.all_objects.get(pk=ada.pk).is_deleted
