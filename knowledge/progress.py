"""Live ingestion progress: tasks publish each stage change on a Redis channel per
organization; the manager's page follows it as server-sent events.

Pub/sub, not a stream: the page renders every document's current state when it loads,
so only changes from then on matter, and a page that is not open costs nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog
from django.conf import settings

from core.redis_clients import publisher

log = structlog.get_logger(__name__)
HEARTBEAT_SECONDS = 15.0


def channel(organization_id: int) -> str:
    return f"knowledge:progress:{organization_id}"


def publish(organization_id: int, document_id: int, status: str, progress: int) -> None:
    """Tell open pages that a document moved on. Best effort: the page's slow refresh
    and the next event catch up if Redis hiccups, and ingestion never fails for it."""
    message = json.dumps({"document_id": document_id, "status": status, "progress": progress})
    try:
        publisher().publish(channel(organization_id), message)
    except redis.RedisError as exc:
        log.warning("progress_publish_failed", error=str(exc))


async def follow(
    organization_id: int, duration_seconds: float
) -> AsyncIterator[dict[str, Any] | None]:
    """Progress events of the organization as they come; None as a heartbeat when quiet.
    Ends after `duration_seconds` (the browser's EventSource reconnects by itself)."""
    client = aioredis.Redis.from_url(
        settings.REDIS_CACHE_URL,
        socket_timeout=HEARTBEAT_SECONDS + settings.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel(organization_id))
        deadline = time.monotonic() + duration_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(timeout=min(HEARTBEAT_SECONDS, remaining))
            if message is None:
                yield None
                continue
            if message.get("type") == "message":
                yield json.loads(message["data"])
    finally:
        try:
            await asyncio.wait_for(pubsub.aclose(), settings.REDIS_TIMEOUT_SECONDS)
        finally:
            await client.aclose()
