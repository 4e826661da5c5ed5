from rest_framework.permissions import BasePermission, DjangoModelPermissions


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


def requires(*perms):
    """A permission class for an action: signed in and holding every one of ``perms``.

    ``requires("crm_core.refund_contribution")`` on a refund action, on top of
    the view's model permissions.
    """

    class Requires(BasePermission):
        def has_permission(self, request, view):
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    Requires.__name__ = "Requires_" + "_".join(p.split(".")[-1] for p in perms)
    return Requires
