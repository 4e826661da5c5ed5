"""System checks of the CRM settings: a typo fails ``manage.py check`` at deploy."""

from django.core.checks import Error, register

from .conf import crm_setting

REFUND_POLICIES = ("cancel", "keep")


@register()
def check_refund_policies(app_configs, **kwargs):
    errors = []
    for name in ("REFUND_MEMBERSHIP_POLICY", "REFUND_REGISTRATION_POLICY"):
        value = crm_setting(name)
        if value not in REFUND_POLICIES:
            errors.append(
                Error(
                    f"CRM[{name!r}] is {value!r}; use one of {', '.join(REFUND_POLICIES)}.",
                    id="crm_core.E001",
                )
            )
    return errors
