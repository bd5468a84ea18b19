"""What the knowledge app does: upload, ingest, re-ingest and delete documents.

Ingestion is idempotent: the work before the final step (extract, chunk, embed) writes
nothing but progress, and the final step replaces the document's chunks in one
transaction. A worker killed at any point leaves either the previous complete set of
chunks or the new one, never a mix or a duplicate, and the re-delivered task redoes the
work (embeddings already computed come from the cache).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts import access, audit, notices
from accounts.access import Actor
from accounts.models import NoticeKind
from core.errors import Refused
from core.provider_billing import is_out_of_credit
from core.redis_clients import RedisUnavailable, fail_fast_cache
from knowledge import progress as progress_events
from knowledge import quotas
from knowledge.chunking import HEADING_SEPARATOR, chunk_blocks
from knowledge.embeddings import Embedder, EmbeddingError, get_embedder
from knowledge.extraction import (
    CONTENT_TYPES,
    ExtractionError,
    UnsupportedDocument,
    extract_isolated,
    sniff_format,
)
from knowledge.models import (
    DEFAULT_COLLECTION,
    Chunk,
    Document,
    DocumentStatus,
    EmbeddingCacheEntry,
)
from knowledge.storage import HEAD_BYTES as ENCRYPTED_HEAD_BYTES
from knowledge.storage import KEY_VARIABLE as MEDIA_KEY_VARIABLE
from knowledge.storage import MediaDecryptionError, is_encrypted
from knowledge.tokens import count_tokens

logger = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5
EMBED_BATCH = 64


class DocumentTooLarge(Refused):
    """The upload is over DOCUMENT_MAX_BYTES."""

    status = 413
    code = "document_too_large"


__all__ = [
    "DocumentTooLarge",
    "UnsupportedDocument",
    "UploadResult",
    "delete_document",
    "ingest_document",
    "reingest_document",
    "upload_document",
]


@dataclass(frozen=True)
class UploadResult:
    document: Document
    created: bool


# --- knowledge version (retrieval cache invalidation) ---------------------------------


def _version_key(organization_id: int) -> str:
    return f"knowledge:version:{organization_id}"


def knowledge_version(organization_id: int) -> int:
    """Raises core.redis_clients.RedisUnavailable when the cache cannot be read."""
    return int(fail_fast_cache.get(_version_key(organization_id)) or 0)


def bump_knowledge_version(organization_id: int) -> None:
    """Invalidate every cached retrieval of the organization (runs after a commit: with
    Redis unreachable it logs instead of failing what was already saved)."""
    key = _version_key(organization_id)
    try:
        fail_fast_cache.add(key, 0, timeout=None)
        fail_fast_cache.incr(key)
    except RedisUnavailable as exc:
        logger.warning("knowledge_version_not_bumped", organization_id=organization_id,
                       error=str(exc))  # fmt: skip


# --- upload ---------------------------------------------------------------------------


def sanitize_filename(name: str) -> str:
    """The last path component, without control characters, at most 200 characters."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".").strip()
    return name[:200] or "document"


def _title_from(filename: str) -> str:
    stem = Path(filename).stem if "." in filename else filename
    return re.sub(r"[_\-]+", " ", stem).strip()[:300] or "Untitled document"


def _require_manager(actor: Actor) -> None:
    if not access.is_manager(actor) or not actor.organization_id:
        raise PermissionDenied("Only managers of an organization can manage its knowledge base.")


def _sha256(uploaded: UploadedFile) -> str:
    digest = hashlib.sha256()
    uploaded.seek(0)
    for part in uploaded.chunks():
        digest.update(part)
    uploaded.seek(0)
    return digest.hexdigest()


def upload_document(
    *, actor: Actor, uploaded_file: UploadedFile, title: str = "", collection: str = ""
) -> UploadResult:
    """Store an upload and queue its ingestion; answers at once.

    The same content twice in one organization returns the existing document.
    Raises PermissionDenied, DocumentTooLarge (413), UnsupportedDocument (415) or
    quotas.KnowledgeLimitReached (409: the organization's storage or document limit;
    nothing is stored and its admins are told).
    """
    _require_manager(actor)
    limit = settings.DOCUMENT_MAX_BYTES
    if uploaded_file.size is None or uploaded_file.size > limit:
        raise DocumentTooLarge(
            f"The file is {uploaded_file.size or 0:,} bytes; the limit is {limit:,} bytes "
            f"({limit // (1024 * 1024)} MB)."
        )
    filename = sanitize_filename(uploaded_file.name or "")
    kind = sniff_format(uploaded_file, filename)
    sha256 = _sha256(uploaded_file)
    organization_id = actor.organization_id
    try:
        return _store_upload(actor, uploaded_file, filename, kind, sha256, title, collection)
    except quotas.KnowledgeLimitReached as refused:
        quotas.tell_admins(organization_id, refused.message)
        raise


