"""The HTTP clients every OpenAI-compatible provider call goes through (chat, embeddings).

- No redirects: the endpoint was checked (core.endpoints), its redirect target was not,
  and the SDK re-sends the body (the prompt) on a 307/308. A redirect is an error.
- An exhausted quota is final: OpenAI answers it with 429 `insufficient_quota`, which the
  SDK would retry like a rate limit; the response is marked so it does not.
"""

from __future__ import annotations

import json
from typing import Any

QUOTA_CODE = "insufficient_quota"


def is_quota_exhausted(body: Any) -> bool:
    """Whether an error body says the account's quota or credit is used up."""
    error = body.get("error", body) if isinstance(body, dict) else None
    return isinstance(error, dict) and QUOTA_CODE in (error.get("code"), error.get("type"))


def _mark_quota(response: Any) -> None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if is_quota_exhausted(body):
        response.headers["x-should-retry"] = "false"  # the SDK's own "do not retry" signal


def _on_response(response: Any) -> None:
    if response.status_code == 429:
        response.read()
        _mark_quota(response)


async def _on_response_async(response: Any) -> None:
    if response.status_code == 429:
        await response.aread()
        _mark_quota(response)


def sdk_http_client() -> Any:
    """An `http_client` for `openai.OpenAI`."""
    import openai

    return openai.DefaultHttpxClient(
        follow_redirects=False, event_hooks={"response": [_on_response]}
    )


def sdk_async_http_client() -> Any:
    """An `http_client` for `openai.AsyncOpenAI`."""
    import openai

    return openai.DefaultAsyncHttpxClient(
        follow_redirects=False, event_hooks={"response": [_on_response_async]}
    )
