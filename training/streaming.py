"""Reply streams: the generating task appends events to a Redis stream per reply; readers
(the chat page's server-sent events, the API) replay it from the start and follow it live.

Because readers replay from the beginning, a page reloaded mid-reply catches up at once
and then continues live, and a reader that arrives after the end still sees all of it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog
from django.conf import settings

from core.redis_clients import publisher

STREAM_TTL_SECONDS = 3600
BLOCK_MS = 15000  # a reader wakes at least this often (heartbeats keep proxies open)
FINAL_KINDS = {"done", "failed"}
# Written by a live turn every few seconds while it waits, so a stream that goes quiet
# means the turn is gone (see turns.finish_abandoned_replies). Readers skip it.
ALIVE = "alive"
logger = structlog.get_logger(__name__)


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


_async_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _async_publisher() -> aioredis.Redis:
    """One pooled async client per event loop (a pool cannot be shared between loops)."""
    loop = asyncio.get_running_loop()
    client = _async_publishers.get(loop)
    if client is None:
        client = _async_publishers[loop] = aioredis.Redis.from_url(
            settings.REDIS_CACHE_URL,
            socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
        )
    return client


class ReplyPublisher:
    """Appends a turn's events to its reply stream. When Redis fails, the turn goes on (the
    reply is still generated and saved, and readers are told live streaming is
    unavailable); publishing is tried again after a short pause, so a blink of Redis
    does not silence the turn's heartbeat for good. `available` is False once any event
    could not be written."""

    RETRY_AFTER_SECONDS = 2.0

    def __init__(self, message_id: int) -> None:
        self.key = _key(message_id)
        self.message_id = message_id
        self.available = True
        self.last_sent = time.monotonic()
        self._paused_until = 0.0

    async def send(self, kind: str, **data: Any) -> None:
        if time.monotonic() < self._paused_until:
            return
        try:
            async with _async_publisher().pipeline(transaction=False) as pipe:
                pipe.xadd(self.key, {"kind": kind, "data": json.dumps(data)}, maxlen=20000)
                pipe.expire(self.key, STREAM_TTL_SECONDS)
                await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            if self.available:
                logger.warning(
                    "reply_streaming_unavailable", message_id=self.message_id, error=str(exc)
                )
            self.available = False
            self._paused_until = time.monotonic() + self.RETRY_AFTER_SECONDS
            return
        self.last_sent = time.monotonic()


def last_event_age(message_id: int) -> float | None:
    """Seconds since the reply stream's last event; None when there is no stream."""
    entries = publisher().xrevrange(_key(message_id), count=1)
    if not entries:
        return None
    entry_id = entries[0][0]
    millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
    return max(0.0, time.time() - millis / 1000)


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
    client = aioredis.Redis.from_url(
        settings.REDIS_CACHE_URL,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS + BLOCK_MS / 1000,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )
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
    client = aioredis.Redis.from_url(
        settings.REDIS_CACHE_URL,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )
    try:
        return bool(await client.exists(_key(message_id)))
    finally:
        await client.aclose()


# --- for readers: the chat page, the API ------------------------------------------------

UNAVAILABLE = (
    "Live streaming is unavailable right now, so the reply will appear here when it is finished."
)
_DATABASE_POLL_SECONDS = 1.0
Event = tuple[str, str, dict[str, Any]]  # (event id, kind, data)


def _final_event(message_id: int) -> tuple[str, dict[str, Any]] | None:
    """The closing event of a finished reply, from the database (None while streaming)."""
    from training.models import Message, MessageStatus, SessionStatus
    from training.rendering import message_html

    message = Message.objects.select_related("session__scenario").filter(pk=message_id).first()
    if message is None or message.status == MessageStatus.STREAMING:
        return None
    kind = "failed" if message.status == MessageStatus.INCOMPLETE else "done"
    ended = message.session.status == SessionStatus.ENDED
    return kind, {"html": message_html(message), "ended": ended, "interrupted": message.interrupted}


async def follow(
    message_id: int, after: str = "0-0"
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """A reply's events for a reader, as (id, kind, data), until it ends; ("", "ping", {})
    while waiting. A finished reply whose stream has expired gets its final event from the
    database; with Redis unreachable the reader is told live streaming is unavailable and
    gets the final event from the database when the reply is saved."""
    from asgiref.sync import sync_to_async

    final = sync_to_async(_final_event)
    try:
        if not await aexists(message_id):
            if closing := await final(message_id):
                yield "", *closing
                return
        async for event_id, kind, data in aread(message_id, after):
            if kind == "ping" and (closing := await final(message_id)):
                yield "", *closing  # saved, but its last event never reached the stream
                return
            if kind != ALIVE:
                yield event_id, kind, data
        return
    except (redis.RedisError, OSError) as exc:
        logger.warning("reply_stream_unreadable", message_id=message_id, error=str(exc))
    yield "", "status", {"text": UNAVAILABLE}
    deadline = time.monotonic() + settings.REPLY_TIMEOUT_SECONDS + settings.REPLY_STALL_SECONDS * 2
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if closing := await final(message_id):
            yield "", *closing
            return
        await asyncio.sleep(_DATABASE_POLL_SECONDS)
        if time.monotonic() - quiet_since > BLOCK_MS / 1000:
            quiet_since = time.monotonic()
            yield "", "ping", {}


def wait_for_end(message_id: int, timeout_seconds: float) -> None:
    """Block until a reply has ended or `timeout_seconds` pass (from Redis, else from the
    database when Redis is unreachable)."""
    from training.models import Message, MessageStatus

    deadline = time.monotonic() + timeout_seconds
    try:
        for kind, _data in read(message_id, timeout_seconds):
            if kind in FINAL_KINDS or kind == "timeout" or time.monotonic() > deadline:
                return
    except (redis.RedisError, OSError):
        streaming_now = Message.objects.filter(pk=message_id, status=MessageStatus.STREAMING)
        while time.monotonic() < deadline and streaming_now.exists():
            time.sleep(_DATABASE_POLL_SECONDS / 2)
