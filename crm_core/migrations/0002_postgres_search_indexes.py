from django.db import migrations

from crm_core.migrations_ops import PostgresOnlySQL


class Migration(migrations.Migration):
    """Trigram indexes behind quick search (PostgreSQL only; needs pg_trgm).

    Creating the extension needs a role allowed to, usually the database
    owner; operators can also create it beforehand (docs/operators.md).
    """

    dependencies = [("crm_core", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            reverse_sql=migrations.RunSQL.noop,
        ),
        PostgresOnlySQL(
            "CREATE INDEX IF NOT EXISTS crm_contact_display_trgm "
            "ON crm_core_contact USING gin (display_name gin_trgm_ops)",
            reverse_sql="DROP INDEX IF EXISTS crm_contact_display_trgm",
        ),
        PostgresOnlySQL(
            "CREATE INDEX IF NOT EXISTS crm_email_prefix "
            "ON crm_core_contactemail (email_normalized varchar_pattern_ops)",
            reverse_sql="DROP INDEX IF EXISTS crm_email_prefix",
        ),
        PostgresOnlySQL(
            "CREATE INDEX IF NOT EXISTS crm_phone_trgm "
            "ON crm_core_contactphone USING gin (number gin_trgm_ops)",
            reverse_sql="DROP INDEX IF EXISTS crm_phone_trgm",
        ),
    ]
