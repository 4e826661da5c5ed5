"""Create the staff roles as Django auth groups: ``manage.py crm_setup_roles``.

Idempotent: a group that exists is kept (its users too) and its permissions
are set to exactly the role's, as ``crm_core.roles`` defines them.
"""

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from crm_core.roles import ROLES, UnknownPermissions, role_permissions


class Command(BaseCommand):
    help = "Create or update the CRM staff roles (auth groups and their permissions)."

    def handle(self, *args, **options):
        with transaction.atomic():
            for role in ROLES:
                try:
                    permissions = role_permissions(role)
                except UnknownPermissions as error:
                    raise CommandError(
                        f"Role {role.name!r} names permissions that do not exist: {error}. "
                        "Run `manage.py migrate` first."
                    ) from None
                group, created = Group.objects.get_or_create(name=role.name)
                group.permissions.set(permissions)
                self.stdout.write(
                    f"Role {role.name}: {'created' if created else 'updated'}, "
                    f"{len(permissions)} permissions."
                )
