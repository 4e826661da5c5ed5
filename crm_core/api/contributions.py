"""API of contributions: serializers, filters and viewsets (filled in by the contributions work)."""


def register(router):
    """Add this module's viewsets to the v1 router."""
