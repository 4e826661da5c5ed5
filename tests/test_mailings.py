"""Bulk mailings: who gets one, what it says, and the unsubscribe page."""

import datetime
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import override_settings

from crm_core.models import (
    ConsentRecord,
    Mailing,
    MailingRecipient,
    MailingStatus,
    MessageTemplate,
    RecipientStatus,
)
from crm_core.services import mailings as service
from crm_core.services.consent import record_consent
from crm_core.services.groups import add_to_group, remove_from_group
from crm_core.services.memberships import join
from crm_core.tasks import send_mailing_task
from tests.factories import ContactFactory, GroupFactory, MembershipTypeFactory, TagFactory

pytestmark = pytest.mark.django_db

NO_RATE_LIMIT = {"MAILING_RATE_LIMIT": 0}


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.CRM = {**getattr(settings, "CRM", {}), **NO_RATE_LIMIT}


@pytest.fixture
def group():
    return GroupFactory()


def member(group, **kwargs):
    contact = ContactFactory(**kwargs)
    add_to_group(contact, group)
    return contact


def make_mailing(*groups, exclude=(), **kwargs):
    values = {
        "name": "Spring news",
        "subject": "Hello {{ first_name }}",
        "body_html": (
            "<p>Dear {{ display_name }},</p><p><a href='{{ unsubscribe_url }}'>Stop</a></p>"
        ),
    }
    values.update(kwargs)
    mailing = Mailing.objects.create(**values)
    mailing.include_groups.set(groups)
    mailing.exclude_groups.set(exclude)
    return mailing


def recipient_addresses(mailing):
    return sorted(
        mailing.recipients.filter(status=RecipientStatus.PENDING).values_list("email", flat=True)
    )


# -- who gets it --------------------------------------------------------------------------


def test_members_of_the_included_groups_are_recipients(group):
    ann = member(group, emails=["ann@example.org"])
    ContactFactory(emails=["outsider@example.org"])
    mailing = make_mailing(group)

    assert service.build_recipients(mailing) == 1
    assert recipient_addresses(mailing) == ["ann@example.org"]
    assert mailing.recipients.get().contact == ann


def test_members_of_an_excluded_group_are_left_out(group):
    member(group, emails=["ann@example.org"])
    staff = GroupFactory()
    bob = member(group, emails=["bob@example.org"])
    add_to_group(bob, staff)

    mailing = make_mailing(group, exclude=[staff])
    service.build_recipients(mailing)

    assert recipient_addresses(mailing) == ["ann@example.org"]


def test_contacts_who_left_the_group_are_left_out(group):
    ann = member(group, emails=["ann@example.org"])
    remove_from_group(ann, group)

    assert service.build_recipients(make_mailing(group)) == 0


def test_deceased_contacts_are_left_out(group):
    member(group, emails=["gone@example.org"], is_deceased=True)

    assert service.build_recipients(make_mailing(group)) == 0


def test_do_not_email_contacts_are_left_out(group):
    member(group, emails=["dne@example.org"], do_not_email=True)

    assert service.build_recipients(make_mailing(group)) == 0


def test_contacts_opted_out_of_bulk_mail_are_left_out(group):
    member(group, emails=["optout@example.org"], is_opt_out=True)

    assert service.build_recipients(make_mailing(group)) == 0


def test_contacts_whose_only_address_bounced_are_left_out(group):
    member(group, emails=[{"email": "bounced@example.org", "on_hold": True}])

    assert service.build_recipients(make_mailing(group)) == 0


def test_a_bounced_primary_address_gives_way_to_another_address(group):
    member(
        group,
        emails=[
            {"email": "old@example.org", "is_primary": True, "on_hold": True},
            {"email": "new@example.org"},
        ],
    )
    mailing = make_mailing(group)
    service.build_recipients(mailing)

    assert recipient_addresses(mailing) == ["new@example.org"]


def test_the_primary_address_is_preferred(group):
    member(
        group,
        emails=[{"email": "work@example.org"}, {"email": "home@example.org", "is_primary": True}],
    )
    mailing = make_mailing(group)
    service.build_recipients(mailing)

    assert recipient_addresses(mailing) == ["home@example.org"]


