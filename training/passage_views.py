"""A cited passage, for whoever may read the conversation that cites it.

Learners may not open the knowledge base's files (managers manage it), but a trainer's
answer is only as good as its sources: the learner checks them here. The passage is found
through the reply's own stored citation (citation n of a message is the prompt's passage
n, retrieved within the scenario's knowledge scope), so a session's reader sees exactly
the passages that conversation was given, and nothing else of the knowledge base.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import access
from knowledge.chunking import HEADING_SEPARATOR
from knowledge.models import Chunk
from training import selectors
from training.citations import renumbered
from training.rendering import render_reply


@login_required
@require_GET
def cited_passage(
    request: HttpRequest, session_id: int, message_id: int, number: int
) -> HttpResponse:
    session = selectors.access_session(request.user, session_id)  # else 404
    message = session.messages.filter(pk=message_id).first()
    citation = next(
        (c for c in (message.citations if message else []) if c.get("number") == number), None
    )
    if message is None or citation is None:
        return _gone(request, session, "That reply has no such source.", status=404)
    chunk = (
        Chunk.objects.select_related("document")
        .filter(pk=citation.get("chunk_id"), organization_id=session.organization_id)
        .first()
    )
    if chunk is None:
        return _gone(
            request,
            session,
            f"“{citation.get('title') or 'This document'}” has been removed from the "
            "knowledge base since this reply cited it.",
            status=410,
        )
    _, cited = renumbered(message.text, message.citations)
    shown = next((c.shown for c in cited if c.number == number), number)
    return render(
        request,
        "training/passage.html",
        {
            "session": session,
            "message": message,
            "shown": shown,
            "chunk": chunk,
            "document": chunk.document,
            "trail": [p.strip() for p in chunk.heading_path.split(HEADING_SEPARATOR) if p.strip()],
            "passage_html": render_reply(chunk.text),
            "can_download": access.is_manager(request.user),
        },
    )


def _gone(request: HttpRequest, session: object, message: str, *, status: int) -> HttpResponse:
    return render(
        request, "training/passage.html", {"session": session, "missing": message}, status=status
    )
