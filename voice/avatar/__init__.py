"""The talking avatar: one interface (`base.py`), the offline face the page draws itself
(`local.py`) and LiveAvatar in LITE mode (`liveavatar.py`); settings choose.

The avatar never blocks or ends a call: when it cannot start or is lost, the caller
catches AvatarError, tells the learner why in one sentence and goes on with voice only.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from accounts import credentials
from accounts.models import ProviderService
from core.endpoints import check_provider_endpoint
from voice.avatar.base import AvatarConfigurationError, AvatarProvider

if TYPE_CHECKING:
    from voice.avatar.liveavatar import LiveAvatar


def get_avatar_provider(
    organization_id: int | None, *, hosted: bool = False, avatar_id: str = ""
) -> AvatarProvider:
    """The configured avatar: the organization's own key first, then AVATAR_PROVIDER and
    LIVEAVATAR_*; `hosted` (the scenario asks for the video avatar) means LiveAvatar
    whatever AVATAR_PROVIDER says; `avatar_id` (the scenario's) before
    LIVEAVATAR_AVATAR_ID. Blocking (database, DNS): call it off the event loop.

    Raises AvatarConfigurationError when the hosted avatar is chosen but cannot be used
    (no key, no avatar id, an endpoint that fails the provider-endpoint check)."""
    credential = credentials.resolve(organization_id, ProviderService.AVATAR)
    if isinstance(credential, credentials.UnusableKey):
        raise AvatarConfigurationError(credential.reason)
    provider = settings.AVATAR_PROVIDER
    if credential is not None or hosted:
        provider = provider if provider != "local" else "liveavatar"
    if provider == "local":
        from voice.avatar.local import LocalAvatar

        return LocalAvatar()
    if provider == "liveavatar":
        avatar_id = avatar_id or settings.LIVEAVATAR_AVATAR_ID
        if not avatar_id:
            raise AvatarConfigurationError(
                "No LiveAvatar avatar is chosen; an administrator must set LIVEAVATAR_AVATAR_ID."
            )
        return _liveavatar(organization_id, credential, avatar_id)
    raise AvatarConfigurationError(f"Unknown avatar provider {provider!r}.")


def _liveavatar(
    organization_id: int | None, credential: credentials.OrganizationKey | None, avatar_id: str
) -> LiveAvatar:
    api_key, base_url = settings.LIVEAVATAR_API_KEY, settings.LIVEAVATAR_BASE_URL
    if credential is not None:
        api_key, base_url = credential.api_key, credential.base_url or base_url
    if not api_key:
        raise AvatarConfigurationError(
            "The avatar service (LiveAvatar) has no API key; an administrator must set "
            "LIVEAVATAR_API_KEY or the organization's avatar key."
        )
    try:
        check_provider_endpoint(base_url)
    except ValidationError as exc:
        raise AvatarConfigurationError(
            f"The avatar service's endpoint cannot be used: {exc.messages[0]} "
            "An administrator must correct it."
        ) from None
    from voice.avatar.liveavatar import LiveAvatar

    return LiveAvatar(
        api_key=api_key,
        base_url=base_url,
        avatar_id=avatar_id,
        video_quality=settings.LIVEAVATAR_VIDEO_QUALITY,
        is_sandbox=settings.LIVEAVATAR_SANDBOX,
        breaker_scope=f"org{organization_id}" if credential is not None else "",
    )


CHOICES_CACHE_SECONDS = 300


def hosted_avatar_choices(organization_id: int | None) -> list[tuple[str, str]]:
    """(id, label) of the LiveAvatar avatars the organization's key (or the platform's)
    may show, fetched from LiveAvatar and kept for five minutes. Blocking: for the
    scenario form. Raises AvatarError with a sentence a manager can act on."""
    credential = credentials.resolve(organization_id, ProviderService.AVATAR)
    if isinstance(credential, credentials.UnusableKey):
        raise AvatarConfigurationError(credential.reason)
    provider = _liveavatar(organization_id, credential, settings.LIVEAVATAR_AVATAR_ID)
    # Per key and endpoint: a new key shows its own list at once.
    identity = hashlib.sha256(f"{provider.base_url}|{provider.key_hint}".encode()).hexdigest()
    key = f"avatar-choices:{identity[:32]}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    listed = async_to_sync(provider.avatar_choices)()
    choices = [(c.avatar_id, f"{c.name} ({'public' if c.public else 'yours'})") for c in listed]
    cache.set(key, choices, CHOICES_CACHE_SECONDS)
    return choices
