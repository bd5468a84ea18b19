"""Celery entry points of the voice app: load ids, call a service, idempotent."""

from __future__ import annotations

from celery import shared_task

from voice.avatar import usage


@shared_task(name="voice.sweep_avatar_sessions", acks_late=True)
def sweep_avatar_sessions() -> int:
    """Stop hosted avatar sessions no live call keeps (beat, maintenance queue)."""
    return usage.sweep()