def test_a_mailing_with_a_purpose_needs_granted_consent(group):
    granted = member(group, emails=["yes@example.org"])
    record_consent(granted, purpose="newsletter", channel="email", granted=True)
    withdrawn = member(group, emails=["no@example.org"])
    record_consent(withdrawn, purpose="newsletter", channel="email", granted=True)
    record_consent(withdrawn, purpose="newsletter", channel="email", granted=False)
    member(group, emails=["never-asked@example.org"])

    mailing = make_mailing(group, consent_purpose="newsletter")
    service.build_recipients(mailing)

    assert recipient_addresses(mailing) == ["yes@example.org"]


def test_a_mailing_without_a_purpose_skips_who_unsubscribed_from_mailings(group):
    quitter = member(group, emails=["quit@example.org"])
    record_consent(quitter, purpose=service.BULK_PURPOSE, channel="email", granted=False)
    member(group, emails=["stays@example.org"])

    mailing = make_mailing(group)
    service.build_recipients(mailing)

    assert recipient_addresses(mailing) == ["stays@example.org"]


def test_one_mail_per_address_across_contacts_and_case(group):
    member(group, emails=["Shared@Example.org"])
    member(group, emails=["shared@example.org"])
    other = GroupFactory()
    member(other, emails=["SHARED@example.ORG"])

    mailing = make_mailing(group, other)
    service.build_recipients(mailing)

    assert mailing.recipients.count() == 1


def test_building_recipients_twice_changes_nothing(group):
    member(group, emails=["ann@example.org"])
    member(group, emails=["bob@example.org"])
    mailing = make_mailing(group)

    service.build_recipients(mailing)
    first = list(mailing.recipients.values_list("pk", "email", "status"))
    service.build_recipients(mailing)

    assert list(mailing.recipients.values_list("pk", "email", "status")) == first
    mailing.refresh_from_db()
    assert mailing.recipients_count == 2


def test_rebuilding_adds_newcomers_and_skips_who_left(group):
    ann = member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    service.build_recipients(mailing)
    remove_from_group(ann, group)
    member(group, emails=["bob@example.org"])

    service.build_recipients(mailing)

    assert recipient_addresses(mailing) == ["bob@example.org"]


# -- what it says -------------------------------------------------------------------------


def test_tokens_are_rendered_and_html_is_escaped(group):
    contact = member(group, first_name="<b>Ann</b> & co", last_name="O'Neil")
    # Names are stored as plain text (tags stripped); put markup back in as a
    # plain value to prove the HTML body escapes what it shows.
    contact.first_name = "Ann <script>"
    mailing = make_mailing(
        group,
        subject="News for {{ first_name }} & friends",
        body_html="<p>{{ first_name }} {{ last_name }}</p>",
        body_text="Hi {{ first_name }}",
    )

    rendered = service.render_for_contact(mailing, contact)

    assert rendered.subject == "News for Ann <script> & friends"
    assert "<p>Ann &lt;script&gt; O&#x27;Neil</p>" in rendered.html
    assert rendered.text == "Hi Ann <script>"


def test_the_plain_text_is_made_from_the_html_when_blank(group):
    contact = member(group, first_name="Ann")
    mailing = make_mailing(
        group,
        body_html="<h1>News</h1><p>Hello {{ first_name }},</p><p>See <a href='https://example.org/x'>this</a>.</p>",
    )

    text = service.render_for_contact(mailing, contact).text

    assert "News\n\nHello Ann," in text
    assert "this (https://example.org/x)" in text
    assert "<" not in text


def test_the_template_is_used_when_the_mailing_has_no_bodies(group):
    contact = member(group, first_name="Ann")
    template = MessageTemplate.objects.create(
        name="Plain", subject="From the template, {{ first_name }}", body_html="<p>T</p>"
    )
    mailing = make_mailing(group, template=template, subject="", body_html="")

    rendered = service.render_for_contact(mailing, contact)

    assert rendered.subject == "From the template, Ann"
    assert "<p>T</p>" in rendered.html


