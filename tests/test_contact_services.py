import datetime

import pytest
from django.core.exceptions import ValidationError

from crm_core.models import Activity, ActivityType, Contact, ContactEmail, PossibleDuplicate
from crm_core.services.contacts import (
    create_contact,
    match_contact,
    restore_contact,
    trash_contact,
    update_contact,
    upsert_contact,
)
from tests.factories import ContactFactory, OrganizationFactory, TagFactory

pytestmark = pytest.mark.django_db


def test_create_contact_derives_display_and_sort_names():
    contact = create_contact(first_name="Zoë", last_name="O'Brien")
    assert contact.display_name == "Zoë O'Brien"
    assert contact.sort_name == "O'Brien, Zoë"
    assert contact.name_key == "zoe o brien"


def test_create_contact_normalizes_phone_to_e164():
    contact = create_contact(last_name="Okafor", phones=["020 7946 0018"])
    assert contact.phones.get().number == "+442079460018"


def test_create_contact_reads_international_phone_regardless_of_default_region():
    contact = create_contact(last_name="Dupont", phones=["+33 1 42 68 53 00"])
    assert contact.phones.get().number == "+33142685300"


def test_create_contact_rejects_invalid_phone_naming_the_field_and_saves_nothing():
    with pytest.raises(ValidationError) as exc:
        create_contact(last_name="Smith", phones=["12345"])
    assert "phones" in exc.value.message_dict
    assert not Contact.all_objects.exists()


def test_create_contact_rejects_malformed_email_and_saves_nothing():
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Ann", emails=["ann@@example"])
    assert "emails" in exc.value.message_dict
    assert not Contact.all_objects.exists()


def test_first_email_becomes_primary_and_duplicates_fold_case():
    contact = create_contact(
        first_name="Ann", emails=["Ann@Example.org", "ann@example.org", "ann@work.example"]
    )
    assert [e.email for e in contact.emails.all()] == ["Ann@Example.org", "ann@work.example"]
    assert contact.primary_email.email == "Ann@Example.org"


def test_two_primary_emails_are_refused():
    with pytest.raises(ValidationError) as exc:
        create_contact(
            first_name="Ann",
            emails=[
                {"email": "a@example.org", "is_primary": True},
                {"email": "b@example.org", "is_primary": True},
            ],
        )
    assert "emails" in exc.value.message_dict


def test_address_country_must_be_iso_code():
    with pytest.raises(ValidationError) as exc:
        create_contact(last_name="Smith", addresses=[{"city": "Leeds", "country": "England"}])
    assert "addresses" in exc.value.message_dict
    contact = create_contact(last_name="Smith", addresses=[{"city": "Leeds", "country": "gb"}])
    assert contact.addresses.get().country.code == "GB"


def test_html_in_names_is_stored_as_plain_text():
    contact = create_contact(first_name="<b>Ann</b>", last_name="<script>alert(1)</script>Lee")
    assert contact.first_name == "Ann"
    assert "<" not in contact.display_name
    assert contact.last_name == "alert(1)Lee"


def test_control_characters_are_removed_from_names():
    contact = create_contact(first_name="An\x00n", last_name="Lee\x07")
    assert contact.display_name == "Ann Lee"


def test_oversize_name_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="x" * 101, last_name="Lee")
    assert list(exc.value.message_dict) == ["first_name"]


def test_wrong_type_for_a_name_is_refused():
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name=12345, last_name="Lee")
    assert "first_name" in exc.value.message_dict


def test_unknown_field_is_refused_by_name():
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Ann", favourite_colour="blue")
    assert "favourite_colour" in exc.value.message_dict


def test_individual_needs_a_name_or_an_email():
    with pytest.raises(ValidationError):
        create_contact()
    contact = create_contact(emails=["only.email@example.org"])
    assert contact.display_name == "only.email@example.org"


def test_organization_needs_its_name():
    with pytest.raises(ValidationError) as exc:
        create_contact(kind="organization")
    assert "organization_name" in exc.value.message_dict


def test_employer_must_be_an_organization():
    person = ContactFactory()
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Bo", employer=person)
    assert "employer" in exc.value.message_dict
    org = OrganizationFactory(organization_name="Acme Ltd")
    assert create_contact(first_name="Bo", employer=org).employer == org


def test_birth_date_in_the_future_is_refused():
    tomorrow = datetime.date.today() + datetime.timedelta(days=2)
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Ann", birth_date=tomorrow)
    assert "birth_date" in exc.value.message_dict


