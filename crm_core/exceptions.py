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
