"""Give knowledge_chunk.embedding the configured dimension and its HNSW cosine index."""

from django.conf import settings
from django.db import migrations


def set_dimensions(apps, schema_editor):
    from knowledge.vector_index import set_dimensions as apply

    apply(schema_editor.connection, settings.EMBEDDING_DIMENSIONS)


def drop_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_initial")]
    operations = [migrations.RunPython(set_dimensions, drop_index)]
