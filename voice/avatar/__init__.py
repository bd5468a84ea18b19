"""The talking avatar: one interface (`base.py`), the offline face the page draws itself
(`local.py`) and LiveAvatar in LITE mode (`liveavatar.py`); settings choose.

The avatar never blocks or ends a call: when it cannot start or is lost, the caller
catches AvatarError, tells the learner why in one sentence and goes on with voice only.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from accounts import credentials
from accounts.models import ProviderService
from core.endpoints import check_provider_endpoint
from voice.avatar.base import AvatarConfigurationError, AvatarProvider


def get_avatar_provider(organization_id: int | None, *, hosted: bool = False) -> AvatarProvider:
    """The configured avatar: the organization's own key first, then AVATAR_PROVIDER and
    LIVEAVATAR_*; `hosted` (the scenario asks for the video avatar) means LiveAvatar
    whatever AVATAR_PROVIDER says. Blocking (database, DNS): call it off the event loop.

    Raises AvatarConfigurationError when the hosted avatar is chosen but cannot be used
    (no key, no avatar id, an endpoint that fails the provider-endpoint check)."""
    credential = credentials.resolve(organization_id, ProviderService.AVATAR)
    if isinstance(credential, credentials.UnusableKey):
        raise AvatarConfigurationError(credential.reason)
    provider = settings.AVATAR_PROVIDER
    api_key = settings.LIVEAVATAR_API_KEY
    base_url = settings.LIVEAVATAR_BASE_URL
    if credential is not None or hosted:
        provider = provider if provider != "local" else "liveavatar"
    if credential is not None:
        api_key, base_url = credential.api_key, credential.base_url or base_url
    if provider == "local":
        from voice.avatar.local import LocalAvatar

        return LocalAvatar()
    if provider == "liveavatar":
        if not api_key:
            raise AvatarConfigurationError(
                "The avatar service (LiveAvatar) has no API key; an administrator must set "
                "LIVEAVATAR_API_KEY or the organization's avatar key."
            )
        if not settings.LIVEAVATAR_AVATAR_ID:
            raise AvatarConfigurationError(
                "No LiveAvatar avatar is chosen; an administrator must set LIVEAVATAR_AVATAR_ID."
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
            avatar_id=settings.LIVEAVATAR_AVATAR_ID,
            video_quality=settings.LIVEAVATAR_VIDEO_QUALITY,
            is_sandbox=settings.LIVEAVATAR_SANDBOX,
            breaker_scope=f"org{organization_id}" if credential is not None else "",
        )
    raise AvatarConfigurationError(f"Unknown avatar provider {provider!r}.")
