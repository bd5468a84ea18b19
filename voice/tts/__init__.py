"""Text-to-speech: one interface, a local default (Piper) and ElevenLabs; settings choose.

A call opens one `SpeechSynthesis` (hosted: one connection kept warm for the call) and
asks it for each clause as soon as the clause is complete. Audio comes back as 16-bit
little-endian mono PCM at `OUTPUT_SAMPLE_RATE`, in pieces as it is made; closing the
iterator early (barge-in) stops that clause's synthesis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from accounts import credentials
from accounts.models import ProviderService
from voice.errors import SpeechProviderError

OUTPUT_SAMPLE_RATE = 24_000  # what the client (and LiveAvatar) is sent


@dataclass(frozen=True)
class Voice:
    id: str
    label: str


class SpeechSynthesis(Protocol):
    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """PCM at OUTPUT_SAMPLE_RATE for one clause. Raises SpeechProviderError."""

    async def close(self) -> None:
        """Release the connection (idempotent)."""


class TextToSpeech(Protocol):
    model_id: str

    def voices(self) -> list[Voice]:
        """The voices a scenario may choose from."""

    async def open(self, voice_id: str) -> SpeechSynthesis:
        """A synthesis for one call. Raises SpeechProviderError if it cannot open."""


def voice_catalogue() -> list[tuple[str, str]]:
    """The configured provider's voices as (id, label), without loading a model."""
    if settings.VOICE_TTS_PROVIDER == "elevenlabs":
        from voice.tts.elevenlabs import VOICES
    else:
        from voice.tts.local import VOICES
    return [(voice.id, voice.label) for voice in VOICES]


def get_text_to_speech(organization_id: int | None) -> TextToSpeech:
    """The configured synthesiser: the organization's own key first, then VOICE_TTS_*."""
    credential = credentials.resolve(organization_id, ProviderService.TEXT_TO_SPEECH)
    if isinstance(credential, credentials.UnusableKey):
        raise SpeechProviderError(credential.reason)
    provider = settings.VOICE_TTS_PROVIDER
    api_key = settings.VOICE_TTS_API_KEY
    base_url = settings.VOICE_TTS_BASE_URL
    if credential is not None:
        provider = provider if provider != "local" else "elevenlabs"
        api_key, base_url = credential.api_key, credential.base_url or base_url
    if provider == "local":
        from voice.tts.local import PiperSpeech

        return PiperSpeech.shared()
    if provider == "elevenlabs":
        from voice.tts.elevenlabs import ElevenLabsSpeech

        return ElevenLabsSpeech(api_key=api_key, base_url=base_url)
    raise SpeechProviderError(f"Unknown text-to-speech provider {provider!r}.")
