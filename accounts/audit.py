"""The audit log: `record()` writes one event inside the caller's transaction, so a change
that rolls back leaves no event and a committed change always has one. Secrets in the
recorded changes are redacted.

The vocabulary is registered by the app that owns each action, from its
`AppConfig.ready()`, the way models register with the access policy:

    audit.register_actions({"document.uploaded": "Document uploaded", ...})

It is not a database choice list, so adding an action needs no migration. Recording an
action nobody registered is a programming error, not a silent new word in the log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import structlog
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from accounts.models import ApiKey, AuditAction, AuditEvent, User

SECRET_WORDS = ("password", "secret", "token", "key_hash", "api_key", "otp", "credential")
REDACTED = "[redacted]"


ACTION_FORMAT = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")  # subject.event

_actions: dict[str, str] = {}


def register_actions(actions: Mapping[str, str]) -> None:
    """Declare audit actions (code -> the label people read) that an app records.

    Raises ImproperlyConfigured for a code that is not "subject.event", does not fit
    AuditEvent.action, or is already registered with another label (two apps claiming
    one word).
    """
    max_length = AuditEvent._meta.get_field("action").max_length
    for action, label in actions.items():
        code = str(action)
        if not ACTION_FORMAT.match(code) or len(code) > max_length:
            raise ImproperlyConfigured(
                f"Audit action {code!r} must look like 'subject.event' (lower case) and be "
                f"at most {max_length} characters."
            )
        known = _actions.get(code)
        if known is not None and known != str(label):
            raise ImproperlyConfigured(
                f"Audit action {code!r} is already registered as {known!r}; "
                f"it cannot also mean {str(label)!r}."
            )
        _actions[code] = str(label)


def registered_actions() -> dict[str, str]:
    """Every registered action and its label."""
    return dict(_actions)


def action_choices() -> list[tuple[str, str]]:
    """(code, label) pairs for filters, ordered by label."""
    return sorted(_actions.items(), key=lambda item: (item[1].lower(), item[0]))


def action_label(action: str) -> str:
    """The registered label; an event of an action no longer registered shows its code."""
    return _actions.get(action, action)


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
    """Write an audit event in the current transaction (call it from the service).

    Raises ImproperlyConfigured for an action no app registered.
    """
    action = str(action)
    if action not in _actions:
        raise ImproperlyConfigured(
            f"Audit action {action!r} is not registered; register it with "
            "accounts.audit.register_actions() in its app's AppConfig.ready()."
        )
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
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        changes=redact(changes or {}),
        ip=context.get("ip") or None,
        user_agent=str(context.get("user_agent") or "")[:300],
        request_id=str(context.get("request_id") or "")[:64],
    )
