"""Load the offline voice models when a web process starts, not on the first call (about
3 s of CPU: faster-whisper, Piper, Silero VAD, smart-turn)."""

from __future__ import annotations

import threading

import structlog
from django.conf import settings

logger = structlog.get_logger(__name__)


def _load() -> None:
    try:
        from voice import end_of_turn, vad

        vad._model()
        end_of_turn._model()
        if settings.VOICE_STT_PROVIDER == "local":
            from voice.stt.local import LocalWhisper

            LocalWhisper.shared()
        if settings.VOICE_TTS_PROVIDER == "local":
            from voice.tts.local import PiperSpeech

            PiperSpeech.shared()
        logger.info("voice_models_loaded")
    except Exception:  # a call will try again, and say what failed
        logger.exception("voice_models_failed")


def warm_up_in_background() -> None:
    if settings.VOICE_PRELOAD:
        threading.Thread(target=_load, name="voice-warmup", daemon=True).start()
