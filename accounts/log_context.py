"""Bind the user and organization of each request to its structured log lines."""

from __future__ import annotations

from typing import Any

import structlog
from django_structlog import signals

from accounts.api_keys import ApiKeyPrincipal


def _bind_actor(request: Any, log_kwargs: dict[str, Any], **kwargs: Any) -> None:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return
    organization_id = getattr(user, "organization_id", None)
    structlog.contextvars.bind_contextvars(organization_id=organization_id)
    if isinstance(user, ApiKeyPrincipal):
        structlog.contextvars.bind_contextvars(user_id=None, api_key=user.api_key.prefix)
    else:
        structlog.contextvars.bind_contextvars(user_id=user.pk)


def connect() -> None:
    signals.bind_extra_request_metadata.connect(_bind_actor, dispatch_uid="aa-bind-actor")
    signals.bind_extra_request_finished_metadata.connect(
        _bind_actor, dispatch_uid="aa-bind-actor-finished"
    )
