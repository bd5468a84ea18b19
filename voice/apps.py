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


def _avatar_catalogue(organization_id: int | None) -> list[tuple[str, str]]:
    from training.errors import TrainingError
    from voice.avatar import hosted_avatar_choices
    from voice.avatar.base import AvatarError

    try:
        return hosted_avatar_choices(organization_id)
    except AvatarError as exc:
        raise TrainingError(str(exc)) from None
