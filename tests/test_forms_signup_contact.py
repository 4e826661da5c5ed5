"""Newsletter signup (double opt-in) and the contact form, on a Wagtail form page."""

import re

import pytest
from django.core import mail
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.models import Page

from crm_core.models import Activity, ConsentRecord, Contact, GroupMembership
from crm_core.services.contacts import trash_contact
from crm_core.services.merge import merge_contacts
from crm_forms.models import Submission
from crm_wagtail.blocks import ContactFormBlock, SignupFormBlock
from crm_wagtail.models import FormPage
from tests.factories import ContactFactory, GroupFactory, UserFactory

pytestmark = pytest.mark.django_db

SUBMIT = "/crm/forms/submit/"
WORDING = "Yes, email me the newsletter."


@pytest.fixture
def groups(db):
    return GroupFactory(name="Newsletter"), GroupFactory(name="Volunteering news")


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", email="sam@example.org", is_staff=True)


@pytest.fixture
def page(groups, staff):
    page = FormPage(
        title="Stay in touch",
        slug="stay-in-touch",
        body=[
            (
                "signup_form",
                {
                    "title": "Newsletter",
                    "groups": list(groups),
                    "double_opt_in": True,
                    "consent": [{"purpose": "newsletter", "wording": WORDING, "required": True}],
                },
            ),
            (
                "contact_form",
                {
                    "title": "Write to us",
                    "subject": "Website enquiry",
                    "assignee": str(staff.pk),
                    "notify_emails": ["office@example.org"],
                    "consent": [],
                },
            ),
        ],
    )
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def hidden_fields(client, page, form_index):
    html = client.get(page.url).content.decode()
    forms = html.split("<form ")[1:]
    fields = {}
    for name in ("placement", "token"):
        found = re.search(f'name="{name}" value="([^"]+)"', forms[form_index])
        fields[name] = found.group(1)
    return fields


def sign_up(client, page, **data):
    posted = {
        **hidden_fields(client, page, 0),
        "email": "zoe@example.org",
        "first_name": "Zoë",
        "groups": [str(GroupFactory._meta.model.objects.get(name="Newsletter").pk)],
        "consent_0": "on",
        **data,
    }
    return client.post(SUBMIT, posted)


def write(client, page, **data):
    posted = {
        **hidden_fields(client, page, 1),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.org",
        "message": "Can I volunteer on Saturdays?",
        **data,
    }
    return client.post(SUBMIT, posted)


