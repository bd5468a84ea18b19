"""The audit log: `record()` writes one event inside the caller's transaction, so a change
that rolls back leaves no event and a committed change always has one. Secrets in the
recorded changes are redacted."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import models

from accounts.models import ApiKey, AuditAction, AuditEvent, User

SECRET_WORDS = ("password", "secret", "token", "key_hash", "api_key", "otp", "credential")
REDACTED = "[redacted]"


def redact(changes: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        if any(word in field.lower() for word in SECRET_WORDS):
            clean[field] = REDACTED
        elif isinstance(value, dict):
            clean[field] = redact(value)
        else:
            clean[field] = value
    return clean


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the fields that changed."""
    return {
        field: [before.get(field), value]
        for field, value in after.items()
        if before.get(field) != value
    }


def record(
    action: AuditAction | str,
    *,
    actor: Any = None,
    organization_id: int | None = None,
    target: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Write an audit event in the current transaction (call it from the service)."""
    context = structlog.contextvars.get_contextvars()
    user = actor if isinstance(actor, User) else None
    api_key = getattr(actor, "api_key", None) if not user else None
    if api_key is not None and not isinstance(api_key, ApiKey):
        api_key = None
    label = actor_label or (
        user.email if user else f"api-key:{api_key.prefix}" if api_key else "system"
    )
    if organization_id is None:
        organization_id = getattr(actor, "organization_id", None)
    return AuditEvent.objects.create(
        organization_id=organization_id,
        actor_user=user,
        actor_api_key=api_key,
        actor_label=label[:254],
        action=str(action),
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        changes=redact(changes or {}),
        ip=context.get("ip") or None,
        user_agent=str(context.get("user_agent") or "")[:300],
        request_id=str(context.get("request_id") or "")[:64],
    )
