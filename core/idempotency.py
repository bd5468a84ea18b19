"""`Idempotency-Key` for POSTs that create things: a retried request gets the first answer.

The first request with a key runs and its successful answer is kept in Redis for 24 hours
under (caller, path, key), with a fingerprint of the body. A retry with the same key and
body gets the same status and body back (header `Idempotent-Replayed: true`) and creates
nothing; the same key with a different body is a 422; a retry while the first is still
running is a 409.

While Redis is unreachable a request *with* a key is refused with 503 before anything is
created: the caller asked for "at most once", and going ahead unguarded could create the
thing twice on their retry. A request without a key never touches Redis here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from django.http import HttpResponseBase
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.redis_clients import RedisUnavailable
from core.redis_clients import fail_fast_cache as cache

log = structlog.get_logger(__name__)

KEEP_SECONDS = 24 * 60 * 60
LOCK_SECONDS = 120


class IdempotencyConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_in_progress"
    default_detail = "A request with this Idempotency-Key is still being processed; retry shortly."


class IdempotencyMismatch(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was used with a different request body."


class IdempotencyUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "idempotency_unavailable"
    default_detail = (
        "Cannot guarantee idempotency right now: the store for Idempotency-Key is not "
        "answering. Nothing was created; retry shortly, or send the request without the key."
    )
    wait = 10  # DRF's handler turns this into Retry-After


@dataclass
class Stored:
    status: int
    data: Any

    def response(self) -> Response:
        """The first answer again, marked as a replay."""
        return Response(self.data, status=self.status, headers={"Idempotent-Replayed": "true"})


def idempotent(
    request: Request,
    work: Callable[[], tuple[HttpResponseBase, Any]],
    *,
    replay: Callable[[Stored], HttpResponseBase] | None = None,
) -> HttpResponseBase:
    """Run `work` at most once per Idempotency-Key: a retry gets the first answer back.

    `work()` does the thing and returns (response, data to keep); a successful answer's
    data is kept for retries, which get `replay(stored)` (by default the same status and
    body). When `work` raises, the key is released so a retry can run.
    """
    guard = IdempotencyGuard(request)
    if stored := guard.begin():
        return replay(stored) if replay else stored.response()
    try:
        response, kept = work()
    except BaseException:
        guard.release()
        raise
    guard.save(response.status_code, kept)
    return response


class IdempotencyGuard:
    """The steps behind `idempotent`: begin (the stored answer, or None to go ahead),
    save (keep a successful answer) or release (on failure)."""

    def __init__(self, request: Request) -> None:
        self.key = (request.headers.get("Idempotency-Key") or "").strip()
        if len(self.key) > 200:
            raise ValidationError({"Idempotency-Key": ["Use a key of at most 200 characters."]})
        user = request.user
        # A person is their id; an API key names itself (accounts.api_keys.ApiKeyPrincipal).
        caller = getattr(user, "idempotency_caller", None) or user.pk
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        self.path = request.path
        self.cache_key = f"idempotency:{caller}:{request.path}:{digest}"
        self.fingerprint = hashlib.sha256(_body_bytes(request)).hexdigest()

    @property
    def active(self) -> bool:
        return bool(self.key)

    def begin(self) -> Stored | None:
        """The stored answer of an earlier identical request, or None to go ahead."""
        if not self.active:
            return None
        try:
            stored = cache.get(self.cache_key)
            if stored is not None:
                if stored["fingerprint"] != self.fingerprint:
                    raise IdempotencyMismatch()
                return Stored(stored["status"], stored["data"])
            if not cache.add(f"{self.cache_key}:lock", 1, LOCK_SECONDS):
                raise IdempotencyConflict()
        except RedisUnavailable as exc:
            log.warning("idempotency_unavailable", path=self.path, reason=str(exc))
            raise IdempotencyUnavailable() from exc
        return None

    def save(self, status_code: int, data: Any) -> None:
        """Keep a successful answer for retries. The work is done by now, so a Redis failure
        is logged, never raised: an error here would invite the retry that duplicates it."""
        if not self.active:
            return
        if 200 <= status_code < 300:
            try:
                cache.set(
                    self.cache_key,
                    {"status": status_code, "data": data, "fingerprint": self.fingerprint},
                    KEEP_SECONDS,
                )
            except RedisUnavailable as exc:
                log.warning("idempotency_answer_not_kept", path=self.path, reason=str(exc))
        self.release()

    def release(self) -> None:
        """Let a retry run. Never raises: a lock that cannot be removed expires by itself."""
        if not self.active:
            return
        try:
            cache.delete(f"{self.cache_key}:lock")
        except RedisUnavailable as exc:
            log.warning("idempotency_lock_not_released", path=self.path, reason=str(exc))


def _body_bytes(request: Request) -> bytes:
    parts = []
    for key in sorted(request.data.keys()) if hasattr(request.data, "keys") else []:
        value = request.data.get(key)
        if hasattr(value, "read"):  # an uploaded file: its size and name stand in for it
            parts.append(f"{key}=file:{getattr(value, 'name', '')}:{getattr(value, 'size', 0)}")
        else:
            parts.append(f"{key}={value!r}")
    return "&".join(parts).encode()
