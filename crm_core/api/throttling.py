from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from ..conf import crm_setting


class CRMUserRateThrottle(UserRateThrottle):
    """Per-user rate from the API_USER_RATE setting, read at request time."""

    def get_rate(self):
        return crm_setting("API_USER_RATE")


class CRMAnonRateThrottle(AnonRateThrottle):
    def get_rate(self):
        return crm_setting("API_ANON_RATE")
