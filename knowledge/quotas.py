"""Each organization's share of the knowledge base: stored bytes, documents and passages.

The limits are fields of the organization (defaults from KNOWLEDGE_MAX_*_PER_ORGANIZATION).
Bytes and documents are checked when a file is uploaded, before anything is stored;
passages when a document is ingested, before any is stored. Both checks run with the
organization's row locked, so two uploads (or ingestions) racing for the last room
cannot both pass. A refusal is a 409 `knowledge_limit_reached` naming the limit and the
current use, and the organization's admins are told (accounts.notices).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.template.defaultfilters import filesizeformat

from accounts import notices
from accounts.models import NoticeKind, Organization
from accounts.usage import Allowance
from core.errors import Refused
from knowledge.models import Document

ASK_FOR_ROOM = (
    "Delete documents you no longer need, or ask the platform operator to raise the limit."
)


def _size(value: int) -> str:
    return str(filesizeformat(value)).replace("\xa0", " ")  # plain text in the API too


class KnowledgeLimitReached(Refused):
    """The upload would take the organization past one of its knowledge-base limits."""

    status = 409
    code = "knowledge_limit_reached"


@dataclass(frozen=True)
class KnowledgeUse:
    bytes: int
    documents: int
    chunks: int


def knowledge_use(organization_id: int, *, excluding_document: int | None = None) -> KnowledgeUse:
    """What the organization's documents take now (a document's passages count once it
    is ready; a document being re-ingested is left out with `excluding_document`)."""
    documents = Document.objects.filter(organization_id=organization_id)
    if excluding_document is not None:
        documents = documents.exclude(pk=excluding_document)
    totals = documents.aggregate(
        bytes=Coalesce(Sum("size_bytes"), 0),
        documents=Count("pk"),
        chunks=Coalesce(Sum("chunk_count"), 0),
    )
    return KnowledgeUse(totals["bytes"], totals["documents"], totals["chunks"])


def allowances(organization: Organization) -> list[Allowance]:
    """The organization's knowledge-base use against its limits (for pages and the admin)."""
    use = knowledge_use(organization.pk)
    return [
        Allowance("Knowledge base storage", use.bytes, organization.knowledge_bytes_limit,
                  in_bytes=True),
        Allowance("Knowledge base documents", use.documents,
                  organization.knowledge_documents_limit),
        Allowance("Knowledge base passages", use.chunks, organization.knowledge_chunks_limit),
    ]  # fmt: skip


def lock_organization(organization_id: int) -> Organization:
    """Lock the organization's row until the transaction ends: limit checks of the same
    organization run one at a time. Call inside transaction.atomic()."""
    # NO KEY UPDATE: rows that merely reference the organization (sessions, chunks) are
    # still inserted meanwhile; only other limit checks and settings changes wait.
    return Organization.objects.select_for_update(no_key=True).get(pk=organization_id)


def check_upload(organization: Organization, size: int) -> None:
    """Raise KnowledgeLimitReached when one more document of `size` bytes does not fit."""
    use = knowledge_use(organization.pk)
    documents_limit = organization.knowledge_documents_limit
    if documents_limit is not None and use.documents + 1 > documents_limit:
        raise KnowledgeLimitReached(
            f"Your organization's knowledge base is full: it has {use.documents:,} of its "
            f"{documents_limit:,} documents. {ASK_FOR_ROOM}"
        )
    bytes_limit = organization.knowledge_bytes_limit
    if bytes_limit is not None and use.bytes + size > bytes_limit:
        raise KnowledgeLimitReached(
            f"This file ({_size(size)}) does not fit in your organization's knowledge base: "
            f"{_size(use.bytes)} of its {_size(bytes_limit)} storage limit are in use. "
            f"{ASK_FOR_ROOM}"
        )


def chunks_refusal(organization: Organization, document_id: int, new_chunks: int) -> str | None:
    """Why a document of `new_chunks` passages cannot be stored (None when it fits)."""
    limit = organization.knowledge_chunks_limit
    if limit is None:
        return None
    used = knowledge_use(organization.pk, excluding_document=document_id).chunks
    if used + new_chunks <= limit:
        return None
    return (
        f"This document would make {new_chunks:,} passages, but your organization's "
        f"knowledge base has {used:,} of its {limit:,} passages in use, so none were stored. "
        f"Split the document, delete documents you no longer need, or ask the platform "
        f"operator to raise the limit."
    )


def tell_admins(organization_id: int, reason: str) -> None:
    """The organization's admins hear that a limit stopped a document (once a day by email)."""
    notices.notify_admins(
        organization_id=organization_id,
        kind=NoticeKind.KNOWLEDGE_LIMIT,
        message=f"A document was refused: {reason}",
    )


def room_made(organization_id: int) -> None:
    """Documents were deleted: the notice that the knowledge base was full is resolved."""
    notices.resolve_notices(organization_id=organization_id, kind=NoticeKind.KNOWLEDGE_LIMIT)
