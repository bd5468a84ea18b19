from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"

    def ready(self) -> None:
        from accounts import access
        from voice import schema_examples  # noqa: F401 - registers API examples
        from voice.models import AvatarSession, VoiceCall

        access.register(VoiceCall, owner="learner_id")
        access.register(AvatarSession, owner="session__learner_id")

        from training.voices import register_catalogue
        from voice.tts import voice_catalogue

        register_catalogue(voice_catalogue)
