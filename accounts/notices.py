"""Telling an organization's admins about problems only they can fix.

A provider account out of credit or a knowledge-base limit reached: the app that meets
the problem calls `notify_admins`; the admins see a notice on their home page until one
of them dismisses it (or the app resolves it), and get one email per kind a day at most.
Apps above accounts (knowledge, training) call in; accounts knows nothing of them.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts import access
from accounts.access import Actor
from accounts.models import NoticeKind, Organization, OrganizationNotice, Role, User

logger = structlog.get_logger(__name__)

__all__ = ["dismiss_notice", "notify_admins", "open_notices_for", "resolve_notices"]


def _recipients(organization_id: int) -> list[str]:
    """The organization's active admins; its managers when it has no admin."""
    people = User.objects.filter(organization_id=organization_id, is_active=True)
    for roles in ([Role.ADMIN], [Role.MANAGER]):
        emails = list(people.filter(role__in=roles).values_list("email", flat=True))
        if emails:
            return emails
    return []


def _send_email(organization_name: str, notice: OrganizationNotice, to: list[str]) -> None:
    subject = f"AvatarAdam: {notice.get_kind_display()} ({organization_name})"
    body = (
        f"{notice.message}\n\n"
        "This notice is also on your AvatarAdam home page until you dismiss it. You get "
        "at most one email a day about it.\n"
    )
    for address in to:  # one each: admins do not see each other's addresses
        try:
            send_mail(subject, body, None, [address])
        except Exception as exc:  # an unreachable mail server must not fail the caller
            logger.warning("notice_email_failed", notice_id=notice.pk, kind=notice.kind,
                           error=str(exc))  # fmt: skip


def notify_admins(*, organization_id: int, kind: NoticeKind | str, message: str) -> None:
    """Record (or refresh) the organization's open notice of this kind and email its admins
    unless they were emailed about this kind within NOTICE_EMAIL_INTERVAL_HOURS.

    Safe when many workers meet the same problem at once (the organization's row is
    locked while deciding). Commits on its own: call it outside any transaction that is
    about to roll back. The email is sent after the commit; a mail failure is logged.
    """
    now = timezone.now()
    with transaction.atomic():
        organization = (
            Organization.objects.select_for_update(no_key=True).filter(pk=organization_id).first()
        )
        if organization is None:
            return
        notices = OrganizationNotice.objects.filter(organization_id=organization_id, kind=kind)
        notice = notices.filter(closed_at__isnull=True).first()
        if notice is None:
            notice = OrganizationNotice.objects.create(
                organization_id=organization_id, kind=kind, message=message,
                created_at=now, last_seen_at=now,
            )  # fmt: skip
        else:
            notices.filter(pk=notice.pk).update(
                message=message, last_seen_at=now, occurrences=F("occurrences") + 1
            )
            notice.message = message
        interval = timedelta(hours=settings.NOTICE_EMAIL_INTERVAL_HOURS)
        if notices.filter(emailed_at__gt=now - interval).exists():
            return
        recipients = _recipients(organization_id)
        if not recipients:
            return
        OrganizationNotice.objects.filter(pk=notice.pk).update(emailed_at=now)
        name = organization.name
        transaction.on_commit(lambda: _send_email(name, notice, recipients))
    logger.info("organization_notice_emailed", organization_id=organization_id, kind=str(kind))


def resolve_notices(*, organization_id: int, kind: NoticeKind | str) -> int:
    """Close the organization's open notice of this kind: the problem went away."""
    return OrganizationNotice.objects.filter(
        organization_id=organization_id, kind=kind, closed_at__isnull=True
    ).update(closed_at=timezone.now())


def open_notices_for(user: Actor) -> QuerySet[OrganizationNotice]:
    """The open notices an organization admin sees on their home page (none for others)."""
    if not access.is_org_admin(user) or not getattr(user, "organization_id", None):
        return OrganizationNotice.objects.none()
    mine = OrganizationNotice.objects.filter(
        organization_id=user.organization_id, closed_at__isnull=True
    )
    return access.scope(user, mine)


def dismiss_notice(*, actor: Actor, kind: str) -> int:
    """An organization admin dismisses their organization's open notice of this kind.
    Raises PermissionDenied for anyone else."""
    if not access.is_org_admin(actor) or not getattr(actor, "organization_id", None):
        raise PermissionDenied("Only organization admins can dismiss notices.")
    return (
        open_notices_for(actor)
        .filter(kind=kind)
        .update(closed_at=timezone.now(), closed_by=actor if getattr(actor, "pk", None) else None)
    )