def test_creation_is_recorded_with_actor_and_source(superuser):
    contact = create_contact(first_name="Ann", last_name="Lee", actor=superuser, source="api")
    event = contact.activities.get()
    assert (event.activity_type, event.subject) == (ActivityType.SYSTEM, "Contact created")
    assert event.created_by == superuser
    assert event.source == "api"
    assert event.changes["first_name"] == [None, "Ann"]


def test_update_records_who_changed_what(superuser):
    contact = create_contact(first_name="Ann", last_name="Lee")
    update_contact(contact, last_name="Smith", actor=superuser, source="admin")
    event = contact.activities.filter(subject="Contact updated").get()
    assert event.changes == {"last_name": ["Lee", "Smith"]}
    assert event.created_by == superuser
    contact.refresh_from_db()
    assert contact.display_name == "Ann Smith"


def test_update_without_changes_records_nothing():
    contact = create_contact(first_name="Ann", last_name="Lee")
    update_contact(contact, last_name="Lee")
    assert contact.activities.count() == 1


def test_update_replaces_email_list_and_keeps_hold_on_kept_address():
    contact = create_contact(first_name="Ann", emails=["a@example.org", "b@example.org"])
    ContactEmail.objects.filter(email="b@example.org").update(on_hold=True)
    update_contact(contact, emails=["b@example.org", "c@example.org"])
    emails = {e.email: e for e in contact.emails.all()}
    assert set(emails) == {"b@example.org", "c@example.org"}
    assert emails["b@example.org"].on_hold is True
    assert emails["b@example.org"].is_primary is True


def test_failed_update_changes_nothing():
    contact = create_contact(first_name="Ann", last_name="Lee", emails=["a@example.org"])
    with pytest.raises(ValidationError):
        update_contact(contact, last_name="Smith", emails=["not-an-email"])
    contact.refresh_from_db()
    assert contact.last_name == "Lee"
    assert [e.email for e in contact.emails.all()] == ["a@example.org"]


def test_update_tags_by_slug_records_the_change():
    TagFactory(name="Volunteer", slug="volunteer")
    contact = create_contact(first_name="Ann")
    update_contact(contact, tags=["volunteer"])
    assert list(contact.tags.values_list("slug", flat=True)) == ["volunteer"]
    assert contact.activities.filter(changes__has_key="tags").exists()


def test_unknown_tag_is_refused():
    with pytest.raises(ValidationError) as exc:
        create_contact(first_name="Ann", tags=["no-such-tag"])
    assert "tags" in exc.value.message_dict


def test_trash_hides_contact_and_restore_brings_it_back(superuser):
    contact = ContactFactory()
    trash_contact(contact, actor=superuser)
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert Contact.all_objects.get(pk=contact.pk).is_deleted
    restore_contact(contact, actor=superuser)
    assert Contact.objects.filter(pk=contact.pk).exists()
    subjects = list(contact.activities.values_list("subject", flat=True))
    assert "Moved to trash" in subjects and "Restored from trash" in subjects


def test_trashed_contact_cannot_be_updated():
    contact = ContactFactory()
    trash_contact(contact)
    with pytest.raises(ValidationError):
        update_contact(contact, last_name="Other")


def test_trash_keeps_related_records():
    contact = create_contact(first_name="Ann", emails=["ann@example.org"])
    trash_contact(contact)
    assert ContactEmail.objects.filter(contact_id=contact.pk).exists()


# -- matching -----------------------------------------------------------------


def test_match_by_email_is_case_insensitive_and_scores_highest():
    contact = create_contact(first_name="Ann", last_name="Lee", emails=["Ann.Lee@Example.org"])
    [candidate] = match_contact({"emails": ["ann.lee@example.ORG"]})
    assert candidate.contact == contact
    assert candidate.score == 100
    assert candidate.reasons == ["email"]


def test_match_by_name_and_postcode_ignores_accents_and_spacing():
    contact = create_contact(
        first_name="Zoë", last_name="Brown", addresses=[{"postal_code": "SW1A 1AA"}]
    )
    [candidate] = match_contact(
        {"first_name": "zoe", "last_name": "BROWN", "addresses": [{"postal_code": "sw1a1aa"}]}
    )
    assert candidate.contact == contact
    assert "name+postcode" in candidate.reasons


def test_match_by_name_and_phone_in_another_format():
    contact = create_contact(first_name="Raj", last_name="Patel", phones=["020 7946 0123"])
    [candidate] = match_contact(
        {"first_name": "Raj", "last_name": "Patel", "phones": ["+44 20 7946 0123"]}
    )
    assert candidate.contact == contact
    assert candidate.score == 85


