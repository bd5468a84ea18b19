"""The HTTP clients every OpenAI-compatible provider call goes through (chat, embeddings),
and the one retry policy they share.

- No redirects: the endpoint was checked (core.endpoints), its redirect target was not,
  and the SDK re-sends the body (the prompt) on a 307/308. A redirect is an error.
- Retries are ours, not the SDK's (its clients are built with `max_retries=0`), so that
  they are bounded the same way everywhere: see `RetryPolicy`.
- An exhausted quota is final: OpenAI answers it with 429 `insufficient_quota`, which
  looks like a rate limit but is a billing problem; it is never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar

QUOTA_CODE = "insufficient_quota"
RETRIED_STATUSES = frozenset({408, 409, 429})  # and every 5xx

Result = TypeVar("Result")


def is_quota_exhausted(body: Any) -> bool:
    """Whether an error body says the account's quota or credit is used up."""
    error = body.get("error", body) if isinstance(body, dict) else None
    return isinstance(error, dict) and QUOTA_CODE in (error.get("code"), error.get("type"))


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """The server's requested wait from `Retry-After` (seconds or an HTTP date) or the
    non-standard `retry-after-ms`; None when absent or unreadable, never negative."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isnan(seconds):
            continue
        return max(0.0, seconds)  # "1e999" is infinite: longer than any wait we honour
    value = headers.get("retry-after")
    try:
        moment = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # HTTP dates are always GMT
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed provider call is tried again, and after how long.

    Retried: a 408, 409, 429 or 5xx answer and a connection failure or timeout. Never
    retried: 401/402/403, other 4xx, a redirect, an exhausted quota (429
    `insufficient_quota`), or an answer carrying `x-should-retry: false`. Callers only
    wrap the request itself, so nothing is retried once a reply has begun streaming.

    The wait honours the server's `Retry-After` (seconds or HTTP date); without one it
    backs off exponentially with jitter. A request for a longer wait than `longest_wait`,
    or a retry that would start more than `give_up_after` seconds after the first try
    (timeouts count), is not made: the call fails now with a retryable error rather
    than hold a learner's turn for minutes.
    """

    retries: int = 5  # after the first try: six attempts in all
    longest_wait: float = 20.0
    give_up_after: float = 45.0
    first_backoff: float = 0.5
    longest_backoff: float = 8.0

    def wait_before(self, retry: int, exc: Exception, elapsed: float) -> float | None:
        """Seconds to wait before retry number `retry` (1-based) after `exc`, `elapsed`
        seconds after the first try began; None when it is not retried."""
        if retry > self.retries or not is_retried(exc):
            return None
        response = getattr(exc, "response", None)
        requested = retry_after_seconds(getattr(response, "headers", None))
        if requested is None:
            backoff = min(self.first_backoff * 2 ** (retry - 1), self.longest_backoff)
            delay = backoff * (1 - 0.25 * random.random())  # noqa: S311 (jitter, not a secret)
        elif requested > self.longest_wait:
            return None
        else:
            delay = requested
        if elapsed + delay > self.give_up_after:
            return None
        return delay


def is_retried(exc: Exception) -> bool:
    """Whether a failed provider call may be tried again (see RetryPolicy)."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if not isinstance(exc, openai.APIStatusError):
        return False
    if exc.response.headers.get("x-should-retry") == "false" or is_quota_exhausted(exc.body):
        return False
    status = exc.status_code
    return status in RETRIED_STATUSES or status >= 500


def call_with_retries(call: Callable[[], Result], policy: RetryPolicy) -> Result:
    """`call()`, tried again as `policy` allows; the last error is raised."""
    started = time.monotonic()
    retry = 0
    while True:
        try:
            return call()
        except Exception as exc:
            retry += 1
            delay = policy.wait_before(retry, exc, time.monotonic() - started)
            if delay is None:
                raise
        time.sleep(delay)


async def acall_with_retries(call: Callable[[], Awaitable[Result]], policy: RetryPolicy) -> Result:
    """`await call()`, tried again as `policy` allows; the last error is raised."""
    started = time.monotonic()
    retry = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            retry += 1
            delay = policy.wait_before(retry, exc, time.monotonic() - started)
            if delay is None:
                raise
        await asyncio.sleep(delay)


def sdk_http_client() -> Any:
    """An `http_client` for `openai.OpenAI`."""
    import openai

    return openai.DefaultHttpxClient(follow_redirects=False)


def sdk_async_http_client() -> Any:
    """An `http_client` for `openai.AsyncOpenAI`."""
    import openai

    return openai.DefaultAsyncHttpxClient(follow_redirects=False)
