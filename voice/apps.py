from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"

    def ready(self) -> None:
        from accounts import access
        from voice import schema_examples  # noqa: F401 - registers API examples
        from voice.models import AvatarSession, VoiceCall

        access.register(VoiceCall, owner="learner_id")
        access.register(AvatarSession, owner="session__learner_id")

        from training.voices import register_avatar_catalogue, register_catalogue
        from voice.tts import voice_catalogue

        register_catalogue(voice_catalogue)
        register_avatar_catalogue(_avatar_catalogue)

        from django.conf import settings

        from accounts import connection_tests
        from accounts.models import ProviderService
        from core.connection_check import openai_compatible

        connection_tests.register(
            ProviderService.SPEECH_TO_TEXT, openai_compatible(settings.VOICE_STT_BASE_URL)
        )
        connection_tests.register(ProviderService.TEXT_TO_SPEECH, _elevenlabs_check)
        connection_tests.register(ProviderService.AVATAR, _liveavatar_check)


def _elevenlabs_check(api_key: str, base_url: str) -> str:
    from django.conf import settings

    from core.connection_check import http_check

    url = (base_url or settings.VOICE_TTS_BASE_URL).rstrip("/") + "/v1/models"
    return http_check(
        url, {"xi-api-key": api_key, "Accept": "application/json"},
        lambda body: f"Connected: the key works and {len(body)} speech models are available.",
        secret=api_key,
    )  # fmt: skip


def _liveavatar_check(api_key: str, base_url: str) -> str:
    from django.conf import settings

    from core.connection_check import http_check

    url = (base_url or settings.LIVEAVATAR_BASE_URL).rstrip("/") + "/v1/avatars?page=1&page_size=1"
    return http_check(
        url, {"X-API-KEY": api_key, "Accept": "application/json"},
        lambda body: f"Connected: the key works and its account has "
        f"{body['data']['count']} avatars of its own.",
        secret=api_key,
    )  # fmt: skip


def _avatar_catalogue(organization_id: int | None) -> list[tuple[str, str]]:
    from training.errors import TrainingError
    from voice.avatar import hosted_avatar_choices
    from voice.avatar.base import AvatarError

    try:
        return hosted_avatar_choices(organization_id)
    except AvatarError as exc:
        raise TrainingError(str(exc)) from None
