"""Who is filling in a form: personal signed links, logged-in visitors, strangers; renewals."""

from decimal import Decimal

import pytest
from django.test import override_settings
from wagtail.models import Page

from crm_core.models import Contact, Contribution, Membership
from crm_core.services.contributions import record_offline_payment
from crm_core.services.memberships import join
from crm_forms.identity import personal_form_url
from crm_wagtail.models import MembershipPage
from tests.factories import ContactFactory, MembershipTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

SUBMIT = "/crm/forms/submit/"


@pytest.fixture
def types(db):
    return {
        "individual": MembershipTypeFactory(
            name="Individual", fee=Decimal("30.00"), auto_renew="optional"
        ),
        "friend": MembershipTypeFactory(name="Friend", fee=Decimal("0"), auto_renew="no"),
    }


@pytest.fixture
def page(types):
    page = MembershipPage(
        title="Join",
        slug="join",
        body=[
            (
                "membership_form",
                {
                    "title": "Join or renew",
                    "membership_types": list(types.values()),
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


@pytest.fixture
def ada(db):
    return ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@example.org"])


def hidden(html, name):
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def post_form(client, url, membership_type, **data):
    html = client.get(url).content.decode()
    posted = {
        "placement": hidden(html, "placement"),
        "token": hidden(html, "token"),
        "membership_type": str(membership_type.pk),
        "payment_method": "offline",
        **data,
    }
    if 'name="who" value="' in html:
        posted["who"] = hidden(html, "who")
    return client.post(SUBMIT, posted)


# -- a personal link --------------------------------------------------------------------------


def test_a_personal_link_shows_who_the_form_is_for_instead_of_asking(client, page, ada):
    html = client.get(personal_form_url(page.url, ada)).content.decode()
    assert "You are filling this in as <strong>Ada Lovelace</strong> (ada@example.org)." in html
    assert 'type="hidden" name="email"' in html
    assert 'type="email"' not in html
    assert f'<a href="{page.url}">Not you?</a>' in html


def test_a_personal_link_submits_for_its_contact_whatever_names_are_posted(
    client, page, ada, types
):
    response = post_form(
        client,
        personal_form_url(page.url, ada),
        types["individual"],
        first_name="Mallory",
        last_name="Evil",
        email="mallory@example.org",
    )
    assert response.status_code == 302
    assert Contact.objects.count() == 1
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name) == ("Ada", "Lovelace")
    assert Membership.objects.get().contact == ada
    assert Contribution.objects.get().contact == ada


@pytest.mark.parametrize(
    "token",
    ["forged", "x" * 600],
    ids=["forged", "huge"],
)
def test_a_bad_link_gives_the_strangers_form_and_reveals_nothing(client, page, ada, token):
    html = client.get(f"{page.url}?crm={token}").content.decode()
    assert "Ada" not in html and "ada@example.org" not in html
    assert 'type="email"' in html


def test_an_expired_link_gives_the_strangers_form(client, page, ada):
    url = personal_form_url(page.url, ada)
    with override_settings(CRM={"CONTACT_LINK_MAX_AGE": -1}):
        html = client.get(url).content.decode()
    assert "Ada" not in html
    assert 'type="email"' in html


def test_a_link_made_for_another_purpose_does_not_identify(client, page, ada):
    from crm_core.links import make_contact_token

    html = client.get(f"{page.url}?crm={make_contact_token(ada, 'unsubscribe')}").content.decode()
    assert "Ada" not in html


def test_a_forged_who_field_on_submission_falls_back_to_matching(client, page, ada, types):
    response = post_form(
        client,
        page.url,
        types["individual"],
        who="forged",
        first_name="Bob",
        last_name="Babbage",
        email="bob@example.org",
    )
    assert response.status_code == 302
    assert Membership.objects.get().contact.first_name == "Bob"


# -- logged in ---------------------------------------------------------------------------------


def test_a_logged_in_visitor_with_a_contact_is_identified(client, page, ada, types):
    client.force_login(UserFactory(email="ADA@example.org"))
    html = client.get(page.url).content.decode()
    assert "You are filling this in as <strong>Ada Lovelace</strong>" in html
    assert "Not you?" not in html  # logged in: the login says who
    post_form(client, page.url, types["individual"])
    assert Membership.objects.get().contact == ada


def test_a_logged_in_visitor_without_a_contact_gets_their_account_details_filled_in(client, page):
    client.force_login(UserFactory(first_name="Grace", last_name="Hopper", email="g@example.org"))
    html = client.get(page.url).content.decode()
    assert 'value="Grace"' in html and 'value="g@example.org"' in html
    assert "You are filling this in as" not in html


def test_an_email_two_contacts_share_identifies_no_one(client, page, ada):
    ContactFactory(first_name="Other", last_name="Ada", emails=["ada@example.org"])
    client.force_login(UserFactory(email="ada@example.org"))
    html = client.get(page.url).content.decode()
    assert "You are filling this in as" not in html


def test_a_stranger_typing_a_known_email_sees_nothing_stored_about_them(client, page, ada, types):
    join(ada, types["friend"])
    response = post_form(
        client,
        page.url,
        types["individual"],
        first_name="Someone",
        last_name="Else",
        email="ada@example.org",
    )
    thanks = client.get(response["Location"]).content.decode()
    assert "Lovelace" not in thanks and "Friend" not in thanks


# -- renewing through a personal link ----------------------------------------------------------


def test_a_member_renews_through_their_link_and_payment_extends_the_same_membership(
    client, page, ada, types
):
    membership = join(ada, types["individual"])
    end = membership.end_date
    url = personal_form_url(page.url, ada)
    html = client.get(url).content.decode()
    assert "Renew Individual: 30.00 GBP (yours ends on" in html
    response = post_form(client, url, types["individual"])
    assert response.status_code == 302
    assert Membership.objects.count() == 1
    contribution = Contribution.objects.get()
    assert contribution.line_items.get().membership == membership
    thanks = client.get(response["Location"]).content.decode()
    assert "Your renewal is recorded; your membership is extended when your payment" in thanks

    record_offline_payment(contribution, payment_method="cheque")
    membership.refresh_from_db()
    assert membership.end_date > end
    assert membership.end_date.year == end.year + 1


def test_a_free_membership_is_renewed_at_once(client, page, ada, types):
    membership = join(ada, types["friend"])
    end = membership.end_date
    response = post_form(client, personal_form_url(page.url, ada), types["friend"])
    membership.refresh_from_db()
    assert membership.end_date > end
    assert not Contribution.objects.exists()
    thanks = client.get(response["Location"]).content.decode()
    assert "Your Friend membership is renewed until" in thanks


def test_a_type_not_renewable_online_is_joined_anew_not_renewed(client, page, ada, types):
    types["individual"].is_renewable_online = False
    types["individual"].save()
    join(ada, types["individual"])
    html = client.get(personal_form_url(page.url, ada)).content.decode()
    assert "Renew Individual" not in html


def test_a_cancelled_membership_is_not_offered_for_renewal(client, page, ada, types):
    from crm_core.services.memberships import cancel

    cancel(join(ada, types["individual"]))
    html = client.get(personal_form_url(page.url, ada)).content.decode()
    assert "Renew Individual" not in html