def _store_upload(
    actor: Actor,
    uploaded_file: UploadedFile,
    filename: str,
    kind: str,
    sha256: str,
    title: str,
    collection: str,
) -> UploadResult:
    organization_id = actor.organization_id
    with transaction.atomic():
        # Uploads of one organization take turns here: two racing for the last room
        # cannot both pass the limit check (nor both store the same content).
        organization = quotas.lock_organization(organization_id)
        existing = Document.objects.filter(organization_id=organization_id, sha256=sha256).first()
        if existing is not None:
            return UploadResult(existing, created=False)
        quotas.check_upload(organization, uploaded_file.size or 0)
        document = Document(
            organization_id=organization_id,
            title=(title or "").strip()[:300] or _title_from(filename),
            original_filename=filename,
            format=kind,
            content_type=CONTENT_TYPES[kind],
            size_bytes=uploaded_file.size,
            sha256=sha256,
            collection=(collection or "").strip()[:100] or DEFAULT_COLLECTION,
            uploaded_by=actor if getattr(actor, "pk", None) else None,
        )
        document.file.save(filename, uploaded_file, save=False)
        document.save()
        audit.record(
            "document.uploaded",
            actor=actor,
            target=document,
            changes={"title": document.title, "filename": filename, "sha256": sha256},
        )
        _queue_ingestion(document)
    return UploadResult(document, created=True)


def _queue_ingestion(document: Document) -> None:
    from knowledge.tasks import queue_ingestion

    transaction.on_commit(queue_ingestion)


@transaction.atomic
def reingest_document(*, actor: Actor, document_id: int) -> Document:
    """Queue a document's ingestion again (after a failure, or a new embedding model)."""
    _require_manager(actor)
    document = access.access_or_404(actor, Document.objects.select_for_update(), pk=document_id)
    document.status = DocumentStatus.QUEUED
    document.progress = 0
    document.error = ""
    document.attempts = 0
    document.retry_at = None
    document.save(
        update_fields=["status", "progress", "error", "attempts", "retry_at", "updated_at"]
    )
    _queue_ingestion(document)
    return document


def delete_document(*, actor: Actor, document_id: int) -> None:
    """Delete a document, its chunks and its file; cached retrievals stop showing it."""
    _require_manager(actor)
    with transaction.atomic():
        document = access.access_or_404(actor, Document.objects.select_for_update(), pk=document_id)
        organization_id = document.organization_id
        file_name = document.file.name
        storage = document.file.storage
        audit.record("document.deleted", actor=actor, target=document,
                     changes={"title": document.title})  # fmt: skip
        document.delete()
        quotas.room_made(organization_id)
        transaction.on_commit(lambda: bump_knowledge_version(organization_id))
        transaction.on_commit(lambda: storage.delete(file_name))


# --- ingestion ------------------------------------------------------------------------


def _set_stage(document: Document, status: str, progress: int) -> None:
    Document.objects.filter(pk=document.pk).update(
        status=status, progress=progress, updated_at=timezone.now()
    )
    progress_events.publish(document.organization_id, document.pk, status, progress)


def mark_failed(document_id: int, reason: str) -> None:
    """Record a permanent failure with its reason; a failed document has no chunks."""
    with transaction.atomic():
        Chunk.objects.filter(document_id=document_id).delete()
        updated = Document.objects.filter(pk=document_id).update(
            status=DocumentStatus.FAILED,
            error=reason[:2000],
            chunk_count=0,
            updated_at=timezone.now(),
        )
        organization_id = (
            Document.objects.filter(pk=document_id)
            .values_list("organization_id", flat=True)
            .first()
        )
        if updated and organization_id:
            transaction.on_commit(lambda: bump_knowledge_version(organization_id))
            transaction.on_commit(
                lambda: progress_events.publish(
                    organization_id, document_id, DocumentStatus.FAILED, 0
                )
            )
    logger.warning("document_failed", document_id=document_id, reason=reason)


