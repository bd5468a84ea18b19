"""Celery entry points of the knowledge app: load ids, call a service, idempotent."""

from __future__ import annotations

from datetime import timedelta

import structlog
from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from django.utils import timezone

from knowledge import fair_queue, services
from knowledge.embeddings import EmbeddingError
from knowledge.models import Document, DocumentStatus

logger = structlog.get_logger(__name__)
UNEXPECTED = (
    "Processing stopped on an unexpected error (it has been logged for the team). "
    "Re-ingest the document to try again."
)


@shared_task(bind=True, name="knowledge.ingest_next", acks_late=True, reject_on_worker_lost=True)
def ingest_next(self: Task) -> int | None:
    """Ingest the fairest queued document (knowledge/fair_queue.py); returns its id.

    A provider hiccup puts it back in the queue with exponential backoff (and a token to
    come back for it); any other error ends it `failed` with a reason, never half-way.
    """
    document_id = fair_queue.claim_next(token=self.request.id or "")
    if document_id is None:
        return None  # another token already took the document this one was queued for
    try:
        services.ingest_document(document_id)
    except EmbeddingError as exc:
        attempts = (
            Document.objects.using("default")
            .filter(pk=document_id)
            .values_list("attempts", flat=True)
        )
        done = attempts.first() or 1  # every run counts, retries and re-deliveries alike
        if done >= services.MAX_ATTEMPTS:
            services.mark_failed(
                document_id, f"The embedding service kept failing ({exc}); re-ingest later."
            )
            return document_id
        delay = min(300, 5 * 2 ** (done - 1))
        fair_queue.retry_later(document_id, delay)
        ingest_next.apply_async(countdown=delay)
    except Exception:
        logger.exception("ingestion_crashed", document_id=document_id)
        services.mark_failed(document_id, UNEXPECTED)
    return document_id


def queue_ingestion(count: int = 1) -> None:
    """Add tokens for `count` newly queued documents."""
    for _ in range(count):
        ingest_next.delay()


@shared_task(name="knowledge.requeue_stalled_documents", acks_late=True)
def requeue_stalled_documents() -> int:
    """Finish what a lost token or a crashed worker left behind (beat, `maintenance`).

    A document in a working stage for longer than a task may run goes back to the queue
    (the ingestion's attempt cap ends endless loops); a queued document nobody took up
    for 5 minutes (tokens lost with the broker) gets a token again.
    """
    now = timezone.now()
    stalled_working = Document.objects.filter(
        status__in=fair_queue.WORKING,
        updated_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300),
    ).update(status=DocumentStatus.QUEUED, retry_at=None, updated_at=now)
    # Queued documents are only stalled when nothing has been taken up for 5 minutes (the
    # tokens were lost with the broker); a long backlog being worked through has tokens.
    idle = not Document.objects.filter(claimed_at__gte=now - timedelta(minutes=5)).exists()
    waiting = Document.objects.filter(
        status=DocumentStatus.QUEUED, updated_at__lt=now - timedelta(minutes=5)
    )
    stalled_queued = waiting.update(updated_at=now) if idle else 0
    count = stalled_working + stalled_queued
    queue_ingestion(count)
    if count:
        logger.info("requeued_stalled_documents", working=stalled_working, queued=stalled_queued)
    return count
