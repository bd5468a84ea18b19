"""Hosted avatar sessions as the database sees them: who may open one (the organization's
cap on sessions at once and its monthly minutes), the minutes each uses, and the sweeper
that ends the ones a lost process left open at the provider.

The offline face costs nothing and is not recorded. A hosted face is billed by the
provider per minute, so every one is a row from before it is opened until the provider
confirms it stopped (or the sweeper gives up on it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import Organization
from voice.avatar import get_avatar_provider
from voice.calls import month_start
from voice.models import AvatarSession, VoiceCall

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AvatarRefusal:
    """Why this call gets no hosted face (a sentence for the learner)."""

    message: str


def minutes_used(organization_id: int) -> float:
    """Hosted avatar minutes the organization used this calendar month."""
    seconds = (
        AvatarSession.objects.filter(
            organization_id=organization_id, started_at__gte=month_start()
        ).aggregate(total=Sum("seconds"))["total"]
        or 0
    )
    return seconds / 60


def _open_sessions(organization_id: int) -> QuerySet[AvatarSession]:
    live_after = timezone.now() - timedelta(seconds=settings.AVATAR_IDLE_SECONDS)
    return AvatarSession.objects.filter(
        organization_id=organization_id, ended_at__isnull=True, last_seen_at__gte=live_after
    )


def reserve(call_id: int, provider: str) -> AvatarSession | AvatarRefusal:
    """A row for a hosted avatar about to be opened for this call, or why not: the
    organization's sessions at once (`avatar_sessions_limit`) or this month's minutes
    (`avatar_minutes_per_month`) are used up."""
    with transaction.atomic():
        call = VoiceCall.objects.select_related("organization").get(pk=call_id)
        # One reservation at a time per organization, so two calls cannot both take the
        # last place.
        organization = Organization.objects.select_for_update().get(pk=call.organization_id)
        limit = organization.avatar_sessions_limit
        if limit is not None and _open_sessions(organization.pk).count() >= limit:
            return AvatarRefusal(
                f"Your organization's {limit} video avatar session(s) are all in use; this "
                "call goes on with voice and the page's own face."
            )
        budget = organization.avatar_minutes_per_month
        if budget is not None and minutes_used(organization.pk) >= budget:
            return AvatarRefusal(
                "Your organization has used this month's video avatar minutes; this call "
                "goes on with voice and the page's own face."
            )
        return AvatarSession.objects.create(
            organization=organization,
            session_id=call.session_id,
            call=call,
            provider=provider,
        )


def opened(avatar_id: int, provider_session_id: str) -> None:
    AvatarSession.objects.filter(pk=avatar_id).update(
        provider_session_id=provider_session_id[:200], last_seen_at=timezone.now()
    )


def record(avatar_id: int, *, seconds: float) -> AvatarRefusal | None:
    """Count the avatar's minutes so far; a refusal when the month's minutes ran out
    during this call (the face stops, the call goes on)."""
    AvatarSession.objects.filter(pk=avatar_id, ended_at__isnull=True).update(
        seconds=seconds, last_seen_at=timezone.now()
    )
    avatar = AvatarSession.objects.select_related("organization").get(pk=avatar_id)
    budget = avatar.organization.avatar_minutes_per_month
    if budget is not None and minutes_used(avatar.organization_id) >= budget:
        return AvatarRefusal(
            "Your organization has used this month's video avatar minutes; the call goes "
            "on with voice and the page's own face."
        )
    return None


def end(avatar_id: int, *, seconds: float, reason: str) -> None:
    """The avatar session ended (a session already ended keeps its first reason)."""
    AvatarSession.objects.filter(pk=avatar_id, ended_at__isnull=True).update(
        ended_at=timezone.now(), seconds=seconds, ended_reason=reason[:200]
    )


def sweep() -> int:
    """End avatar sessions no live call keeps (their process was lost), and sessions the
    platform's provider account still lists that no open row knows: stop them at the
    provider (each is billed until its own idle timeout), then mark them ended. Returns
    how many were stopped or ended."""
    stale_before = timezone.now() - timedelta(seconds=settings.AVATAR_IDLE_SECONDS)
    stale = list(AvatarSession.objects.filter(ended_at__isnull=True, last_seen_at__lt=stale_before))
    for avatar in stale:
        if avatar.provider_session_id:
            _stop_at_provider(avatar.organization_id, avatar.provider_session_id)
        seconds = (avatar.last_seen_at - avatar.started_at).total_seconds()
        end(avatar.pk, seconds=max(avatar.seconds, seconds), reason="ended by the sweeper")
    return len(stale) + _stop_unknown()


def _stop_at_provider(organization_id: int | None, session_id: str) -> bool:
    try:
        provider = get_avatar_provider(organization_id)
        stop = getattr(provider, "stop_session", None)
        if stop is None:
            return False
        asyncio.run(stop(session_id))
        return True
    except Exception:  # marked ended anyway: the provider's own idle timeout ends it
        logger.warning("avatar_sweep_stop_failed", session_id=session_id, exc_info=True)
        return False


def _stop_unknown() -> int:
    """Sessions the platform key's account lists as active that no open row knows (the
    key must belong to this installation alone)."""
    try:
        provider = get_avatar_provider(None)
        listing = getattr(provider, "active_session_ids", None)
        if listing is None:
            return 0
        listed = asyncio.run(listing())
    except Exception:
        logger.warning("avatar_sweep_list_failed", exc_info=True)
        return 0
    if AvatarSession.objects.filter(ended_at__isnull=True, provider_session_id="").exists():
        return 0  # one is being opened: its id is not known yet (next round)
    known = set(
        AvatarSession.objects.filter(ended_at__isnull=True).values_list(
            "provider_session_id", flat=True
        )
    )
    unknown = [session_id for session_id in listed if session_id not in known]
    return sum(_stop_at_provider(None, session_id) for session_id in unknown)
