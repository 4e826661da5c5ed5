"""Admin screens for contributions (filled in by the contributions work)."""


def register():
    """Register this module's viewsets with the Wagtail admin."""
