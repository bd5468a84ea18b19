"""Server-sent events: one way to write an event, one response for every stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse

KEEP_ALIVE = ": keep-alive\n\n"


def event(kind: str, data: object, *, event_id: str = "") -> str:
    """One event; `event_id` lets a reconnecting client resume after it (Last-Event-ID)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


def retry(milliseconds: int) -> str:
    """How long a disconnected EventSource waits before it reconnects."""
    return f"retry: {milliseconds}\n\n"


def response(events: AsyncIterator[str]) -> StreamingHttpResponse:
    """A text/event-stream response that proxies neither cache nor buffer."""
    streamed = StreamingHttpResponse(events, content_type="text/event-stream")
    streamed["Cache-Control"] = "no-cache"
    streamed["X-Accel-Buffering"] = "no"
    return streamed
