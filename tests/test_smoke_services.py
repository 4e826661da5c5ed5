from crm_core.models import Contact
from tests.factories import ContactFactory


def test_factory_creates_contact_through_service(db):
    contact = ContactFactory(first_name="Ada", last_name="Lovelace")
    assert Contact.objects.get(pk=contact.pk).display_name == "Ada Lovelace"
    assert contact.activities.get().subject == "Contact created"
