"""Read queries of contributions shared by the API and the back office."""

from django.db.models import DecimalField, ExpressionWrapper, F, Prefetch

from ..models import Contribution, ContributionStatus, LineItem, RecurringContribution, SoftCredit
from ..models.contributions import AMOUNT

# What counts as money given, in the dashboard, the reports and the contact
# summary: completed contributions, and partially refunded ones for what was
# kept. Fully refunded, pending, failed and cancelled ones count for nothing.
GIFT_STATUSES = (ContributionStatus.COMPLETED, ContributionStatus.PARTIALLY_REFUNDED)
KEPT_AMOUNT = ExpressionWrapper(
    F("total_amount") - F("refunded_amount"), output_field=DecimalField(**AMOUNT)
)


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