class StoredFileUnreadable(Refused):
    """A document's stored file cannot be read; `reason` says why (no path, no key)."""

    status = 409
    code = "file_unreadable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The document's file cannot be read: {reason}.")
        self.reason = reason


def open_stored_file(document: Document) -> Any:
    """The document's file opened for reading (plaintext, whatever the storage).

    Raises StoredFileUnreadable naming the cause: missing, not decryptable with
    MEDIA_ENCRYPTION_KEY, stored in plain form where ciphertext is expected, or encrypted
    while MEDIA_ENCRYPTION_KEY is not set.
    """
    try:
        handle = document.file.open("rb")
        if not getattr(document.file.storage, "encrypted_at_rest", False):
            start = handle.read(ENCRYPTED_HEAD_BYTES)
            handle.seek(0)
            if is_encrypted(start):
                handle.close()
                raise StoredFileUnreadable(
                    f"the stored file is encrypted, but {MEDIA_KEY_VARIABLE} is not set"
                )
        return handle
    except OSError as exc:
        raise StoredFileUnreadable(_unreadable_reason(exc)) from exc


def _unreadable_reason(exc: OSError) -> str:
    if isinstance(exc, MediaDecryptionError):
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "the stored file is missing from storage; upload the document again"
    # strerror is the system's short reason ("Permission denied"), never the path.
    return f"the stored file could not be read ({exc.strerror or type(exc).__name__})"


@contextmanager
def _local_copy(document: Document) -> Iterator[Path]:
    """A path on local disk for the child reader, whatever the storage backend.
    Raises StoredFileUnreadable when the stored file cannot be read in full."""
    try:
        local = Path(document.file.path)
    except NotImplementedError:
        local = None
    if getattr(document.file.storage, "encrypted_at_rest", False):
        local = None  # the file on disk is ciphertext: decrypt through open()
    if local is not None:
        open_stored_file(document).close()  # missing, or encrypted with no key: say so
        yield local
        return
    handle, temporary = tempfile.mkstemp(prefix="aa-doc-")
    try:
        with os.fdopen(handle, "wb") as target, open_stored_file(document) as source:
            try:
                shutil.copyfileobj(source, target, length=1024 * 1024)
            except OSError as exc:  # a record that does not authenticate, a cut file
                raise StoredFileUnreadable(_unreadable_reason(exc)) from exc
        yield Path(temporary)
    finally:
        os.unlink(temporary)