def test_name_alone_is_below_the_default_threshold():
    create_contact(first_name="John", last_name="Smith")
    assert match_contact({"first_name": "John", "last_name": "Smith"}) == []
    assert len(match_contact({"first_name": "John", "last_name": "Smith"}, min_score=0)) == 1


def test_match_ignores_trashed_contacts():
    contact = create_contact(first_name="Ann", emails=["ann@example.org"])
    trash_contact(contact)
    assert match_contact({"emails": ["ann@example.org"]}) == []


def test_match_ignores_invalid_input_instead_of_failing():
    assert match_contact({"emails": ["nope"], "phones": ["abc"], "addresses": ["x"]}) == []


# -- upsert -------------------------------------------------------------------


def test_upsert_updates_the_contact_matched_by_email():
    contact = create_contact(first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    result = upsert_contact(
        {"first_name": "Ann", "last_name": "Lee-Smith", "emails": ["ANN@example.org"]},
        source="form",
    )
    assert result.created is False
    assert result.contact.pk == contact.pk
    assert result.contact.last_name == "Lee-Smith"
    assert Contact.objects.count() == 1


def test_upsert_never_overwrites_good_data_with_blanks():
    create_contact(first_name="Ann", last_name="Lee", job_title="Nurse", emails=["ann@example.org"])
    result = upsert_contact(
        {"first_name": "", "last_name": None, "job_title": "", "emails": ["ann@example.org"]}
    )
    assert (result.contact.first_name, result.contact.last_name) == ("Ann", "Lee")
    assert result.contact.job_title == "Nurse"


def test_upsert_fill_blanks_keeps_stored_values():
    create_contact(first_name="Ann", last_name="Lee", emails=["ann@example.org"])
    result = upsert_contact(
        {"last_name": "Other", "job_title": "Teacher", "emails": ["ann@example.org"]},
        update_mode="fill_blanks",
    )
    assert result.contact.last_name == "Lee"
    assert result.contact.job_title == "Teacher"


def test_upsert_adds_new_phone_and_keeps_old_ones():
    contact = create_contact(first_name="Ann", emails=["ann@example.org"], phones=["02079460001"])
    upsert_contact({"emails": ["ann@example.org"], "phones": ["020 7946 0002"]})
    assert sorted(contact.phones.values_list("number", flat=True)) == [
        "+442079460001",
        "+442079460002",
    ]
    assert contact.phones.get(is_primary=True).number == "+442079460001"


def test_upsert_creates_new_contact_flagged_as_possible_duplicate():
    existing = create_contact(
        first_name="Ann", last_name="Lee", addresses=[{"postal_code": "LS1 4AP"}]
    )
    result = upsert_contact(
        {
            "first_name": "Ann",
            "last_name": "Lee",
            "emails": ["new.ann@example.org"],
            "addresses": [{"postal_code": "LS1 4AP"}],
        },
        source="import",
    )
    assert result.created is True
    pair = PossibleDuplicate.objects.get()
    assert {pair.contact_a, pair.contact_b} == {existing, result.contact}
    assert pair.reasons == ["name+postcode", "name"]


def test_upsert_records_an_activity_for_the_update():
    contact = create_contact(first_name="Ann", emails=["ann@example.org"])
    upsert_contact({"last_name": "Lee", "emails": ["ann@example.org"]}, source="form")
    event = contact.activities.filter(subject="Contact updated").get()
    assert event.source == "form"
    assert event.changes["last_name"] == ["", "Lee"]


def test_upsert_with_two_strong_matches_creates_and_flags_both():
    a = create_contact(first_name="Ann", emails=["shared@example.org"])
    b = create_contact(first_name="Bob", emails=["shared@example.org"])
    result = upsert_contact({"first_name": "Cat", "emails": ["shared@example.org"]})
    assert result.created is True
    flagged = {frozenset((p.contact_a_id, p.contact_b_id)) for p in PossibleDuplicate.objects.all()}
    assert flagged == {
        frozenset((a.pk, result.contact.pk)),
        frozenset((b.pk, result.contact.pk)),
    }


def test_activity_history_survives_for_each_write():
    contact = create_contact(first_name="Ann")
    update_contact(contact, last_name="Lee")
    update_contact(contact, job_title="Chair")
    assert Activity.objects.filter(contact=contact, activity_type="system").count() == 3
