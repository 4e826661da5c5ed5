"""The registry of payment providers (see ``base.PaymentProvider``)."""

from functools import cache

from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from ..conf import payments_setting
from ..exceptions import ProviderNotAvailable


@cache
def _provider_class(path):
    return import_string(path)


def all_providers():
    """Every provider listed in PAYMENT_PROVIDERS, configured or not, in order."""
    return [_provider_class(path)() for path in payments_setting("PAYMENT_PROVIDERS")]


def available_providers():
    """The providers a visitor may choose: listed and configured."""
    return [provider for provider in all_providers() if provider.is_configured()]


def get_provider(identifier, *, configured=True):
    """The provider with this identifier, or ``ProviderNotAvailable``."""
    for provider in all_providers():
        if provider.identifier == identifier:
            if configured and not provider.is_configured():
                break
            return provider
    raise ProviderNotAvailable(
        _("The payment method %(name)s is not available.") % {"name": str(identifier)[:50]}
    )
