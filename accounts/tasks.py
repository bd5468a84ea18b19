"""Celery entry points of accounts: audit-log retention."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction, AuditEvent


@shared_task(name="accounts.purge_audit_events", acks_late=True)
def purge_audit_events() -> int:
    """Remove events older than AUDIT_RETENTION_DAYS, and record that the job ran."""
    cutoff = timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL avatar_adam.audit_retention = 'on'")
        deleted, _ = AuditEvent.objects.filter(created_at__lt=cutoff).delete()
        audit.record(
            AuditAction.RETENTION_RAN,
            actor_label="retention job",
            changes={"deleted": deleted, "older_than_days": settings.AUDIT_RETENTION_DAYS},
        )
    return deleted
