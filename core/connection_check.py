"""One cheap, read-only call to a hosted AI service with a key, answered in a sentence a
person can act on (the provider-key admin's "Test connection"). Never retried, always
bounded by a timeout, and the key never appears in what it says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.core.exceptions import ValidationError

from core.endpoints import check_provider_endpoint

TIMEOUT_SECONDS = 10.0


class ConnectionProblem(Exception):
    """What went wrong, for the person who saved the key."""


def http_check(
    url: str, headers: dict[str, str], describe: Callable[[Any], str], *, secret: str
) -> str:
    """GET `url`; `describe(json)` says what a good answer shows. Raises ConnectionProblem."""
    try:
        check_provider_endpoint(url)
    except ValidationError as exc:
        raise ConnectionProblem(f"The endpoint cannot be used: {exc.messages[0]}") from None
    host = urlsplit(url).netloc
    try:
        response = httpx.get(url, headers=headers, timeout=TIMEOUT_SECONDS,
                             follow_redirects=False)  # fmt: skip
    except httpx.TimeoutException:
        raise ConnectionProblem(f"{host} did not answer within {TIMEOUT_SECONDS:.0f} s.") from None
    except httpx.HTTPError:
        raise ConnectionProblem(f"{host} could not be reached.") from None
    if response.status_code in (401, 403):
        raise ConnectionProblem(
            f"{host} refused this key (HTTP {response.status_code}): check it, and that it "
            "is allowed to read the service's models or avatars."
        )
    if response.status_code >= 300:
        detail = response.text[:200].replace(secret, "…") if secret else response.text[:200]
        raise ConnectionProblem(f"{host} answered HTTP {response.status_code}: {detail}")
    try:
        return describe(response.json())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConnectionProblem(f"{host} answered, but not as the service would.") from None


def openai_compatible(default_base_url: str) -> Callable[[str, str], str]:
    """A check for an OpenAI-compatible service (OpenAI, OpenRouter...): `GET /models`."""

    def check(api_key: str, base_url: str) -> str:
        url = (base_url or default_base_url).rstrip("/") + "/models"
        return http_check(
            url,
            {"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            lambda body: (
                f"Connected: the key works and the service lists {len(body['data'])} models."
            ),
            secret=api_key,
        )

    return check
