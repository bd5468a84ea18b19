"""The manager's knowledge page: upload with live progress, documents, and "try a question"."""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from accounts import access
from accounts.models import User
from core import sse
from knowledge import fair_queue, quotas, services
from knowledge import progress as progress_events
from knowledge.extraction import ACCEPTED_LIST
from knowledge.models import Document, DocumentStatus
from knowledge.retrieval import InvalidQuery, KnowledgeScope, retrieve_passages

PAGE = "knowledge/documents.html"


def _require_manager(request: HttpRequest) -> None:
    if not access.is_manager(request.user) or not request.user.organization_id:
        raise PermissionDenied("Only managers can manage the knowledge base.")


def _with_positions(documents: list[Document], organization_id: int | None) -> list[Document]:
    """Queued documents carry their place in the ingestion queue ("n ahead of it")."""
    if organization_id and any(d.status == DocumentStatus.QUEUED for d in documents):
        only = documents[0] if len(documents) == 1 else None  # a row's refresh
        places = fair_queue.positions(organization_id, only=only)
        for document in documents:
            document.queue_position = places.get(document.pk)
    return documents


def _row(request: HttpRequest, document: Document, status: int = 200) -> HttpResponse:
    _with_positions([document], document.organization_id)
    return render(request, f"{PAGE}#document-row", {"document": document}, status=status)


@login_required
@require_GET
def documents(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    rows = access.scope(request.user, Document.objects.all())
    collections = sorted(set(rows.values_list("collection", flat=True)))
    documents = _with_positions(list(rows), request.user.organization_id)
    return render(
        request,
        PAGE,
        {
            "documents": documents,
            "collections": collections,
            "accepted": ACCEPTED_LIST,
            "allowances": quotas.allowances(request.user.organization),
        },
    )


@login_required
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    """One file per request (the page sends each dropped file on its own)."""
    _require_manager(request)
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return HttpResponse("Choose a file to upload.", status=400, content_type="text/plain")
    result = services.upload_document(
        actor=request.user,
        uploaded_file=uploaded,
        collection=request.POST.get("collection", ""),
    )
    response = _row(request, result.document, status=202 if result.created else 200)
    if not result.created:
        response["X-Duplicate-Of"] = str(result.document.pk)
    return response


@login_required
@require_GET
def document_row(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    return _row(request, access.access_or_404(request.user, Document, pk=pk))


@login_required
@require_POST
def reingest(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    return _row(request, services.reingest_document(actor=request.user, document_id=pk))


@login_required
@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    services.delete_document(actor=request.user, document_id=pk)
    return HttpResponse("")


@login_required
@require_GET
def download(request: HttpRequest, pk: int) -> FileResponse:
    _require_manager(request)
    document = access.access_or_404(request.user, Document, pk=pk)
    response = FileResponse(
        services.open_stored_file(document),  # unreadable: a 409 page naming the cause
        as_attachment=True,
        filename=document.original_filename,
        content_type="application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def search(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    query = request.POST.get("query", "")
    collection = request.POST.get("collection", "")
    context: dict[str, object] = {"query": query}
    try:
        context["passages"] = retrieve_passages(
            organization_id=request.user.organization_id,
            query=query,
            scope=KnowledgeScope(collections=(collection,) if collection else ()),
            limit=5,
        )
    except InvalidQuery as exc:
        context["error"] = str(exc)
    return render(request, f"{PAGE}#search-results", context)


PROGRESS_STREAM_SECONDS = 300  # then the browser's EventSource reconnects


@login_required
@require_GET
async def document_events(request: HttpRequest) -> HttpResponse:
    """Ingestion progress of the organization's documents, as server-sent events."""
    user = await request.auser()
    if not access.is_manager(user) or not user.organization_id:
        raise PermissionDenied("Only managers can follow the knowledge base.")
    organization_id = user.organization_id

    async def still_allowed() -> bool:
        # Checked at every heartbeat: a manager demoted or deactivated mid-stream stops
        # receiving events within one heartbeat.
        current = await User.objects.filter(pk=user.pk).afirst()
        return bool(
            current and current.is_active and access.is_manager(current)
            and current.organization_id == organization_id
        )  # fmt: skip

    async def events() -> AsyncIterator[str]:
        yield sse.retry(3000)
        async for event in progress_events.follow(organization_id, PROGRESS_STREAM_SECONDS):
            if event is None:
                if not await still_allowed():
                    return
                yield sse.KEEP_ALIVE
            else:
                yield sse.event("progress", event)

    return sse.response(events())
