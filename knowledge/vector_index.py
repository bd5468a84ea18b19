"""The chunk embedding column's dimension and its HNSW index (cosine), managed as data."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

INDEX_NAME = "chunk_embedding_hnsw"


def current_dimensions(connection: BaseDatabaseWrapper) -> int | None:
    """The declared dimension of knowledge_chunk.embedding, or None if unconstrained."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = 'knowledge_chunk'::regclass AND attname = 'embedding'"
        )
        row = cursor.fetchone()
    return row[0] if row and row[0] > 0 else None


def set_dimensions(connection: BaseDatabaseWrapper, dimensions: int) -> bool:
    """Make the column vector(dimensions) with an HNSW cosine index. Returns True if changed.

    Changing the dimension clears every stored chunk embedding (they no longer fit); the
    caller re-embeds them.
    """
    dimensions = int(dimensions)
    if current_dimensions(connection) == dimensions and index_exists(connection):
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")
        if current_dimensions(connection) != dimensions:
            cursor.execute(
                "ALTER TABLE knowledge_chunk ALTER COLUMN embedding "
                f"TYPE vector({dimensions}) USING NULL"
            )
        cursor.execute(
            f"CREATE INDEX {INDEX_NAME} ON knowledge_chunk "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
    return True


def index_exists(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [INDEX_NAME])
        return cursor.fetchone() is not None
