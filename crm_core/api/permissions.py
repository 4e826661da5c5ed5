from rest_framework.permissions import DjangoModelPermissions


class CRMModelPermissions(DjangoModelPermissions):
    """Django model permissions, with reading needing the "view" permission too.

    DRF's own class lets any authenticated user read; a CRM holds personal
    data, so a user without ``view_<model>`` gets 403 on GET as well.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
