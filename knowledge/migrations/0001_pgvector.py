"""Enable pgvector; fail with a clear message when the server does not have it."""

from django.core.exceptions import ImproperlyConfigured
from django.db import migrations
from pgvector.django import VectorExtension


def require_pgvector(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            raise ImproperlyConfigured(
                "The PostgreSQL server named by DATABASE_URL has no pgvector extension. "
                "Install pgvector 0.8 or newer on it (https://github.com/pgvector/pgvector), "
                "or unset DATABASE_URL to use the embedded PostgreSQL, which includes it."
            )


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.RunPython(require_pgvector, migrations.RunPython.noop),
        VectorExtension(),
    ]
