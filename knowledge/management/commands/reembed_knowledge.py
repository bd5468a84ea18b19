"""Re-embed every passage after changing EMBEDDING_PROVIDER / EMBEDDING_MODEL / dimensions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.db.models import Q

from knowledge.embeddings import get_embedder
from knowledge.models import Chunk, Document, DocumentStatus
from knowledge.services import bump_knowledge_version, embed_with_cache, embedding_text
from knowledge.vector_index import current_dimensions, set_dimensions


class Command(BaseCommand):
    help = (
        "Give the embedding column the configured dimension and re-embed every passage with "
        "the configured model, document by document (resumable: finished documents are skipped)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=64, help="passages per embedding call")

    def handle(self, *args: Any, **options: Any) -> None:
        embedder = get_embedder()
        if embedder.dimensions != settings.EMBEDDING_DIMENSIONS:
            self.stderr.write(
                f"EMBEDDING_DIMENSIONS={settings.EMBEDDING_DIMENSIONS} but the model gives "
                f"{embedder.dimensions}; fix the setting first."
            )
            return
        before = current_dimensions(connection)
        with transaction.atomic():
            changed = set_dimensions(connection, embedder.dimensions)
        if changed and before != embedder.dimensions:
            self.stdout.write(
                f"Embedding column changed from {before} to {embedder.dimensions} dimensions."
            )
        stale = ~Q(embedding_model=embedder.model_id) | Q(chunks__embedding__isnull=True)
        documents = Document.objects.filter(stale, status=DocumentStatus.READY).distinct()
        total = documents.count()
        self.stdout.write(f"Re-embedding {total} document(s) with {embedder.model_id}.")
        organizations = set()
        for number, document in enumerate(documents.iterator(), start=1):
            chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
            vectors = embed_with_cache(
                [embedding_text(document.title, c.heading_path, c.text) for c in chunks], embedder
            )
            with transaction.atomic():
                for chunk, vector in zip(chunks, vectors, strict=True):
                    chunk.embedding = vector
                Chunk.objects.bulk_update(chunks, ["embedding"], batch_size=500)
                Document.objects.filter(pk=document.pk).update(embedding_model=embedder.model_id)
            organizations.add(document.organization_id)
            self.stdout.write(f"  [{number}/{total}] {document.title}: {len(chunks)} passages")
        for organization_id in organizations:
            bump_knowledge_version(organization_id)
        self.stdout.write(self.style.SUCCESS("Done."))
