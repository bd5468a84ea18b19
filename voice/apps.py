from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"

    def ready(self) -> None:
        from accounts import access
        from voice import schema_examples  # noqa: F401 - registers API examples
        from voice.models import VoiceCall

        access.register(VoiceCall, owner="learner_id")
