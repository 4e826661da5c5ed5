""" "Merge with another contact" from a contact's summary: choose any contact, merge side by side.

No PossibleDuplicate row is needed; the merge itself is ``merge_contacts``.
"""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from crm_core.models import Contact, DuplicateStatus, MergeRecord, PossibleDuplicate
from crm_core.services.contacts import flag_possible_duplicate, trash_contact
from tests.conftest import grant
from tests.factories import ContactFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

SUMMARY_URL = "wagtailsnippets_crm_core_contact:inspect"


def choose_url(contact, query=None):
    url = reverse("crm_contact_merge", args=[contact.pk])
    return f"{url}?q={query}" if query is not None else url


def merge_url(pk, other_pk):
    return reverse("crm_contact_merge_review", args=[pk, other_pk])


def staff(client, *perms):
    user = grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)
    client.force_login(user)
    return user


@pytest.fixture
def merger(client):
    return staff(client, "crm_core.merge_contacts", "crm_core.view_contact")


@pytest.fixture
def ada(db):
    return ContactFactory(first_name="Ada", last_name="Lovelace", emails=["ada@example.org"])


@pytest.fixture
def augusta(db):
    return ContactFactory(
        first_name="Augusta", last_name="King", emails=["augusta@example.org"], job_title="Writer"
    )


def post_merge(client, url, keep="a", **choices):
    """POST the merge form as staff would: each differing field as offered, unless chosen."""
    form = client.get(url).context["form"]
    data = {name: field.initial or "a" for name, field in form.fields.items()}
    return client.post(url, {**data, **choices, "action": "merge", "keep": keep})


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_search_lists_matching_contacts_with_a_link_to_merge_each(client, merger, ada, augusta):
    response = client.get(choose_url(ada, "King"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Augusta King" in html
    assert merge_url(ada.pk, augusta.pk) in html


def test_search_by_id_email_finds_the_contact_and_never_the_contact_itself(
    client, merger, ada, augusta
):
    assert merge_url(ada.pk, augusta.pk) in client.get(choose_url(ada, augusta.pk)).content.decode()
    html = client.get(choose_url(ada, "augusta@example.org")).content.decode()
    assert merge_url(ada.pk, augusta.pk) in html
    html = client.get(choose_url(ada, "Lovelace")).content.decode()
    assert merge_url(ada.pk, ada.pk) not in html
    assert "No other contact of the same kind matches." in html


def test_search_leaves_out_trashed_contacts_and_other_kinds(client, merger, ada, augusta):
    trash_contact(augusta)
    OrganizationFactory(organization_name="King Foundation")
    html = client.get(choose_url(ada, "King")).content.decode()
    assert "No other contact of the same kind matches." in html


def test_merge_screen_shows_both_contacts_without_a_possible_duplicate_row(
    client, merger, ada, augusta
):
    response = client.get(merge_url(ada.pk, augusta.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ada Lovelace" in html and "Augusta King" in html
    assert 'value="merge"' in html
    assert 'value="not_duplicate"' not in html  # there is no pair to close
    assert not PossibleDuplicate.objects.exists()


def test_merging_two_chosen_contacts_keeps_the_first_and_returns_to_it(
    client, merger, ada, augusta
):
    response = post_merge(client, merge_url(ada.pk, augusta.pk), job_title="b")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response.url == reverse(SUMMARY_URL, args=[ada.pk])
    record = MergeRecord.objects.get()
    assert record.kept_contact == ada and record.removed_contact_ref == augusta.pk
    ada.refresh_from_db()
    assert ada.job_title == "Writer"
    assert Contact.all_objects.get(pk=augusta.pk).is_deleted


def test_merging_a_flagged_pair_from_here_closes_the_pair(client, merger, ada, augusta):
    pair = flag_possible_duplicate(ada, augusta, 80, ["email"])
    response = post_merge(client, merge_url(augusta.pk, ada.pk))
    assert response.status_code == 302
    assert response.url == reverse(SUMMARY_URL, args=[augusta.pk])
    pair.refresh_from_db()
    assert pair.status == DuplicateStatus.MERGED


def test_the_same_contact_twice_is_refused_with_a_message(client, merger, ada):
    response = client.get(merge_url(ada.pk, ada.pk), follow=True)
    assert response.redirect_chain[-1][0] == choose_url(ada)
    assert "cannot be merged with itself" in response.content.decode()
    response = client.post(merge_url(ada.pk, ada.pk), {"action": "merge", "keep": "a"})
    assert response.status_code == 302
    assert not MergeRecord.objects.exists()


def test_a_trashed_or_unknown_other_contact_is_refused_with_a_message(client, merger, ada, augusta):
    trash_contact(augusta)
    response = client.post(merge_url(ada.pk, augusta.pk), {"action": "merge", "keep": "a"})
    assert response.status_code == 302 and response.url == choose_url(ada)
    assert any("is in the trash" in m for m in messages_of(response))
    assert not MergeRecord.objects.exists()

    for unknown in (augusta.pk + 1000, 10**30):
        response = client.get(merge_url(ada.pk, unknown))
        assert response.status_code == 302 and response.url == choose_url(ada)
        assert any("There is no contact with id" in m for m in messages_of(response))


def test_a_trashed_or_unknown_starting_contact_is_not_found(client, merger, ada, augusta):
    trash_contact(ada)
    assert client.get(choose_url(ada)).status_code == 404
    assert client.get(merge_url(ada.pk, augusta.pk)).status_code == 404
    assert client.get(reverse("crm_contact_merge", args=[10**30])).status_code == 404
    assert client.get(merge_url(10**30, augusta.pk)).status_code == 404


def test_contacts_of_different_kinds_get_a_form_error(client, merger, ada):
    org = OrganizationFactory(organization_name="Analytical Engines Ltd")
    response = post_merge(client, merge_url(ada.pk, org.pk))
    assert response.status_code == 200
    assert "Only contacts of the same kind can be merged" in response.content.decode()
    assert not MergeRecord.objects.exists()


def test_choosing_and_merging_need_the_merge_permission(client, ada, augusta):
    staff(client, "crm_core.view_contact", "crm_core.change_contact")
    for url in (choose_url(ada, "King"), merge_url(ada.pk, augusta.pk)):
        response = client.get(url)
        assert response.status_code == 403 or response.url == reverse("wagtailadmin_home")
    response = client.post(merge_url(ada.pk, augusta.pk), {"action": "merge", "keep": "a"})
    assert response.status_code == 403 or response.url == reverse("wagtailadmin_home")
    assert not MergeRecord.objects.exists()


def test_the_summary_links_to_merge_with_another_contact(client, merger, ada):
    html = client.get(reverse(SUMMARY_URL, args=[ada.pk])).content.decode()
    assert choose_url(ada) in html
    assert "Merge with another contact" in html
