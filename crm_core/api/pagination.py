import datetime

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.db.models.functions import Coalesce
from rest_framework.pagination import CursorPagination

# What a NULL sorts as: later than any real value, so NULLs come last going
# up and first going down, on SQLite and PostgreSQL alike.
LAST_DATETIME = datetime.datetime.max.replace(tzinfo=datetime.UTC)
LAST_DATE = datetime.date.max


class CRMCursorPagination(CursorPagination):
    """Cursor pagination: stable pages while rows are added, no COUNT query.

    The ordering comes from the view's OrderingFilter (``ordering`` on the view
    is the default); ``page_size`` may be asked for, up to ``max_page_size``.

    A cursor holds the sort value of the row a page ends on, and the next page
    is the rows past that value, so the value must never be NULL (``> NULL``
    matches nothing) and rows with equal values must keep one order. A
    nullable date or time (a pending contribution's ``received_at``, a
    lifetime membership's ``end_date``) is therefore sorted by an annotation,
    ``<field>_or_last``, that reads NULL as the latest value there is, and the
    id always breaks ties.
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        asked = super().get_ordering(request, queryset, view)
        queryset, self._cursor_ordering = self._sortable(queryset, asked)
        return super().paginate_queryset(queryset, request, view)

    def get_ordering(self, request, queryset, view):
        return self._cursor_ordering

    def _sortable(self, queryset, ordering):
        """``queryset`` annotated for ``ordering``, and the ordering to page by."""
        model = queryset.model
        annotations = {}
        sortable = []
        for term in ordering:
            descending = term.startswith("-")
            name = term.lstrip("-")
            field = _concrete_field(model, name)
            if field is not None and field.null:
                alias = f"{name}_or_last"
                annotations[alias] = Coalesce(name, models.Value(_last(field), output_field=field))
                name = alias
            sortable.append(f"-{name}" if descending else name)
        pk = model._meta.pk.name
        if not {"pk", pk} & {term.lstrip("-") for term in sortable}:
            sortable.append(f"-{pk}" if sortable[0].startswith("-") else pk)
        return queryset.annotate(**annotations), tuple(sortable)


def _concrete_field(model, name):
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None  # an annotation, or a lookup across a relation


def _last(field):
    if isinstance(field, models.DateTimeField):
        return LAST_DATETIME
    if isinstance(field, models.DateField):
        return LAST_DATE
    raise ImproperlyConfigured(
        f"Cursor pagination cannot order by the nullable {field.name!r}: "
        "give it a value that sorts last in crm_core/api/pagination.py."
    )
