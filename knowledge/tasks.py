"""Celery entry points of the knowledge app: load ids, call a service, idempotent."""

from __future__ import annotations

from datetime import timedelta

import structlog
from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from knowledge import services
from knowledge.embeddings import EmbeddingError
from knowledge.models import Document, DocumentStatus

logger = structlog.get_logger(__name__)
MAX_RETRIES = 5


@shared_task(
    bind=True,
    name="knowledge.ingest_document",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def ingest_document_task(self: Task, document_id: int) -> None:
    """Ingest one document; provider hiccups are retried with exponential backoff."""
    try:
        services.ingest_document(document_id)
    except EmbeddingError as exc:
        if self.request.retries >= MAX_RETRIES:
            services.mark_failed(
                document_id, f"The embedding service kept failing ({exc}); re-ingest later."
            )
            return
        # Give the attempt back: a retry is not a new delivery of the same work.
        Document.objects.filter(pk=document_id, attempts__gt=0).update(attempts=F("attempts") - 1)
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc


@shared_task(name="knowledge.requeue_stalled_documents", acks_late=True)
def requeue_stalled_documents() -> int:
    """Re-queue documents recorded but never picked up (broker down) or left mid-way.

    A document still `queued` after 5 minutes, or in a working stage for longer than a
    task may run, is queued again; the ingestion task's attempt cap ends endless loops.
    """
    now = timezone.now()
    stalled_queued = Document.objects.filter(
        status=DocumentStatus.QUEUED, updated_at__lt=now - timedelta(minutes=5)
    )
    stalled_working = Document.objects.filter(
        status__in=[DocumentStatus.EXTRACTING, DocumentStatus.CHUNKING, DocumentStatus.EMBEDDING],
        updated_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300),
    )
    count = 0
    for document_id in list(stalled_queued.values_list("pk", flat=True)) + list(
        stalled_working.values_list("pk", flat=True)
    ):
        Document.objects.filter(pk=document_id).update(updated_at=now)
        ingest_document_task.delay(document_id)
        count += 1
    if count:
        logger.info("requeued_stalled_documents", count=count)
    return count
