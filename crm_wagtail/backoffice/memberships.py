"""Admin screens for memberships (filled in by the memberships work)."""


def register():
    """Register this module's viewsets with the Wagtail admin."""
