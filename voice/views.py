"""Pages of the voice app: a scenario voice's preview for the managers choosing it."""

from __future__ import annotations

import asyncio

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from accounts import access
from accounts.throttling import hit_rate_limit
from core.errors import Refused
from training.voices import voice_choices
from voice.audio import wav_bytes
from voice.errors import SpeechProviderError
from voice.tts import OUTPUT_SAMPLE_RATE, TextToSpeech, get_text_to_speech

SAMPLE = "Hello, thanks for making the time today. What would you like to talk about?"


async def _render(speech: TextToSpeech, voice_id: str) -> bytes:
    synthesis = await speech.open(voice_id)
    try:
        return b"".join([pcm async for pcm in synthesis.synthesize(SAMPLE)])
    finally:
        await synthesis.close()


@login_required
@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    """A WAV of a sample line in the voice `?voice=` (managers; 10 a minute)."""
    if not access.is_manager(request.user):
        raise Refused("Only managers choose scenario voices.", status=403)
    voice_id = request.GET.get("voice", "")
    if voice_id not in {choice for choice, _ in voice_choices()}:
        raise Refused("Choose a voice from the list.", status=400)
    if not hit_rate_limit("voice-preview", request.user.pk, limit=10, window_seconds=60):
        raise Refused("Too many previews at once; wait a minute.", status=429)
    try:
        speech = get_text_to_speech(request.user.organization_id)
        pcm = asyncio.run(_render(speech, voice_id))
    except SpeechProviderError as exc:
        raise Refused(f"The voice could not be previewed: {exc}", status=503) from exc
    response = HttpResponse(wav_bytes(pcm, OUTPUT_SAMPLE_RATE), content_type="audio/wav")
    response["Content-Disposition"] = f'inline; filename="voice-{voice_id}.wav"'
    return response