def embed_with_cache(
    texts: list[str],
    embedder: Embedder,
    on_progress: Callable[[float], None] | None = None,
) -> list[list[float]]:
    """Embeddings for `texts`, computing only those not cached for this model."""
    hashes = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
    known: dict[str, list[float]] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 1000):
        for entry in EmbeddingCacheEntry.objects.filter(
            model_id=embedder.model_id, text_sha256__in=unique[start : start + 1000]
        ):
            known[entry.text_sha256] = list(entry.embedding)
    missing = [(h, t) for h, t in dict(zip(hashes, texts, strict=True)).items() if h not in known]
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        vectors = embedder.embed([text for _, text in batch])
        EmbeddingCacheEntry.objects.bulk_create(
            [
                EmbeddingCacheEntry(model_id=embedder.model_id, text_sha256=h, embedding=v)
                for (h, _), v in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,
        )
        known.update({h: v for (h, _), v in zip(batch, vectors, strict=True)})
        if on_progress:
            on_progress(min(1.0, (start + len(batch)) / len(missing)))
    return [known[h] for h in hashes]


def embedding_text(document_title: str, heading_path: str, text: str) -> str:
    """What is embedded for a passage: where it sits, then what it says."""
    context = HEADING_SEPARATOR.join(part for part in (document_title, heading_path) if part)
    return f"{context}\n{text}" if context else text


def _tell_admins_embeddings_out_of_credit(organization_id: int) -> None:
    notices.notify_admins(
        organization_id=organization_id,
        kind=NoticeKind.EMBEDDINGS_CREDIT,
        message="The embedding provider answered that its account has run out of credit, so "
        "new documents cannot be added to the knowledge base. Tell the platform operator to "
        "add credit or change the plan; then re-ingest the failed documents.",
    )


def _refuse_passages(document: Document, reason: str) -> Document:
    """The document would take its organization past its passage limit: it fails with
    the reason, keeps no passages, and the organization's admins are told."""
    mark_failed(document.pk, reason)
    quotas.tell_admins(document.organization_id, reason)
    return document


def ingest_document(document_id: int, *, embedder: Embedder | None = None) -> Document | None:
    """Extract, chunk, embed and index one document. Idempotent.

    Raises EmbeddingError when the provider fails in a way worth retrying; every other
    failure is recorded on the document as `failed` with its reason.
    """
    document = Document.objects.filter(pk=document_id).first()
    if document is None or document.status in (DocumentStatus.READY, DocumentStatus.FAILED):
        return document  # deleted, or finished by an earlier delivery of this task
    Document.objects.filter(pk=document_id).update(attempts=F("attempts") + 1)
    document.refresh_from_db(fields=["attempts"])
    if document.attempts > MAX_ATTEMPTS:
        mark_failed(document_id, f"Gave up after {MAX_ATTEMPTS} attempts; re-ingest to try again.")
        return document
    embedder = embedder or get_embedder()
    log = logger.bind(document_id=document_id, organization_id=document.organization_id)
    try:
        _set_stage(document, DocumentStatus.EXTRACTING, 5)
        with _local_copy(document) as path:
            extraction = extract_isolated(
                path,
                document.format,
                max_pages=settings.DOCUMENT_MAX_PAGES,
                max_uncompressed=settings.DOCUMENT_MAX_UNCOMPRESSED_BYTES,
                timeout_seconds=settings.DOCUMENT_PARSE_TIMEOUT_SECONDS,
                memory_mb=settings.DOCUMENT_PARSE_MEMORY_MB,
            )
        _set_stage(document, DocumentStatus.CHUNKING, 25)
        drafts = chunk_blocks(
            extraction.blocks,
            target_tokens=settings.CHUNK_TARGET_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            count_tokens=count_tokens,
        )
        # Checked again under the organization's lock before storing; here it saves the
        # embedding of a document that cannot be kept.
        refusal = quotas.chunks_refusal(document.organization, document_id, len(drafts))
        if refusal is not None:
            return _refuse_passages(document, refusal)
        _set_stage(document, DocumentStatus.EMBEDDING, 35)
        vectors = embed_with_cache(
            [embedding_text(document.title, d.heading_path, d.text) for d in drafts],
            embedder,
            on_progress=lambda done: _set_stage(
                document, DocumentStatus.EMBEDDING, 35 + int(done * 60)
            ),
        )
    except ExtractionError as exc:
        mark_failed(document_id, str(exc))
        return document
    except StoredFileUnreadable as exc:
        mark_failed(document_id, f"The document could not be read: {exc.reason}.")
        return document
    except EmbeddingError as exc:
        if exc.retryable:
            raise
        mark_failed(document_id, f"The embedding service refused the document: {exc}")
        if is_out_of_credit(exc):
            _tell_admins_embeddings_out_of_credit(document.organization_id)
        return document
    with transaction.atomic():
        # Ingestions of one organization store their passages one at a time, so two
        # documents racing for the last room under the passage limit cannot both fit.
        organization = quotas.lock_organization(document.organization_id)
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            return None  # deleted while we worked
        refusal = quotas.chunks_refusal(organization, document_id, len(drafts))
        if refusal is not None:
            return _refuse_passages(document, refusal)
        Chunk.objects.filter(document=document).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    organization_id=document.organization_id,
                    collection=document.collection,
                    ordinal=ordinal,
                    text=draft.text,
                    heading_path=draft.heading_path,
                    page=draft.page,
                    token_count=draft.token_count,
                    embedding=vector,
                )
                for ordinal, (draft, vector) in enumerate(zip(drafts, vectors, strict=True))
            ],
            batch_size=500,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE knowledge_chunk SET search_vector = "
                "setweight(to_tsvector('english', heading_path), 'A') || "
                "setweight(to_tsvector('english', text), 'B') WHERE document_id = %s",
                [document.pk],
            )
        document.status = DocumentStatus.READY
        document.progress = 100
        document.error = ""
        document.chunk_count = len(drafts)
        document.page_count = extraction.page_count
        document.embedding_model = embedder.model_id
        document.ingested_at = timezone.now()
        document.save()
        organization_id = document.organization_id
        transaction.on_commit(lambda: bump_knowledge_version(organization_id))
        transaction.on_commit(
            lambda: progress_events.publish(organization_id, document.pk, DocumentStatus.READY, 100)
        )
    log.info("document_ready", chunks=len(drafts), pages=extraction.page_count)
    return document
