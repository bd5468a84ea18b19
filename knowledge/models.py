"""Documents of an organization's knowledge base, their chunks, and the embedding cache."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import VectorField

from accounts.models import Organization

DEFAULT_COLLECTION = "General"


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXTRACTING = "extracting", "Extracting text"
    CHUNKING = "chunking", "Splitting into passages"
    EMBEDDING = "embedding", "Embedding"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DocumentFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word (DOCX)"
    HTML = "html", "HTML"
    MARKDOWN = "markdown", "Markdown"
    TEXT = "text", "Plain text"


def document_upload_path(document: Document, filename: str) -> str:
    # Server-generated path: the uploaded name never reaches the file system.
    return f"documents/{document.organization_id}/{uuid.uuid4().hex}"


class Document(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="documents"
    )
    title = models.CharField(max_length=300)
    original_filename = models.CharField(max_length=255)
    file = models.FileField(upload_to=document_upload_path, max_length=300)
    format = models.CharField(max_length=16, choices=DocumentFormat.choices)
    content_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    collection = models.CharField(max_length=100, default=DEFAULT_COLLECTION)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The ingestion queue (knowledge/fair_queue.py): when a worker last took it up, and
    # not before when a provider hiccup is retried.
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)  # the task (token) working on it
    retry_at = models.DateTimeField(null=True, blank=True)
    embedding_model = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "sha256"], name="document_unique_content_per_org"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "collection"]),
            models.Index(fields=["organization", "claimed_at"], name="document_org_claimed"),
            models.Index(
                fields=["created_at"],
                name="document_queued",
                condition=models.Q(status="queued"),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_finished(self) -> bool:
        return self.status in (DocumentStatus.READY, DocumentStatus.FAILED)


class Chunk(models.Model):
    """A passage of a document: the unit that is embedded, searched and cited."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    collection = models.CharField(max_length=100)  # copied from the document for SQL filters
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.CharField(max_length=500, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    # Dimensions are set on the column by migration/`reembed_knowledge`, not here, so a
    # change of embedding model is a data operation rather than a schema migration.
    embedding = VectorField(null=True)
    search_vector = SearchVectorField(null=True)

    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
            models.Index(fields=["organization", "collection"], name="chunk_org_collection"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class EmbeddingCacheEntry(models.Model):
    """An embedding keyed by (model, sha256 of the text): unchanged text is never re-embedded."""

    model_id = models.CharField(max_length=120)
    text_sha256 = models.CharField(max_length=64)
    embedding = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_id", "text_sha256"], name="embedding_cache_key")
        ]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.text_sha256[:12]}"
