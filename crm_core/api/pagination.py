from rest_framework.pagination import CursorPagination


class CRMCursorPagination(CursorPagination):
    """Cursor pagination: stable pages while rows are added, no COUNT query.

    The ordering comes from the view's OrderingFilter (``ordering`` on the view
    is the default); ``page_size`` may be asked for, up to ``max_page_size``.
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
