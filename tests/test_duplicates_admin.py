"""The duplicates queue and the review/merge page of the back office, through HTTP."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm_core.models import Contact, DuplicateStatus, MergeRecord, PossibleDuplicate
from crm_core.services.contacts import flag_possible_duplicate, trash_contact
from tests.conftest import grant
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "wagtailsnippets_crm_core_possibleduplicate:list"
REVIEW_URL = "crm_duplicates_review"
SCRIPT = "<script>alert(1)</script>"


def staff(*perms):
    return grant(UserFactory(is_staff=True), "wagtailadmin.access_admin", *perms)


@pytest.fixture
def merger(client):
    user = staff("crm_core.merge_contacts")
    client.force_login(user)
    return user


def make_pair(first_a="Ann", first_b="Anne", **extra_b):
    a = ContactFactory(first_name=first_a, last_name="Lee", emails=["ann@example.org"])
    b = ContactFactory(
        first_name=first_b, last_name="Lee", emails=["ann@example.org"], job_title="Librarian"
    )
    return a, b, flag_possible_duplicate(a, b, 100, ["email"])


def test_queue_lists_pairs_with_score_and_reasons(client, merger):
    make_pair()
    response = client.get(reverse(LIST_URL))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ann Lee ~ Anne Lee" in html
    assert "Same email address" in html
    assert reverse(REVIEW_URL, args=[PossibleDuplicate.objects.get().pk]) in html


def test_queue_and_review_refuse_staff_without_merge_permission(client):
    _, _, pair = make_pair()
    client.force_login(staff("crm_core.view_contact", "crm_core.change_contact"))
    # Wagtail answers PermissionDenied with a redirect to the dashboard.
    assert client.get(reverse(LIST_URL)).status_code in (302, 403)
    assert client.get(reverse(REVIEW_URL, args=[pair.pk])).status_code in (302, 403)
    response = client.post(reverse(REVIEW_URL, args=[pair.pk]), {"action": "merge", "keep": "a"})
    assert response.status_code in (302, 403)
    assert not MergeRecord.objects.exists()
    response = client.post(reverse(REVIEW_URL, args=[pair.pk]), {"action": "not_duplicate"})
    pair.refresh_from_db()
    assert pair.status == DuplicateStatus.OPEN


def test_change_and_delete_on_contacts_also_allow_merging(client):
    _, _, pair = make_pair()
    client.force_login(staff("crm_core.change_contact", "crm_core.delete_contact"))
    assert client.get(reverse(REVIEW_URL, args=[pair.pk])).status_code == 200


def test_queue_listing_runs_a_constant_number_of_queries(client, merger, django_assert_num_queries):
    def add_pairs(count):
        for n in range(count):
            a = ContactFactory(emails=[f"shared{n}@example.org"])
            b = ContactFactory(emails=[f"shared{n}@example.org"])
            flag_possible_duplicate(a, b, 100, ["email"])

    add_pairs(2)
    url = reverse(LIST_URL)
    client.get(url)
    with CaptureQueriesContext(connection) as two:
        assert client.get(url).status_code == 200
    add_pairs(12)
    with django_assert_num_queries(len(two.captured_queries)):
        assert client.get(url).status_code == 200


def test_review_shows_both_contacts_with_a_choice_for_differing_fields(client, merger):
    a, b, pair = make_pair()
    response = client.get(reverse(REVIEW_URL, args=[pair.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="first_name"' in html
    assert 'name="last_name"' not in html  # the same on both
    assert "Librarian" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_merge_from_the_review_page_takes_the_chosen_values(client, merger):
    a, b, pair = make_pair()
    response = client.post(
        reverse(REVIEW_URL, args=[pair.pk]),
        {"action": "merge", "keep": "a", "first_name": "b", "job_title": "b"},
    )
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.first_name, a.job_title) == ("Anne", "Librarian")
    assert Contact.all_objects.get(pk=b.pk).is_deleted
    record = MergeRecord.objects.get()
    assert record.merged_by == merger
    assert record.field_choices["first_name"] == "remove"
    pair.refresh_from_db()
    assert pair.status == DuplicateStatus.MERGED


def test_keeping_the_second_contact_merges_the_first_into_it(client, merger):
    a, b, pair = make_pair()
    client.post(
        reverse(REVIEW_URL, args=[pair.pk]),
        {"action": "merge", "keep": "b", "first_name": "b", "job_title": "b"},
    )
    assert Contact.all_objects.get(pk=a.pk).is_deleted
    assert MergeRecord.objects.get().kept_contact_ref == b.pk


def test_not_a_duplicate_closes_the_pair(client, merger):
    _, _, pair = make_pair()
    response = client.post(reverse(REVIEW_URL, args=[pair.pk]), {"action": "not_duplicate"})
    assert response.status_code == 302
    pair.refresh_from_db()
    assert pair.status == DuplicateStatus.NOT_DUPLICATE
    assert not MergeRecord.objects.exists()


def test_a_refused_merge_is_a_form_error_not_a_500(client, merger):
    a, b, pair = make_pair()
    trash_contact(b)
    response = client.post(
        reverse(REVIEW_URL, args=[pair.pk]),
        {"action": "merge", "keep": "a", "first_name": "a", "job_title": "a"},
    )
    assert response.status_code == 200
    assert "in the trash" in response.content.decode()
    assert not MergeRecord.objects.exists()


def test_junk_choices_are_form_errors(client, merger):
    _, _, pair = make_pair()
    response = client.post(
        reverse(REVIEW_URL, args=[pair.pk]), {"action": "merge", "keep": "x\x00", "first_name": []}
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert not MergeRecord.objects.exists()


def test_a_decided_pair_cannot_be_merged(client, merger):
    _, _, pair = make_pair()
    PossibleDuplicate.objects.filter(pk=pair.pk).update(status=DuplicateStatus.NOT_DUPLICATE)
    response = client.post(
        reverse(REVIEW_URL, args=[pair.pk]),
        {"action": "merge", "keep": "a", "first_name": "a", "job_title": "a"},
    )
    assert response.status_code == 200
    assert not MergeRecord.objects.exists()


def test_markup_in_names_is_escaped_in_queue_and_review(client, merger):
    a, b, pair = make_pair()
    Contact.all_objects.filter(pk=a.pk).update(display_name=SCRIPT, first_name=SCRIPT)
    for url in (reverse(LIST_URL), reverse(REVIEW_URL, args=[pair.pk])):
        html = client.get(url).content.decode()
        assert SCRIPT not in html
        assert "&lt;script&gt;" in html


def test_the_review_never_proposes_an_organisation_as_its_own_employer(client, merger):
    from tests.factories import OrganizationFactory

    acme = OrganizationFactory(organization_name="Acme")
    acme_ltd = OrganizationFactory(organization_name="Acme Ltd")
    Contact.objects.filter(pk=acme_ltd.pk).update(employer=acme)
    pair = flag_possible_duplicate(acme, acme_ltd, 80, ["organization_name"])
    url = reverse(REVIEW_URL, args=[pair.pk])
    form = client.get(url).context["form"]
    assert form["employer"].initial == "a"
    # Posting what the page proposes merges (once a form error: "cannot employ itself").
    proposed = {name: form[name].initial for name in form.fields}
    response = client.post(url, {"action": "merge", **proposed})
    assert response.status_code == 302
    assert MergeRecord.objects.get().kept_contact_ref == acme.pk