def test_membership_end_date_and_personal_links(group, settings):
    settings.CRM = {
        **settings.CRM,
        "SITE_BASE_URL": "https://site.example",
        "PERSONAL_LINK_PAGES": {"renew": "/join/", "update_details": "/me/?x=1"},
    }
    contact = member(group, first_name="Ann")
    membership = join(contact, MembershipTypeFactory(), join_date=datetime.date(2026, 1, 1))
    mailing = make_mailing(
        group,
        body_html=(
            "{{ membership_end_date|date:'Y-m-d' }}|{{ renew_url }}|"
            "{{ update_details_url }}|{{ manage_subscriptions_url }}|{{ unsubscribe_url }}"
        ),
    )

    end, renew, details, manage, unsubscribe = service.render_for_contact(
        mailing, contact
    ).html.split("|")

    assert end == membership.end_date.isoformat()
    assert renew.startswith("https://site.example/join/?crm=")
    assert details.startswith("https://site.example/me/?x=1&amp;crm=")
    assert manage == ""
    assert unsubscribe.startswith(f"https://site.example/crm/mailings/{mailing.pk}/unsubscribe/")


def test_personal_links_open_the_forms_as_the_contact(group, settings):
    from crm_forms import identity

    settings.CRM = {**settings.CRM, "PERSONAL_LINK_PAGES": {"renew": "/join/"}}
    contact = member(group)
    url = urlsplit(service.personal_link(contact, "renew"))
    token = parse_qs(url.query)[identity.QUERY_PARAMETER][0]

    from crm_core.links import read_contact_token

    assert read_contact_token(token, identity.LINK_PURPOSE) == contact


def test_a_template_with_an_error_is_refused():
    template = MessageTemplate(name="Bad", subject="Hi {% if %}", body_html="<p>x</p>")

    with pytest.raises(ValidationError) as excinfo:
        template.full_clean()

    assert "subject" in excinfo.value.message_dict


# -- sending ------------------------------------------------------------------------------


def test_send_now_sends_each_recipient_one_multipart_message_with_unsubscribe_headers(group):
    member(group, first_name="Ann", emails=["ann@example.org"])
    member(group, first_name="Bob", emails=["bob@example.org"])
    mailing = make_mailing(group, from_email="News <news@example.org>")

    service.send_mailing(mailing)
    send_mailing_task.enqueue(mailing.pk)

    assert sorted(m.to[0] for m in mail.outbox) == ["ann@example.org", "bob@example.org"]
    message = next(m for m in mail.outbox if m.to == ["ann@example.org"])
    assert message.subject == "Hello Ann"
    assert message.from_email == "News <news@example.org>"
    assert message.alternatives[0].mimetype == "text/html"
    assert "Dear Ann" in message.body
    unsubscribe = message.extra_headers["List-Unsubscribe"]
    assert re.fullmatch(r"<http://testserver/crm/mailings/\d+/unsubscribe/[^>]+/>", unsubscribe)
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mailing.refresh_from_db()
    assert (mailing.status, mailing.sent_count, mailing.recipients_count) == ("sent", 2, 2)


@override_settings(CRM={"MAILING_RATE_LIMIT": 0, "MAILING_UNSUBSCRIBE_MAILTO": "out@example.org"})
def test_the_mailto_unsubscribe_is_added_when_configured(group):
    member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    service.send_mailing(mailing)
    send_mailing_task.enqueue(mailing.pk)

    header = mail.outbox[0].extra_headers["List-Unsubscribe"]
    assert header.endswith(", <mailto:out@example.org?subject=unsubscribe>")


def test_sending_again_sends_nothing_twice(group):
    member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    service.send_mailing(mailing)
    send_mailing_task.enqueue(mailing.pk)
    send_mailing_task.enqueue(mailing.pk)

    assert len(mail.outbox) == 1
    with pytest.raises(service.MailingNotSendable):
        service.send_mailing(mailing)


def test_who_unsubscribes_after_the_recipients_were_built_is_skipped(group):
    ann = member(group, emails=["ann@example.org"])
    member(group, emails=["bob@example.org"])
    mailing = make_mailing(group)
    service.send_mailing(mailing)
    service.unsubscribe(ann, mailing)

    send_mailing_task.enqueue(mailing.pk)

    assert [m.to for m in mail.outbox] == [["bob@example.org"]]
    assert mailing.recipients.get(contact=ann).status == RecipientStatus.SKIPPED


