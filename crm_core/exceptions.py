"""Domain exceptions raised by crm_core services.

Bad input is reported as Django's ``ValidationError`` (with field names where
there are fields); the exceptions here name business rules. The edges (forms,
REST API, admin) turn both into a clear message, never a 500.
"""


class CRMError(Exception):
    """Base of every domain exception; carries a message for the user."""

    status_code = 400

    def __init__(self, message, *, code=None):
        super().__init__(message)
        self.message = message
        self.code = code or type(self).__name__


class ContactDeleted(CRMError):
    status_code = 409


class ConsentRecordImmutable(CRMError):
    """Consent records are only ever appended."""

    status_code = 409


class InvalidTransition(CRMError):
    """A status change that is not allowed from the record's current status."""

    status_code = 409


class MembershipNotRenewable(CRMError):
    status_code = 409


class RegistrationClosed(CRMError):
    """Registration is not open: before it opens, after it closes, or the event is inactive."""

    status_code = 409


class EventFull(CRMError):
    """No seats left and no waitlist (or not enough seats for the whole registration)."""

    status_code = 409


class AlreadyRegistered(CRMError):
    status_code = 409


class RefundNotAllowed(CRMError):
    """Refunding more than was paid, or a contribution that was never paid."""

    status_code = 409


class DuplicateTransaction(CRMError):
    """A payment reference (transaction id) already recorded on another contribution."""

    status_code = 409


class AlreadyMember(CRMError):
    """The contact already has a live membership of this type; renew it instead."""

    status_code = 409


class InvalidLink(CRMError):
    """A personal link that was tampered with, expired or points at no contact."""

    status_code = 400
