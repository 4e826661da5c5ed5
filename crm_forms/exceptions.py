"""Domain exceptions of crm_forms; the edges turn them into a clear message."""

from crm_core.exceptions import CRMError


class InvalidPlacement(CRMError):
    """A form reference that was tampered with, or points at no form any more."""

    status_code = 400