def test_a_refused_address_is_failed_and_the_rest_go_out(group, monkeypatch):
    import smtplib

    from django.core.mail.backends.locmem import EmailBackend

    member(group, emails=["ann@example.org"])
    member(group, emails=["refused@example.org"])
    original = EmailBackend.send_messages

    def refuse_some(self, messages):
        if messages[0].to == ["refused@example.org"]:
            raise smtplib.SMTPRecipientsRefused({"refused@example.org": (550, b"No such user")})
        return original(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", refuse_some)
    mailing = make_mailing(group)
    service.send_mailing(mailing)
    send_mailing_task.enqueue(mailing.pk)

    failed = mailing.recipients.get(email="refused@example.org")
    assert failed.status == RecipientStatus.FAILED
    assert "No such user" in failed.error
    mailing.refresh_from_db()
    assert (mailing.status, mailing.sent_count, mailing.failed_count) == ("sent", 1, 1)


def test_a_mailing_nobody_can_receive_is_not_sent(group):
    member(group, emails=["dne@example.org"], do_not_email=True)
    mailing = make_mailing(group)

    with pytest.raises(service.MailingNotSendable):
        service.send_mailing(mailing)
    mailing.refresh_from_db()
    assert mailing.status == MailingStatus.DRAFT


def test_a_cancelled_mailing_stops_sending(group):
    member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    service.send_mailing(mailing)
    service.cancel_mailing(mailing)

    send_mailing_task.enqueue(mailing.pk)

    assert mail.outbox == []
    assert mailing.recipients.get().status == RecipientStatus.SKIPPED


def test_send_test_goes_only_to_the_given_address(group):
    contact = member(group, first_name="Ann", emails=["ann@example.org"])
    mailing = make_mailing(group)

    service.send_test(mailing, contact, "editor@example.org")

    assert [m.to for m in mail.outbox] == [["editor@example.org"]]
    assert mail.outbox[0].subject == "[Test] Hello Ann"
    assert not MailingRecipient.objects.exists()


# -- unsubscribe page ---------------------------------------------------------------------


def unsubscribe_path(mailing, contact):
    return service.unsubscribe_url(mailing, contact).removeprefix("http://testserver")


def test_the_unsubscribe_page_asks_before_unsubscribing(client, group):
    contact = member(group)
    mailing = make_mailing(group, name="Spring news")

    response = client.get(unsubscribe_path(mailing, contact))

    assert response.status_code == 200
    assert b'<form method="post"' in response.content
    assert "Spring news" in response.content.decode()
    assert not ConsentRecord.objects.filter(contact=contact).exists()


def test_posting_the_unsubscribe_page_withdraws_email_consent_without_csrf(group):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    contact = member(group)
    mailing = make_mailing(group, consent_purpose="newsletter")

    response = client.post(unsubscribe_path(mailing, contact), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    record = ConsentRecord.objects.get(contact=contact)
    assert (record.purpose, record.channel, record.granted) == ("newsletter", "email", False)
    assert record.source_reference == f"mailing:{mailing.pk}"


def test_unsubscribing_twice_records_one_withdrawal(client, group):
    contact = member(group)
    mailing = make_mailing(group)
    path = unsubscribe_path(mailing, contact)

    client.post(path)
    response = client.post(path)

    assert response.status_code == 200
    assert ConsentRecord.objects.filter(contact=contact, granted=False).count() == 1


def test_an_unsubscribed_contact_gets_no_later_mailing(client, group):
    contact = member(group, emails=["ann@example.org"])
    client.post(unsubscribe_path(make_mailing(group), contact))

    assert service.build_recipients(make_mailing(group)) == 0


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_forged_unsubscribe_link_is_a_clear_400(client, group, method):
    contact = member(group)
    mailing = make_mailing(group)
    path = unsubscribe_path(mailing, contact)

    response = getattr(client, method)(path.replace("/unsubscribe/", "/unsubscribe/x"))

    assert response.status_code == 400
    assert "This link is not valid." in response.content.decode()
    assert not ConsentRecord.objects.exists()


def test_an_unsubscribe_link_for_another_mailing_is_refused(client, group):
    contact = member(group)
    first, second = make_mailing(group), make_mailing(group)
    path = unsubscribe_path(first, contact).replace(f"/{first.pk}/", f"/{second.pk}/")

    assert client.post(path).status_code == 400


def test_an_expired_unsubscribe_link_is_a_clear_400(client, group, settings):
    contact = member(group)
    mailing = make_mailing(group)
    path = unsubscribe_path(mailing, contact)
    settings.CRM = {**settings.CRM, "MAILING_UNSUBSCRIBE_MAX_AGE": -1}

    response = client.get(path)

    assert response.status_code == 400
    assert "expired" in response.content.decode()


def test_a_link_for_a_mailing_that_does_not_exist_is_a_400(client):
    assert client.get("/crm/mailings/999999/unsubscribe/abc/").status_code == 400


def test_form_link_constants_match_crm_forms():
    from crm_forms import identity

    assert service.FORM_LINK_PURPOSE == identity.LINK_PURPOSE
    assert service.FORM_LINK_PARAMETER == identity.QUERY_PARAMETER


# -- back office --------------------------------------------------------------------------

ADMIN = "wagtailsnippets_crm_core_mailing"


def staff(client, *perms):
    from tests.conftest import grant
    from tests.factories import UserFactory

    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


def test_send_now_needs_the_send_permission(client, group):
    from django.urls import reverse

    member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    staff(client, "crm_core.view_mailing", "crm_core.change_mailing")

    inspect = client.get(reverse(f"{ADMIN}:inspect", args=[mailing.pk])).content.decode()
    response = client.post(reverse(f"{ADMIN}:send_now", args=[mailing.pk]))

    assert "Send now" not in inspect
    assert response.status_code == 302 and response.url == reverse("wagtailadmin_home")
    assert mail.outbox == []


def test_send_now_from_the_admin_sends_and_shows_progress(
    client, group, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    staff(client, "crm_core.view_mailing", "crm_core.send_mailing")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse(f"{ADMIN}:send_now", args=[mailing.pk]))
    inspect = client.get(reverse(f"{ADMIN}:inspect", args=[mailing.pk])).content.decode()

    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["ann@example.org"]]
    assert "1 sent, 0 failed, 0 waiting, of 1 recipients" in inspect


def test_preview_shows_the_message_for_a_contact_in_a_sandboxed_frame(client, group):
    from django.urls import reverse

    contact = member(group, first_name="Ann")
    mailing = make_mailing(group, body_html="<p>Hi {{ first_name }}</p><script>x()</script>")
    staff(client, "crm_core.view_mailing")

    html = client.post(
        reverse(f"{ADMIN}:preview", args=[mailing.pk]), {"contact": contact.pk}
    ).content.decode()

    assert "Hello Ann" in html
    assert 'sandbox srcdoc="&lt;p&gt;Hi Ann&lt;/p&gt;&lt;script&gt;' in html


def test_preview_escapes_the_plain_text_part(client, group):
    from django.urls import reverse

    contact = member(group, first_name="Ann")
    contact.first_name = "<img src=x onerror=alert(1)>"  # past the service, as an import might
    contact.save()
    mailing = make_mailing(group, body_text="Hi {{ first_name }}")
    staff(client, "crm_core.view_mailing")

    html = client.post(
        reverse(f"{ADMIN}:preview", args=[mailing.pk]), {"contact": contact.pk}
    ).content.decode()

    assert "<pre>Hi &lt;img src=x onerror=alert(1)&gt;</pre>" in html
    assert "<img src=x" not in html


def test_a_sent_mailing_cannot_be_edited(client, group):
    from django.urls import reverse

    member(group, emails=["ann@example.org"])
    mailing = make_mailing(group)
    service.send_mailing(mailing)
    staff(client, "crm_core.view_mailing", "crm_core.change_mailing")

    response = client.get(reverse(f"{ADMIN}:edit", args=[mailing.pk]))

    assert response.status_code == 302
    assert response.url == reverse(f"{ADMIN}:inspect", args=[mailing.pk])


def test_a_template_in_use_is_not_deleted_and_says_why(client, group):
    from django.urls import reverse

    template = MessageTemplate.objects.create(name="T", subject="S", body_html="<p>B</p>")
    make_mailing(group, template=template)
    staff(client, "crm_core.delete_messagetemplate", "crm_core.view_messagetemplate")

    response = client.post(
        reverse("wagtailsnippets_crm_core_messagetemplate:delete", args=[template.pk]),
        follow=True,
    )

    assert response.status_code == 200
    assert "Mailings use this template" in response.content.decode()
    assert MessageTemplate.objects.filter(pk=template.pk).exists()


def test_staff_write_a_mailing_in_the_admin_and_are_its_author(client, group):
    from django.urls import reverse

    user = staff(client, "crm_core.add_mailing", "crm_core.view_mailing")
    add = reverse(f"{ADMIN}:add")

    assert client.get(add).status_code == 200
    response = client.post(
        add,
        {
            "name": "June news",
            "subject": "Hi {{ first_name }}",
            "body_html": "<p>News</p>",
            "include_groups": [group.pk],
        },
    )

    assert response.status_code == 302
    mailing = Mailing.objects.get(name="June news")
    assert response.url == reverse(f"{ADMIN}:inspect", args=[mailing.pk])
    assert mailing.created_by == user
    assert list(mailing.include_groups.all()) == [group]


def test_a_template_error_is_shown_next_to_the_field(client, group):
    from django.urls import reverse

    staff(client, "crm_core.add_mailing", "crm_core.view_mailing")
    response = client.post(
        reverse(f"{ADMIN}:add"),
        {"name": "Broken", "subject": "Hi {% if %}", "body_html": "<p>x</p>"},
    )

    assert response.status_code == 200
    assert "This template has an error" in response.content.decode()
    assert not Mailing.objects.exists()


# -- smart groups in a mailing's audience ---------------------------------------------------


def test_smart_groups_add_whoever_matches_when_the_mailing_is_built(group):
    from crm_core.models import SmartGroup

    tag = TagFactory(slug="volunteer")
    in_group = member(group, first_name="Ann", emails=["ann@example.org"])
    ContactFactory(first_name="Ben", emails=["ben@example.org"], tags=["volunteer"])
    ContactFactory(first_name="Cat", emails=["cat@example.org"])  # neither
    smart = SmartGroup.objects.create(name="Volunteers", slug="vol", criteria={"tags": [tag.pk]})
    mailing = make_mailing(group)
    mailing.include_smart_groups.set([smart])
    # matched after the smart group was saved: still in, since it is a live search
    ContactFactory(first_name="Dan", emails=["dan@example.org"], tags=["volunteer"])

    service.build_recipients(mailing)

    emails = set(mailing.recipients.values_list("email", flat=True))
    assert emails == {"ann@example.org", "ben@example.org", "dan@example.org"}
    assert in_group.pk in set(mailing.recipients.values_list("contact_id", flat=True))


def test_excluded_smart_groups_leave_their_matches_out(group):
    from crm_core.models import SmartGroup

    tag = TagFactory(slug="staff")
    member(group, first_name="Ann", emails=["ann@example.org"])
    member(group, first_name="Ben", emails=["ben@example.org"], tags=["staff"])
    smart = SmartGroup.objects.create(name="Staff", slug="staff", criteria={"tags": [tag.pk]})
    mailing = make_mailing(group)
    mailing.exclude_smart_groups.set([smart])

    service.build_recipients(mailing)

    assert list(mailing.recipients.values_list("email", flat=True)) == ["ann@example.org"]


def test_a_smart_group_mailing_still_skips_who_said_no():
    from crm_core.models import SmartGroup

    tag = TagFactory(slug="donor")
    ContactFactory(first_name="Ann", emails=["ann@example.org"], tags=["donor"])
    ContactFactory(first_name="Ben", emails=["ben@example.org"], tags=["donor"], do_not_email=True)
    smart = SmartGroup.objects.create(name="Donors", slug="donors", criteria={"tags": [tag.pk]})
    mailing = make_mailing()
    mailing.include_smart_groups.set([smart])

    service.build_recipients(mailing)

    assert list(mailing.recipients.values_list("email", flat=True)) == ["ann@example.org"]


def test_staff_choose_smart_groups_in_the_mailing_form(client):
    from django.urls import reverse

    from crm_core.models import SmartGroup

    smart = SmartGroup.objects.create(
        name="Everyone in Leeds", slug="leeds", criteria={"city": "Leeds"}
    )
    staff(client, "crm_core.add_mailing", "crm_core.view_mailing")
    response = client.post(
        reverse(f"{ADMIN}:add"),
        {
            "name": "Leeds news",
            "subject": "Hi",
            "body_html": "<p>News</p>",
            "include_smart_groups": [smart.pk],
        },
    )
    assert response.status_code == 302
    mailing = Mailing.objects.get(name="Leeds news")
    assert list(mailing.include_smart_groups.all()) == [smart]
    page = client.get(reverse(f"{ADMIN}:inspect", args=[mailing.pk])).content.decode()
    assert "Everyone in Leeds" in page
