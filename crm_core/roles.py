"""Staff roles: the one table of which Django auth group may do what.

``manage.py crm_setup_roles`` creates a group per role and sets its
permissions to exactly this set, so running it again after this table
changes brings existing groups in line (permissions given to the group by
hand are removed). Users get a role by being put in the group.

Permissions are named "app_label.codename", as ``user.has_perm`` takes them.
Wagtail's "access admin" permission is named by its string only: crm_core
never imports Wagtail, and on a site without Wagtail (or without
crm_payments) the permissions of the missing app are skipped.

Deleting is left to administrators, with one exception: ending a group
membership (the API's DELETE), which keeps the membership as history.
"""

from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth.models import Permission
from django.utils.translation import gettext_lazy as _

ACCESS_ADMIN = "wagtailadmin.access_admin"
# Every permission of these apps is the administrator's; each of their
# "view_" permissions is the read-only role's.
CRM_APPS = ("crm_core", "crm_payments")

ADMINISTRATOR = "CRM administrator"
FUNDRAISER = "Fundraiser"
MEMBERSHIP_OFFICER = "Membership officer"
EVENT_MANAGER = "Event manager"
READ_ONLY = "Read-only"


def crud(app_label, *models, actions=("view", "add", "change")):
    """``["crm_core.view_contact", "crm_core.add_contact", ...]`` for each model."""
    return [f"{app_label}.{action}_{model}" for model in models for action in actions]


def view(app_label, *models):
    return crud(app_label, *models, actions=("view",))


# What every role that works with people needs: contacts and their details,
# and the records shown around a contact (read only).
CONTACT_WORK = [
    *crud("crm_core", "contact", "contactemail", "contactphone", "contactaddress"),
    *view(
        "crm_core",
        "tag",
        "group",
        "relationship",
        "relationshiptype",
        "customfield",
        "customfieldvalue",
        "consentrecord",
        "activity",
    ),
]


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    # "app_label.codename", on top of the app-wide sets below.
    permissions: tuple = ()
    # Every permission of these apps' models.
    all_of_apps: tuple = ()
    # Every "view_" permission of these apps' models.
    view_all_of_apps: tuple = ()


ROLES = (
    Role(
        ADMINISTRATOR,
        _("Everything in the CRM and payments, deleting included."),
        all_of_apps=CRM_APPS,
    ),
    Role(
        FUNDRAISER,
        _(
            "Contacts, activities and group membership; contributions, recurring "
            "contributions, payments and refunds; smart groups and mailings; "
            "campaigns and funds read only."
        ),
        permissions=(
            *CONTACT_WORK,
            *crud("crm_core", "activity", "groupmembership", "consentrecord"),
            "crm_core.delete_groupmembership",
            *crud("crm_core", "contribution", "recurringcontribution", "lineitem", "softcredit"),
            "crm_core.refund_contribution",
            "crm_core.record_offline_payment",
            *view("crm_core", "campaign", "financialtype"),
            *crud("crm_payments", "payment", "refund"),
            *view("crm_payments", "dispute"),
            # Appeals and thank-yous to donors: segments and mailings.
            *crud("crm_core", "smartgroup", "messagetemplate", "mailing"),
            *view("crm_core", "mailingrecipient"),
            "crm_core.send_mailing",
        ),
    ),
    Role(
        MEMBERSHIP_OFFICER,
        _(
            "Contacts, memberships and membership types (renewals included); "
            "adding contacts to groups; contributions read only."
        ),
        permissions=(
            *CONTACT_WORK,
            *crud("crm_core", "membership", "membershiptype"),
            # Putting members in groups (committees, volunteers), one by one
            # or with the contact listing's "Add to group"; ending a
            # membership stays with the fundraiser and the administrator.
            *crud("crm_core", "groupmembership", actions=("view", "add")),
            "crm_core.renew_membership",
            *view("crm_core", "membershipstatusrule", "contribution", "lineitem"),
        ),
    ),
    Role(
        EVENT_MANAGER,
        _("Contacts, events, fee levels, questions, participant roles and participants; check-in."),
        permissions=(
            *CONTACT_WORK,
            *crud(
                "crm_core",
                "event",
                "eventfeelevel",
                "eventquestion",
                "participantrole",
                "participant",
            ),
            "crm_core.check_in_participant",
        ),
    ),
    Role(
        READ_ONLY,
        _("Sees everything in the CRM and payments, changes nothing."),
        view_all_of_apps=CRM_APPS,
    ),
)

ROLE_NAMES = tuple(role.name for role in ROLES)


def _model_permission_names(app_label, *, view_only):
    names = []
    for model in apps.get_app_config(app_label).get_models():
        opts = model._meta
        codenames = [f"{action}_{opts.model_name}" for action in opts.default_permissions]
        if view_only:
            codenames = [name for name in codenames if name.startswith("view_")]
        else:
            codenames += [codename for codename, _name in opts.permissions]
        names += [f"{app_label}.{codename}" for codename in codenames]
    return names


def permission_names(role):
    """Every "app_label.codename" of ``role``, Wagtail's "access admin" included,
    leaving out those of apps this site does not install.

    Returns ``(named, app_wide)``: the names written in the table, and those
    that come from ``all_of_apps``/``view_all_of_apps``.
    """
    installed = {config.label for config in apps.get_app_configs()}
    named = {name for name in (ACCESS_ADMIN, *role.permissions) if name.split(".")[0] in installed}
    app_wide = set()
    for app_label in set(role.all_of_apps) & installed:
        app_wide.update(_model_permission_names(app_label, view_only=False))
    for app_label in set(role.view_all_of_apps) & installed:
        app_wide.update(_model_permission_names(app_label, view_only=True))
    return named, app_wide - named


class UnknownPermissions(LookupError):
    """Names written in the table that match no permission row (a typo, a model gone)."""


def role_permissions(role):
    """The ``Permission`` rows of ``role``.

    Raises ``UnknownPermissions`` for a name written in the table that matches
    no row (``migrate`` creates the rows). The app-wide sets take the rows
    that exist: a model whose migration is not applied yet has none.
    """
    named, app_wide = permission_names(role)
    wanted = named | app_wide
    pairs = [name.split(".", 1) for name in wanted]
    candidates = Permission.objects.filter(
        content_type__app_label__in={app_label for app_label, _codename in pairs},
        codename__in={codename for _app_label, codename in pairs},
    ).select_related("content_type")
    permissions = [p for p in candidates if f"{p.content_type.app_label}.{p.codename}" in wanted]
    found = {f"{p.content_type.app_label}.{p.codename}" for p in permissions}
    missing = sorted(named - found)
    if missing:
        raise UnknownPermissions(", ".join(missing))
    return permissions
