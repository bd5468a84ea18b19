"""Speech-to-text: one interface, a local default and hosted clients; settings choose.

A call opens one `TranscriptionStream`. The pipeline sends it every frame of the
learner's speech in order and calls `finish_segment()` at each pause (VAD stop), so a
segment is transcribed while the learner may still be talking and only the last segment
is left at the end of the turn. `on_partial` receives growing text of the current
segment where the provider streams deltas (the local model has no partials).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from django.conf import settings

from accounts import credentials
from accounts.models import ProviderService
from voice.errors import SpeechProviderError

SAMPLE_RATE = 16_000  # what the pipeline sends: 16-bit little-endian mono PCM

PartialCallback = Callable[[str], Awaitable[None]]


class TranscriptionStream(Protocol):
    async def send_audio(self, pcm: bytes) -> None:
        """Append 16 kHz PCM of the current speech segment (frames in order)."""

    async def finish_segment(self) -> str:
        """The final text of the audio sent since the last finish ("" for none).

        Raises SpeechProviderError when the provider fails or times out."""

    async def close(self) -> None:
        """Release the connection (idempotent)."""


class SpeechToText(Protocol):
    model_id: str

    async def open(self, on_partial: PartialCallback | None = None) -> TranscriptionStream:
        """A stream for one call. Raises SpeechProviderError if it cannot open."""


def get_speech_to_text(organization_id: int | None) -> SpeechToText:
    """The configured recogniser: the organization's own key first, then VOICE_STT_*."""
    credential = credentials.resolve(organization_id, ProviderService.SPEECH_TO_TEXT)
    if isinstance(credential, credentials.UnusableKey):
        raise SpeechProviderError(credential.reason)
    provider = settings.VOICE_STT_PROVIDER
    api_key = settings.VOICE_STT_API_KEY
    base_url = settings.VOICE_STT_BASE_URL
    if credential is not None:
        provider = provider if provider != "local" else "openai-realtime"
        api_key, base_url = credential.api_key, credential.base_url or base_url
    if provider == "local":
        from voice.stt.local import LocalWhisper

        return LocalWhisper.shared()
    from voice.stt import openai as hosted

    if provider == "openai-realtime":
        return hosted.RealtimeTranscription(api_key=api_key, base_url=base_url)
    if provider == "openai-http":
        return hosted.HttpTranscription(api_key=api_key, base_url=base_url)
    raise SpeechProviderError(f"Unknown speech-to-text provider {provider!r}.")
