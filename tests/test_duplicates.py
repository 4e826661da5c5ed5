"""The duplicate finder: rules, blocking, the review queue and its command."""

import datetime
from io import StringIO

import pytest
from django.core.management import call_command

from crm_core.models import DuplicateRule, DuplicateStatus, PossibleDuplicate
from crm_core.services import duplicates
from crm_core.services.duplicates import DEFAULT_RULES, Rule, find_duplicates
from crm_core.tasks import find_duplicates_task
from tests.factories import ContactFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


def person(first, last, *, emails=(), phones=(), postcode="", street="", birth=None):
    addresses = []
    if postcode or street:
        addresses = [{"street_address": street, "postal_code": postcode, "country": "GB"}]
    return ContactFactory(
        first_name=first,
        last_name=last,
        emails=list(emails),
        phones=list(phones),
        addresses=addresses,
        birth_date=birth,
    )


def queued():
    return {
        frozenset((p.contact_a_id, p.contact_b_id)): p
        for p in PossibleDuplicate.objects.filter(status=DuplicateStatus.OPEN)
    }


def pair(a, b):
    return frozenset((a.pk, b.pk))


def test_same_email_in_any_case_is_queued_with_reason():
    a = person("Ann", "Lee", emails=["ann@example.org"])
    b = person("Annie", "Leigh", emails=["ANN@example.org"])
    person("Bob", "Stone", emails=["bob@example.org"])
    find_duplicates()
    pairs = queued()
    assert set(pairs) == {pair(a, b)}
    assert pairs[pair(a, b)].reasons == ["email"]
    assert pairs[pair(a, b)].score == 100


def test_same_phone_typed_differently_and_similar_name_is_queued():
    a = person("Jonathan", "Price", phones=["020 7946 0001"])
    b = person("Jonathon", "Price", phones=["+44 20 7946 0001"])
    find_duplicates()
    assert "phone" in queued()[pair(a, b)].reasons


def test_same_phone_with_an_unrelated_name_is_not_queued():
    # A shared landline: two people in one household.
    person("Maria", "Okafor", phones=["020 7946 0002"])
    person("Tom", "Becker", phones=["020 7946 0002"])
    find_duplicates()
    assert queued() == {}


def test_misspelt_name_at_the_same_postcode_is_queued():
    a = person("Catherine", "Johnson", postcode="SW1A 1AA")
    b = person("Catharine", "Jonson", postcode="sw1a1aa")
    person("Catherine", "Johnson", postcode="EH1 1YZ")  # another town: someone else
    find_duplicates()
    pairs = queued()
    assert pair(a, b) in pairs
    assert "name_postcode" in pairs[pair(a, b)].reasons


def test_similar_name_and_street_with_a_mistyped_postcode_is_queued():
    a = person("Oliver", "Hughes", postcode="M1 1AE", street="12 Mill Lane")
    b = person("Olivier", "Hughes", postcode="M1 1EA", street="12 Mill Lne")
    find_duplicates()
    assert "name_address" in queued()[pair(a, b)].reasons


def test_names_entered_the_wrong_way_round_are_queued():
    a = person("Grace", "Morgan", postcode="BS1 4DJ")
    b = person("Morgan", "Grace", postcode="BS1 4DJ")
    find_duplicates()
    assert pair(a, b) in queued()


def test_different_people_at_the_same_postcode_are_not_queued():
    person("Alice", "Walker", postcode="BS1 4DJ", street="1 High St")
    person("Peter", "Walker", postcode="BS1 4DJ", street="1 High St")
    person("Alice", "Brown", postcode="BS1 4DJ", street="3 High St")
    find_duplicates()
    assert queued() == {}


def test_same_name_at_same_address_with_other_birth_date_is_flagged_as_such():
    # Father and son of one name, or a mistyped birth date: staff decide.
    a = person(
        "Robert", "Hale", postcode="LS1 5AB", street="4 Park Row", birth=datetime.date(1950, 1, 2)
    )
    b = person(
        "Robert", "Hale", postcode="LS1 5AB", street="4 Park Row", birth=datetime.date(1980, 7, 9)
    )
    find_duplicates()
    found = queued()[pair(a, b)]
    assert "birth_dates_differ" in found.reasons
    assert found.score < 85


