"""Reply streams: the generating task appends events to a Redis stream per reply; readers
(the chat page's server-sent events, the API) replay it from the start and follow it live.

Because readers replay from the beginning, a page reloaded mid-reply catches up at once
and then continues live, and a reader that arrives after the end still sees all of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from accounts.redis_clients import publisher

STREAM_TTL_SECONDS = 3600
BLOCK_MS = 15000  # a reader wakes at least this often (heartbeats keep proxies open)
FINAL_KINDS = {"done", "failed"}


def _key(message_id: int) -> str:
    return f"chat:reply:{message_id}"


def _client(block_seconds: float = 0) -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_CACHE_URL,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS + block_seconds,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )


def publish(message_id: int, kind: str, **data: Any) -> None:
    """Append one event (start, token, done, failed) to the reply's stream."""
    client = publisher()
    key = _key(message_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.xadd(key, {"kind": kind, "data": json.dumps(data)}, maxlen=20000)
        pipe.expire(key, STREAM_TTL_SECONDS)
        pipe.execute()


def _decode(entry: dict[bytes, bytes]) -> tuple[str, dict[str, Any]]:
    return entry[b"kind"].decode(), json.loads(entry[b"data"])


def read(message_id: int, timeout_seconds: float = 120.0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Follow a reply's events until it ends (blocking; for synchronous callers)."""
    client = _client(block_seconds=timeout_seconds)
    last = "0-0"
    try:
        while True:
            result = client.xread({_key(message_id): last}, block=int(timeout_seconds * 1000))
            if not result:
                yield "timeout", {}
                return
            for entry_id, entry in result[0][1]:
                last = entry_id
                kind, data = _decode(entry)
                yield kind, data
                if kind in FINAL_KINDS:
                    return
    finally:
        client.close()


async def aread(
    message_id: int, after: str = "0-0"
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """Follow a reply's events after event id `after` until it ends, as (id, kind, data);
    yields ("", "ping", {}) while waiting."""
    client = aioredis.Redis.from_url(settings.REDIS_CACHE_URL)
    last = after if re.fullmatch(r"\d+-\d+", after or "") else "0-0"
    try:
        while True:
            result = await client.xread({_key(message_id): last}, block=BLOCK_MS)
            if not result:
                yield "", "ping", {}
                continue
            for entry_id, entry in result[0][1]:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                kind, data = _decode(entry)
                yield last, kind, data
                if kind in FINAL_KINDS:
                    return
    finally:
        await client.aclose()


async def aexists(message_id: int) -> bool:
    """Whether the reply's stream is still kept (it expires an hour after its last event)."""
    client = aioredis.Redis.from_url(settings.REDIS_CACHE_URL)
    try:
        return bool(await client.exists(_key(message_id)))
    finally:
        await client.aclose()
