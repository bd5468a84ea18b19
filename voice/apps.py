from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"

    def ready(self) -> None:
        from accounts import access
        from voice.models import VoiceCall

        access.register(VoiceCall, owner="learner_id")
