"""The ingestion queue: fair between organizations (round-robin), kept in PostgreSQL.

Uploads do not put "ingest document 42" on the broker, where a thousand tasks of one
organization would sit in front of another's one. Each queued document adds a token
(`knowledge.ingest_next`) to the `ingestion` queue, and whichever worker takes a token
claims the *fairest* queued document at that moment: the organization served least
recently first (never-served first), then its oldest document. So another organization's
single upload waits for at most the documents already being worked on, one per worker,
however long the first organization's backlog. Claims use FOR UPDATE SKIP LOCKED, so
workers never take the same document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery
from django.utils import timezone

from knowledge.models import Document, DocumentStatus

WORKING = (DocumentStatus.EXTRACTING, DocumentStatus.CHUNKING, DocumentStatus.EMBEDDING)


def _due() -> Q:
    return Q(status=DocumentStatus.QUEUED) & (
        Q(retry_at__isnull=True) | Q(retry_at__lte=timezone.now())
    )


def claim_next(token: str = "") -> int | None:
    """Take the fairest queued document for ingestion (it becomes `extracting`).

    A token delivered again (its worker died mid-document and the broker re-delivered
    it) takes back the document it had claimed, so that work is redone at once.
    """
    if token:
        resumed = (
            Document.objects.using("default")
            .filter(claimed_by=token, status__in=WORKING)
            .values_list("pk", flat=True)
            .first()
        )
        if resumed is not None:
            return resumed
    last_served = (
        Document.objects.filter(organization_id=OuterRef("organization_id"))
        .order_by()
        .values("organization_id")
        .annotate(last=Max("claimed_at"))
        .values("last")
    )
    with transaction.atomic():
        document = (
            Document.objects.filter(_due())
            .annotate(organization_served=Subquery(last_served))
            .order_by(
                # Never-served organizations first, then the one served longest ago.
                F("organization_served").asc(nulls_first=True),
                "created_at",
                "id",
            )
            .select_for_update(skip_locked=True, of=("self",))
            .only("pk")
            .first()
        )
        if document is None:
            return None
        Document.objects.filter(pk=document.pk).update(
            status=DocumentStatus.EXTRACTING,
            progress=5,
            claimed_at=timezone.now(),
            claimed_by=token,
            retry_at=None,
        )
    return document.pk


def retry_later(document_id: int, delay_seconds: float) -> None:
    """Put a document back in the queue, due again after `delay_seconds`."""
    Document.objects.filter(pk=document_id, status__in=WORKING).update(
        status=DocumentStatus.QUEUED,
        retry_at=timezone.now() + timedelta(seconds=delay_seconds),
    )


@dataclass(frozen=True)
class Position:
    ahead: int  # queued documents that will be taken up before this one
    working: int  # documents being ingested right now (every organization)


def positions(organization_id: int, only: Document | None = None) -> dict[int, Position]:
    """Where each of an organization's queued documents stands in the round-robin (or
    just `only`, for one row's refresh: its rank is one count, not the whole list).

    A document with k older queued documents of its own organization is taken up in round
    k; before it, every other organization takes up to k documents, plus one more in its
    round if it comes first in the rotation (served less recently, or never and sooner).
    """
    rows = list(
        Document.objects.filter(status__in=(DocumentStatus.QUEUED, *WORKING))
        .order_by()
        .values("organization_id")
        .annotate(
            queued=Count("pk", filter=Q(status=DocumentStatus.QUEUED)),
            working=Count("pk", filter=Q(status__in=WORKING)),
            oldest=Min("created_at", filter=Q(status=DocumentStatus.QUEUED)),
        )
    )
    served = dict(
        Document.objects.filter(organization_id__in=[row["organization_id"] for row in rows])
        .order_by()
        .values("organization_id")
        .annotate(last=Max("claimed_at"))
        .values_list("organization_id", "last")
    )  # per organization, through the (organization, claimed_at) index
    for row in rows:
        row["served"] = served.get(row["organization_id"])
    working = sum(row["working"] for row in rows)
    mine = next((row for row in rows if row["organization_id"] == organization_id), None)
    if mine is None:
        return {}
    others = [row for row in rows if row["organization_id"] != organization_id]
    queued = Document.objects.filter(organization_id=organization_id, status=DocumentStatus.QUEUED)
    if only is None:
        ranks = enumerate(queued.order_by("created_at", "id").values_list("pk", flat=True))
    elif only.status == DocumentStatus.QUEUED:
        older = Q(created_at__lt=only.created_at) | Q(created_at=only.created_at, pk__lt=only.pk)
        ranks = [(queued.filter(older).count(), only.pk)]
    else:
        return {}
    result = {}
    for rank, document_id in ranks:
        ahead = rank
        for row in others:
            ahead += min(row["queued"], rank)
            if row["queued"] > rank and _turn(row) < _turn(mine):
                ahead += 1
        result[document_id] = Position(ahead=ahead, working=working)
    return result


def _turn(row: dict[str, Any]) -> tuple[bool, Any, Any]:
    """An organization's place in the rotation, as claim_next orders it."""
    return (row["served"] is not None, row["served"] or row["oldest"], row["oldest"])
