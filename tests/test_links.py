"""Signed personal links (crm_core.links): who they identify, and when they refuse."""

import pytest
from django.core import signing

from crm_core.exceptions import InvalidLink
from crm_core.links import make_contact_token, read_contact_token
from crm_core.services.contacts import trash_contact
from crm_core.services.merge import merge_contacts

from .factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_a_token_identifies_its_contact_for_its_purpose():
    contact = ContactFactory()
    token = make_contact_token(contact, "renew")
    assert read_contact_token(token, "renew") == contact


def test_a_token_is_refused_for_another_purpose():
    token = make_contact_token(ContactFactory(), "unsubscribe")
    with pytest.raises(InvalidLink) as info:
        read_contact_token(token, "update-details")
    assert info.value.code == "link_invalid"


@pytest.mark.parametrize("token", ["", "x", "eyJjIjoxfQ:abc:def", "<script>", "9" * 5000])
def test_forged_or_garbled_tokens_are_refused(token):
    ContactFactory()
    with pytest.raises(InvalidLink):
        read_contact_token(token, "renew")


def test_a_token_signed_with_another_key_is_refused():
    contact = ContactFactory()
    forged = signing.dumps({"c": contact.pk}, key="not-the-site-key", salt="crm_core.links:renew")
    with pytest.raises(InvalidLink):
        read_contact_token(forged, "renew")


def test_an_old_token_has_expired(settings):
    contact = ContactFactory()
    token = make_contact_token(contact, "renew")
    settings.CRM = {"CONTACT_LINK_MAX_AGE": -1}
    with pytest.raises(InvalidLink) as info:
        read_contact_token(token, "renew")
    assert info.value.code == "link_expired"


def test_a_token_of_a_trashed_contact_is_refused():
    contact = ContactFactory()
    token = make_contact_token(contact, "renew")
    trash_contact(contact)
    with pytest.raises(InvalidLink) as info:
        read_contact_token(token, "renew")
    assert info.value.code == "link_no_contact"


def test_a_token_of_a_merged_contact_identifies_the_one_kept():
    kept, removed = ContactFactory(), ContactFactory()
    token = make_contact_token(removed, "renew")
    merge_contacts(kept, removed)
    assert read_contact_token(token, "renew") == kept
