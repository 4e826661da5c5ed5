"""Inserting many rows at once: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere.

``bulk_insert(model, objs)`` saves new model instances as ``bulk_create``
does (no ``save()``, no signals; ``auto_now_add`` and defaults applied; each
object gets its primary key), but on PostgreSQL it draws the keys from the
table's sequence in one query and sends the rows with ``COPY ... FROM
STDIN``, which skips building and parsing one large INSERT statement. The
import uses it for its batches of new contacts (benchmark B1).
"""

from django.db import connections, models, router

# Below this many rows an INSERT is as quick and needs no id query.
COPY_MIN_ROWS = 20

# Fields whose get_db_prep_save gives a value of the listed type (or None)
# back unchanged (ForeignKey: as its target), so bulk_insert can skip the call
# for such values. A value of any other type goes through the field.
_TEXT_FIELDS = (models.CharField, models.EmailField, models.TextField)
_INTEGER_FIELDS = (
    models.AutoField,
    models.BigAutoField,
    models.IntegerField,
    models.BigIntegerField,
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.SmallIntegerField,
)


def _plain_types(field):
    """The exact value types ``field`` saves as they are (empty: none)."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    kind = type(target)
    if kind in _TEXT_FIELDS:
        return (str, type(None))
    if kind in _INTEGER_FIELDS:
        return (int, type(None))  # exact types: a bool is not let through
    if kind is models.BooleanField:
        return (bool, type(None))
    return ()


def _db_value(field, obj, connection, plain):
    value = field.pre_save(obj, True)
    if type(value) in plain:
        return value
    return field.get_db_prep_save(value, connection)


def bulk_insert(model, objs, *, using=None):
    """Save ``objs`` (new instances of ``model``) and return them with their keys."""
    objs = list(objs)
    using = using or router.db_for_write(model)
    connection = connections[using]
    opts = model._meta
    if (
        connection.vendor != "postgresql"
        or len(objs) < COPY_MIN_ROWS
        or opts.parents
        or any(f.has_db_default() for f in opts.concrete_fields)
        or any(obj.pk is not None for obj in objs)
    ):
        return model._base_manager.using(using).bulk_create(objs)
    from psycopg import sql  # PostgreSQL installs only (the "postgres" extra)

    fields = [f for f in opts.concrete_fields if not f.generated]
    pk = opts.pk
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_insert")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [connection.ops.quote_name(opts.db_table), pk.column, len(objs)],
        )
        plain = [_plain_types(f) for f in fields]
        for obj, (key,) in zip(objs, cursor.fetchall(), strict=True):
            setattr(obj, pk.attname, key)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(opts.db_table),
            sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
        )
        # The raw psycopg cursor raises psycopg's errors; as Django's own
        # cursor does, turn them into Django's (IntegrityError and the rest).
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for obj in objs:
                copy.write_row(
                    [_db_value(f, obj, connection, p) for f, p in zip(fields, plain, strict=True)]
                )
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return objs


def bulk_update(model, objs, field_names, *, using=None):
    """Write ``field_names`` of saved ``objs`` back, as ``QuerySet.bulk_update`` does.

    On PostgreSQL this is one ``UPDATE ... FROM unnest(...)`` with a typed array
    per column, instead of one ``CASE WHEN id = ... THEN ...`` per object and
    column, which Django builds and PostgreSQL parses for every row.
    """
    objs = list(objs)
    using = using or router.db_for_write(model)
    connection = connections[using]
    opts = model._meta
    fields = [opts.get_field(name) for name in field_names]
    if (
        connection.vendor != "postgresql"
        or len(objs) < COPY_MIN_ROWS
        or opts.parents
        or not fields
        or any(f not in opts.concrete_fields or f.primary_key or f.generated for f in fields)
        or len({obj.pk for obj in objs}) != len(objs)
        or None in {obj.pk for obj in objs}
    ):
        # Django's own checks and errors, and its rule for an object listed twice.
        model._base_manager.using(using).bulk_update(objs, field_names)
        return
    from psycopg import sql  # PostgreSQL installs only (the "postgres" extra)

    pk = opts.pk
    columns = [pk, *fields]
    arrays = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs]
        for field in columns
    ]
    statement = sql.SQL(
        "UPDATE {table} SET {sets} FROM (SELECT {unnest}) AS v WHERE {table}.{pk} = v.{pk}"
    )
    statement = statement.format(
        table=sql.Identifier(opts.db_table),
        sets=sql.SQL(", ").join(
            sql.SQL("{} = v.{}").format(sql.Identifier(f.column), sql.Identifier(f.column))
            for f in fields
        ),
        unnest=sql.SQL(", ").join(
            sql.SQL("unnest(%s::{}[]) AS {}").format(
                sql.SQL(f.db_type(connection)),
                sql.Identifier(f.column),
            )
            for f in columns
        ),
        pk=sql.Identifier(pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(cursor.cursor), arrays)
