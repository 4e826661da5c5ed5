"""Choosers for the back office that survive junk in a posted form.

Wagtail's chooser widget looks the posted value up to redraw the form and
handles only "no such row": a value that is not an id at all ("NaN", a NUL
byte) raised ``ValueError`` while the form was redrawn with its errors, a
500. Here such a value redraws as an empty chooser, next to the form's own
"Select a valid choice" message.
"""

from django.core.exceptions import ValidationError
from wagtail.snippets.views.chooser import SnippetChooserViewSet
from wagtail.snippets.views.snippets import SnippetViewSet
from wagtail.snippets.widgets import AdminSnippetChooser


class SafeSnippetChooser(AdminSnippetChooser):
    def get_instance(self, value):
        try:
            return super().get_instance(value)
        except (ValueError, TypeError, OverflowError, ValidationError):
            return None


class CRMSnippetChooserViewSet(SnippetChooserViewSet):
    base_widget_class = SafeSnippetChooser


class CRMSnippetViewSet(SnippetViewSet):
    """Every back office viewset: its model's chooser is the safe one above."""

    chooser_viewset_class = CRMSnippetChooserViewSet
