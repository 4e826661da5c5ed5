"""Read queries of contributions shared by the API and the back office."""

from django.db.models import Prefetch

from ..models import Contribution, LineItem, RecurringContribution, SoftCredit


def contributions_with_details(queryset=None):
    """Contributions of contacts not in the trash, with line items and soft credits
    prefetched: three queries whatever the number of rows."""
    queryset = Contribution.objects.all() if queryset is None else queryset
    return queryset.filter(contact__is_deleted=False).prefetch_related(
        Prefetch("line_items", queryset=LineItem.objects.order_by("id")),
        Prefetch("soft_credits", queryset=SoftCredit.objects.order_by("id")),
    )


def recurring_contributions():
    return RecurringContribution.objects.filter(contact__is_deleted=False)
