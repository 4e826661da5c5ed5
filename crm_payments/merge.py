"""How a contact merge treats crm_payments' rows (see crm_core.services.merge).

Payments and refunds hang off contributions, which the merge moves; the one
row of ours that points at a contact is the provider's customer record.
"""

from django.utils.translation import gettext as _

from crm_core.services.merge import register_merge_handler

from .models import ProviderCustomer


def move_provider_customers(keep, remove, context):
    """Move the removed contact's provider customers to the kept contact.

    A contact has one customer per provider: when both have one (two Stripe
    customers for one person), the kept contact's stays in use and the other
    id is written in the merge's notes, so staff can find it at the provider.
    """
    kept = set(ProviderCustomer.objects.filter(contact=keep).values_list("provider", flat=True))
    moved = 0
    for customer in ProviderCustomer.objects.filter(contact=remove):
        if customer.provider in kept:
            context.note(
                _("%(provider)s customer %(id)s of the merged contact is no longer used.")
                % {"provider": customer.provider, "id": customer.customer_id}
            )
            customer.delete()
            continue
        ProviderCustomer.objects.filter(pk=customer.pk).update(contact=keep)
        moved += 1
    return moved


def register():
    register_merge_handler(ProviderCustomer, "contact", move_provider_customers)
