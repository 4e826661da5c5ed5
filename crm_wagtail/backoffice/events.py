"""Admin screens for events (filled in by the events work)."""


def register():
    """Register this module's viewsets with the Wagtail admin."""