def test_similar_organisation_names_are_queued():
    a = OrganizationFactory(organization_name="Riverside Trust Ltd")
    b = OrganizationFactory(organization_name="The Riverside Trust")
    OrganizationFactory(organization_name="Hillside Allotments")
    find_duplicates()
    pairs = queued()
    assert set(pairs) == {pair(a, b)}
    assert pairs[pair(a, b)].reasons == ["organization_name"]


def test_trashed_contacts_are_left_out():
    from crm_core.services.contacts import trash_contact

    person("Ann", "Lee", emails=["ann@example.org"])
    trash_contact(person("Ann", "Lee", emails=["ann@example.org"]))
    find_duplicates()
    assert queued() == {}


def test_not_a_duplicate_stays_closed_after_a_rerun():
    a = person("Ann", "Lee", emails=["ann@example.org"])
    b = person("Ann", "Lee", emails=["ann@example.org"])
    find_duplicates()
    PossibleDuplicate.objects.update(status=DuplicateStatus.NOT_DUPLICATE)
    result = find_duplicates()
    assert result.kept_closed == 1
    assert result.created == 0
    stored = PossibleDuplicate.objects.get()
    assert (stored.contact_a_id, stored.contact_b_id) == (a.pk, b.pk)
    assert stored.status == DuplicateStatus.NOT_DUPLICATE


def test_a_rerun_updates_open_pairs_without_adding_rows():
    person("Ann", "Lee", emails=["ann@example.org"])
    person("Ann", "Lee", emails=["ann@example.org"])
    first = find_duplicates()
    second = find_duplicates()
    assert (first.created, second.created) == (1, 0)
    assert PossibleDuplicate.objects.count() == 1


def test_limiting_to_some_contacts_queues_only_their_pairs():
    a = person("Ann", "Lee", emails=["ann@example.org"])
    b = person("Ann", "Lee", emails=["ann@example.org"])
    c = person("Bob", "Stone", emails=["bob@example.org"])
    d = person("Bob", "Stone", emails=["bob@example.org"])
    find_duplicates(contacts=[b])
    assert set(queued()) == {pair(a, b)}
    find_duplicates(contacts=[c.pk])
    assert set(queued()) == {pair(a, b), pair(c, d)}


def test_rules_are_read_from_the_configuration():
    person("Ann", "Lee", emails=["ann@example.org"])
    person("Bob", "Stone", emails=["ann@example.org"])
    DuplicateRule.objects.filter(kind="email").update(is_active=False)
    find_duplicates()
    assert queued() == {}
    DuplicateRule.objects.filter(kind="email").update(is_active=True, score=70)
    find_duplicates()
    assert [p.score for p in queued().values()] == [70]


def test_rules_given_by_the_caller_replace_the_configured_ones():
    person("Catherine", "Johnson", postcode="SW1A 1AA")
    person("Catharine", "Johnson", postcode="SW1A 1AA")
    assert find_duplicates(rules=[Rule("email", 100)]).found == 0
    assert find_duplicates(rules=DEFAULT_RULES).found == 1


def test_blocking_compares_a_small_multiple_of_the_contacts(monkeypatch):
    # 120 people sharing one postcode and one email: without blocking that is
    # 7,140 pairs; the blocks and windows keep it near-linear.
    for n in range(120):
        person(f"Given{n:03d}", f"Family{n % 7}", emails=["office@example.org"], postcode="N1 9GU")
    result = find_duplicates()
    assert result.contacts == 120
    assert result.compared < 120 * 2 * (duplicates.WINDOW + duplicates.MAX_BLOCK)
    assert result.compared < 120 * 119 / 2


def test_command_reports_progress_and_counts():
    person("Ann", "Lee", emails=["ann@example.org"])
    person("Ann", "Lee", emails=["ann@example.org"])
    out = StringIO()
    call_command("crm_find_duplicates", stdout=out)
    text = out.getvalue()
    assert "Read 2 contacts" in text
    assert "1 possible duplicates: 1 new, 0 updated, 0 already decided" in text
    assert PossibleDuplicate.objects.count() == 1


def test_task_fills_the_queue_and_returns_counts():
    person("Ann", "Lee", emails=["ann@example.org"])
    person("Ann", "Lee", emails=["ann@example.org"])
    result = find_duplicates_task.enqueue()
    assert result.return_value["created"] == 1
    assert PossibleDuplicate.objects.count() == 1
