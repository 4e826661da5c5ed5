"""Domain exceptions of crm_payments (subclasses of crm_core's CRMError, so
the API, forms and admin already turn them into clear messages)."""

from crm_core.exceptions import CRMError


class PaymentBlocked(CRMError):
    """Too many payment attempts or declines from this address: card-testing defence."""

    status_code = 429


class ProviderNotAvailable(CRMError):
    """The payment provider is unknown, disabled or not configured."""


class ProviderError(CRMError):
    """The provider refused or could not be reached; nothing was charged by us."""

    status_code = 502


class PaymentNotRefundable(CRMError):
    """Nothing paid through a provider is left to refund."""

    status_code = 409