def test_a_signup_joins_nothing_until_the_emailed_link_is_followed(
    client, page, groups, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_up(client, page)
    assert response.status_code == 302
    assert "we have sent you an email" in client.get(response["Location"]).content.decode()
    assert not GroupMembership.objects.exists()
    assert not ConsentRecord.objects.exists()
    [message] = mail.outbox
    assert message.to == ["zoe@example.org"]
    link = re.search(r"http://testserver(/crm/forms/confirm/\S+/)", message.body).group(1)

    confirmed = client.get(link)
    assert "Subscription confirmed" in confirmed.content.decode()
    contact = Contact.objects.get()
    assert [m.group for m in GroupMembership.objects.all()] == [groups[0]]
    consent = ConsentRecord.objects.get()
    assert (consent.contact, consent.wording, consent.granted) == (contact, WORDING, True)

    client.get(link)
    assert GroupMembership.objects.count() == 1, "following the link again changes nothing"
    assert ConsentRecord.objects.count() == 1


def confirmation_link(client, page, django_capture_on_commit_callbacks, **data):
    """Sign up and return the path of the link in the confirmation email."""
    with django_capture_on_commit_callbacks(execute=True):
        assert sign_up(client, page, **data).status_code == 302
    return re.search(r"http://testserver(/crm/forms/confirm/\S+/)", mail.outbox[-1].body).group(1)


def test_a_group_deactivated_before_the_link_is_followed_is_skipped(
    client, page, groups, django_capture_on_commit_callbacks
):
    link = confirmation_link(
        client, page, django_capture_on_commit_callbacks, groups=[str(g.pk) for g in groups]
    )
    groups[1].is_active = False
    groups[1].save()
    response = client.get(link)
    assert response.status_code == 200
    assert "Subscription confirmed" in response.content.decode()
    assert [m.group for m in GroupMembership.objects.all()] == [groups[0]]
    assert ConsentRecord.objects.count() == 1


def test_a_contact_trashed_before_the_link_is_followed_gets_a_clear_page(
    client, page, django_capture_on_commit_callbacks
):
    link = confirmation_link(client, page, django_capture_on_commit_callbacks)
    trash_contact(Contact.objects.get())
    response = client.get(link)
    assert response.status_code == 409
    assert "This subscription can no longer be confirmed." in response.content.decode()
    assert not GroupMembership.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_a_contact_merged_before_the_link_is_followed_confirms_for_the_contact_kept(
    client, page, groups, django_capture_on_commit_callbacks
):
    link = confirmation_link(client, page, django_capture_on_commit_callbacks)
    kept = ContactFactory(first_name="Zoë", emails=["zoe.kept@example.org"])
    signed_up = Contact.objects.get(emails__email="zoe@example.org")
    merge_contacts(kept, signed_up)
    response = client.get(link)
    assert "Subscription confirmed" in response.content.decode()
    membership = GroupMembership.objects.get()
    assert (membership.contact, membership.group) == (kept, groups[0])
    assert ConsentRecord.objects.get().contact == kept


def test_a_deactivated_group_is_no_longer_offered_and_the_others_still_work(client, groups, staff):
    page = FormPage(
        title="Join our lists",
        slug="join-our-lists",
        body=[
            (
                "signup_form",
                {"title": "Lists", "groups": list(groups), "double_opt_in": False, "consent": []},
            )
        ],
    )
    Page.objects.get(depth=2).add_child(instance=page)
    page.save_revision().publish()
    groups[1].is_active = False
    groups[1].save()
    assert "Volunteering news" not in client.get(page.url).content.decode()
    response = sign_up(client, page, consent_0="")
    assert response.status_code == 302
    assert [m.group for m in GroupMembership.objects.all()] == [groups[0]]


def test_a_forged_confirmation_link_is_refused(client, page):
    response = client.get("/crm/forms/confirm/bm9wZQ:1abc:forged/")
    assert response.status_code == 404
    assert not GroupMembership.objects.exists()


def test_a_required_consent_must_be_ticked(client, page):
    response = sign_up(client, page, consent_0="")
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Submission.objects.exists()


def test_a_group_not_offered_cannot_be_joined(client, page):
    other = GroupFactory(name="Trustees")
    response = sign_up(client, page, groups=[str(other.pk)])
    assert response.status_code == 400
    assert not Submission.objects.exists()


def test_a_message_lands_on_the_timeline_for_the_staff_member_who_is_told(
    client, page, staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = write(client, page, message="<b>Hello</b> — can I help?")
    assert response.status_code == 302
    activity = Activity.objects.get(activity_type="form_submission")
    assert activity.assignee == staff
    assert activity.status == "scheduled"
    assert activity.subject == "Website enquiry"
    assert "can I help?" in activity.details and "<script" not in activity.details
    [message] = mail.outbox
    assert sorted(message.to) == ["office@example.org", "sam@example.org"]
    assert "Ada Lovelace <ada@example.org>" in message.body
    assert "can I help" not in message.body, "the message stays in the CRM"


def test_a_message_that_is_too_long_or_missing_is_refused(client, page):
    assert write(client, page, message="").status_code == 400
    assert write(client, page, message="x" * 5001).status_code == 400
    assert not Activity.objects.filter(activity_type="form_submission").exists()


def test_editors_must_offer_a_group_and_name_real_staff(staff):
    block = SignupFormBlock()
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(block.to_python({"title": "x", "groups": [], "double_opt_in": True}))
    assert "groups" in info.value.block_errors
    contact = ContactFormBlock()
    value = contact.to_python(
        {"title": "x", "subject": "s", "assignee": "", "notify_emails": ["not an email"]}
    )
    with pytest.raises(StructBlockValidationError):
        contact.clean(value)


def test_editors_cannot_put_markup_in_a_contact_forms_subject(staff):
    block = ContactFormBlock()
    value = block.to_python(
        {"title": "x", "subject": "<b>Urgent</b> enquiry", "assignee": "", "notify_emails": []}
    )
    with pytest.raises(StructBlockValidationError) as info:
        block.clean(value)
    assert "subject" in info.value.block_errors
