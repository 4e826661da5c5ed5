"""Editors change the wording of transactional messages in the admin; blank is the shipped text."""

import logging

import pytest
from django.core import mail
from django.urls import reverse

from crm_core.models import MessageKind, MessageWording
from crm_core.services.memberships import join
from crm_core.services.messages import (
    check_wording,
    default_wording,
    render_message,
    sample_context,
    send_membership_confirmation,
)
from tests.conftest import grant
from tests.factories import ContactFactory, MembershipTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = "wagtailsnippets_crm_core_messagewording:list"
EDIT = "wagtailsnippets_crm_core_messagewording:edit"
ADD = "wagtailsnippets_crm_core_messagewording:add"
DELETE = "wagtailsnippets_crm_core_messagewording:delete"
INSPECT = "wagtailsnippets_crm_core_messagewording:inspect"


def wording(kind):
    return MessageWording.objects.get(kind=kind)


def welcome():
    contact = ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@example.org"])
    membership = join(contact, MembershipTypeFactory(name="Friends"))
    send_membership_confirmation(membership.pk)
    return mail.outbox[-1]


def test_every_message_has_a_row_and_a_shipped_wording_that_renders():
    assert set(MessageWording.objects.values_list("kind", flat=True)) == set(MessageKind.values)
    for kind in MessageKind.values:
        subject, body = render_message(kind, sample_context(kind))
        assert subject and "\n" not in subject
        assert "Dear Ada," in body, kind


def test_staff_list_and_edit_form_starts_from_the_shipped_wording(client, superuser):
    client.force_login(superuser)
    listing = client.get(reverse(LIST))
    assert listing.status_code == 200
    assert "Membership renewal reminder (before the end)" in listing.content.decode()
    page = client.get(reverse(EDIT, args=[wording("membership").pk])).content.decode()
    assert "Welcome to {{ site }}: you are now a member" in page
    assert "{{ membership_type }}: the membership type" in page  # the tokens are listed


def test_edited_wording_is_sent(client, superuser):
    client.force_login(superuser)
    response = client.post(
        reverse(EDIT, args=[wording("membership").pk]),
        {
            "subject": "Hello {{ first_name }}, welcome aboard",
            "body": "Hi {{ first_name }}!\nYou joined as {{ membership_type }} "
            "until {{ end_date|date:'Y' }}.",
        },
    )
    assert response.status_code == 302
    assert wording("membership").is_custom
    message = welcome()
    assert message.subject == "Hello Ada, welcome aboard"
    assert message.body.startswith("Hi Ada!\nYou joined as Friends until ")


def test_saving_the_shipped_wording_unchanged_keeps_it_shipped(client, superuser):
    client.force_login(superuser)
    subject, body = default_wording("receipt")
    response = client.post(
        reverse(EDIT, args=[wording("receipt").pk]), {"subject": subject, "body": body}
    )
    assert response.status_code == 302
    row = wording("receipt")
    assert (row.subject, row.body, row.is_custom) == ("", "", False)


def test_a_broken_template_is_refused_with_a_message_and_saves_nothing(client, superuser):
    client.force_login(superuser)
    url = reverse(EDIT, args=[wording("membership").pk])
    response = client.post(url, {"subject": "Hi {% if %}", "body": "Hello {{ first_name }"})
    assert response.status_code == 200
    assert "This text has an error" in response.content.decode()
    assert not wording("membership").is_custom


def test_check_wording_renders_with_sample_values():
    assert check_wording("receipt", "Thanks {{ first_name }}", "{{ total }}") == {}
    errors = check_wording("receipt", "{% for %}", "{{ total|no_such_filter }}")
    assert set(errors) == {"subject", "body"}


def test_a_wording_that_fails_when_sent_falls_back_to_the_shipped_one(caplog):
    MessageWording.objects.filter(kind="membership").update(
        subject="{% if %}", body="broken {% endfor %}"
    )
    with caplog.at_level(logging.ERROR, logger="crm.messages"):
        message = welcome()
    assert message.subject == "Welcome: your Friends membership"
    assert "failed to render" in caplog.text


def test_a_missing_row_uses_the_shipped_wording():
    MessageWording.objects.all().delete()
    assert welcome().subject == "Welcome: your Friends membership"


def test_values_are_plain_so_a_template_cannot_reach_the_database():
    MessageWording.objects.filter(kind="membership").update(
        body="{{ contact.user.password }}{{ membership.contact.emails }}|{{ first_name }}"
    )
    assert welcome().body == "|Ada"


def test_the_inspect_view_shows_a_sample_escaped(client, superuser):
    MessageWording.objects.filter(kind="membership").update(body="<script>x()</script>")
    client.force_login(superuser)
    page = client.get(reverse(INSPECT, args=[wording("membership").pk])).content.decode()
    assert "&lt;script&gt;x()&lt;/script&gt;" in page
    assert "<script>x()</script>" not in page


def test_no_one_adds_or_deletes_rows(client, superuser):
    client.force_login(superuser)
    assert client.get(reverse(ADD)).status_code in (302, 403)
    response = client.post(reverse(DELETE, args=[wording("receipt").pk]))
    assert response.status_code in (302, 403)
    assert MessageWording.objects.filter(kind="receipt").exists()


def test_permissions_view_only_and_none(client):
    viewer = grant(UserFactory(), "wagtailadmin.access_admin", "crm_core.view_messagewording")
    client.force_login(viewer)
    assert client.get(reverse(LIST)).status_code == 200
    url = reverse(EDIT, args=[wording("membership").pk])
    response = client.post(url, {"subject": "Hacked", "body": "Hacked"})
    assert response.status_code in (302, 403)
    assert not wording("membership").is_custom
    nobody = grant(UserFactory(), "wagtailadmin.access_admin")
    client.force_login(nobody)
    assert client.get(reverse(LIST)).status_code in (302, 403)
