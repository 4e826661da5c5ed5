"""API of memberships: serializers, filters and viewsets (filled in by the memberships work)."""


def register(router):
    """Add this module's viewsets to the v1 router."""
