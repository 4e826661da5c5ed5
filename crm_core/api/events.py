"""API of events: serializers, filters and viewsets (filled in by the events work)."""


def register(router):
    """Add this module's viewsets to the v1 router."""
