"""Permission policies for records the admin may show but never change."""

from django.contrib.auth import get_user_model
from wagtail.permission_policies import ModelPermissionPolicy


class ReadOnlyPermissionPolicy(ModelPermissionPolicy):
    """Wagtail's model permissions, with every action but "view" refused.

    Used for consent records (append-only by law and by design) and merge
    records, which only services write. Superusers are refused
    too, so no add, edit or delete button ever appears.
    """

    def user_has_permission(self, user, action):
        if action != "view":
            return False
        return super().user_has_permission(user, action)

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, action) for action in actions)

    def users_with_any_permission(self, actions):
        actions = [action for action in actions if action == "view"]
        if not actions:
            return get_user_model().objects.none()
        return super().users_with_any_permission(actions)


class ChangeOnlyPermissionPolicy(ModelPermissionPolicy):
    """Wagtail's model permissions without "add" and "delete": a fixed set of rows.

    Used for the wording of transactional messages: one row per kind of
    message, made by a migration; editors change the rows, never add or
    remove one (superusers included).
    """

    def user_has_permission(self, user, action):
        if action not in ("view", "change"):
            return False
        return super().user_has_permission(user, action)

    def user_has_any_permission(self, user, actions):
        return any(self.user_has_permission(user, action) for action in actions)

    def users_with_any_permission(self, actions):
        actions = [action for action in actions if action in ("view", "change")]
        if not actions:
            return get_user_model().objects.none()
        return super().users_with_any_permission(actions)
