"""Speech providers for the voice benchmarks, and the hook that puts them in a Daphne.

Two kinds, both speaking the pipeline's provider protocols (voice/stt, voice/tts):

- **instant** (`bench/voice_sessions.py`): a recogniser that returns a fixed sentence the
  moment a segment ends, and a synthesiser that returns `BENCH_TONE_MS_PER_CLAUSE` of a
  tone per clause at once. Provider time is zero, so what is left of a turn's latency is
  the server's own.
- **simulated** (`bench/voice_latency.py`): the same, delayed as hosted providers are
  published to be: partials while the learner talks (the whole sentence once
  `BENCH_STT_PARTIAL_LAG_MS`, 100, of silence followed its last word, as a streaming
  recogniser's interim result catches up) and the final transcript `BENCH_STT_FINAL_MS`
  (250) after the end of speech (or after the segment is committed, `BENCH_STT_FROM=commit`,
  with no catching up: a commit-based recogniser transcribes only then); the first audio
  of a clause `BENCH_TTS_FIRST_AUDIO_MS` (120) after it is asked for, the rest streamed
  faster than real time.

`install()` swaps the factories the consumer calls (`voice.consumers.get_speech_to_text`
/ `get_text_to_speech`, imported there by name, and their originals in voice.stt /
voice.tts) in this process only; `BENCH_VOICE_PROVIDERS=real` leaves them alone. No SDK
is patched. It also instruments the turn for measurement only (`_instrument`): the
end-of-turn model's time and verdict, and the steps between the final transcript and the
first token (the draft's prompt, storing the turn, the reply's preparation, the first
publish), added to each turn's `timings_ms` as `bench_*` keys; and `watch_event_loop`
records how late Daphne's event loop wakes. Nothing the pipeline does changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

OUTPUT_RATE = 24_000
INPUT_RATE = 16_000
TRANSCRIPT = os.environ.get(
    "BENCH_TRANSCRIPT", "Hello Dana, I wanted to ask about the price of your support plan."
)
VOICED_RMS = 300  # 16-bit PCM: above this a 20 ms frame counts as speech (Piper: 2-8k)


def tone(milliseconds: float, frequency: float = 220.0) -> bytes:
    """A soft sine at OUTPUT_RATE, 16-bit mono."""
    count = int(OUTPUT_RATE * milliseconds / 1000)
    samples = 0.2 * np.sin(2 * math.pi * frequency * np.arange(count) / OUTPUT_RATE)
    return (samples * 32767).astype("<i2").tobytes()


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


# --- speech to text -------------------------------------------------------------------


class _Stream:
    def __init__(self, owner: FakeSpeechToText, on_partial: Any) -> None:
        self.owner = owner
        self.on_partial = on_partial
        self.voiced_ms = 0.0
        self.partial_at_ms = 0.0
        self.last_voiced_at: float | None = None
        self.caught_up = False  # the whole sentence was given as a partial
        self.tasks: set[asyncio.Task[Any]] = set()

    async def send_audio(self, pcm: bytes) -> None:
        if not self.owner.simulated:
            return
        if _rms(pcm) >= VOICED_RMS:
            self.last_voiced_at = time.monotonic()
            self.voiced_ms += len(pcm) / 2 / INPUT_RATE * 1000
        elif (
            self.on_partial is not None
            and self.last_voiced_at is not None
            and not self.caught_up
            and self.owner.partial_lag_ms > 0
            and not self.owner.from_commit
            and time.monotonic() - self.last_voiced_at >= self.owner.partial_lag_ms / 1000
        ):
            # A streaming recogniser's interim result catches up with the last word once
            # it has heard a little silence after it; the final still comes at final_ms.
            self.caught_up = True
            task = asyncio.ensure_future(self.on_partial(TRANSCRIPT))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        if _rms(pcm) >= VOICED_RMS:
            self.caught_up = False
        if self.on_partial is not None and self.voiced_ms - self.partial_at_ms >= 300:
            # A streaming provider's delta: a growing prefix of what will be the final.
            self.partial_at_ms = self.voiced_ms
            words = TRANSCRIPT.split()
            shown = " ".join(words[: max(1, min(len(words) - 1, int(self.voiced_ms / 300)))])
            task = asyncio.ensure_future(self.on_partial(shown))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def finish_segment(self) -> str:
        if self.owner.simulated:
            now = time.monotonic()
            since = (
                now
                if self.owner.from_commit or self.last_voiced_at is None
                else (self.last_voiced_at)
            )
            wait = since + self.owner.final_ms / 1000 - now
            if wait > 0:
                await asyncio.sleep(wait)
        self.voiced_ms = self.partial_at_ms = 0.0
        self.last_voiced_at = None
        self.caught_up = False
        return TRANSCRIPT

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class FakeSpeechToText:
    def __init__(self, *, simulated: bool) -> None:
        self.simulated = simulated
        self.model_id = "bench simulated STT" if simulated else "bench instant STT"
        self.final_ms = float(os.environ.get("BENCH_STT_FINAL_MS", "250"))
        self.from_commit = os.environ.get("BENCH_STT_FROM", "speech_end") == "commit"
        # Interim text covers the whole sentence this long after its last word (0: never).
        self.partial_lag_ms = float(os.environ.get("BENCH_STT_PARTIAL_LAG_MS", "100"))

    async def open(self, on_partial: Any = None) -> _Stream:
        return _Stream(self, on_partial)


# --- text to speech -------------------------------------------------------------------


class _Synthesis:
    def __init__(self, owner: FakeTextToSpeech) -> None:
        self.owner = owner

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        owner = self.owner
        if not owner.simulated:
            yield owner.clause_audio
            return
        # ~200 words a minute; the first 100 ms after the provider's first-audio latency,
        # the rest in 100 ms pieces every 20 ms (5x real time).
        audio = tone(max(1, len(text.split())) * 300)
        piece = OUTPUT_RATE * 2 // 10
        await asyncio.sleep(owner.first_audio_ms / 1000)
        for start in range(0, len(audio), piece):
            if start:
                await asyncio.sleep(0.02)
            yield audio[start : start + piece]

    async def close(self) -> None:
        return None


class FakeTextToSpeech:
    def __init__(self, *, simulated: bool) -> None:
        self.simulated = simulated
        self.model_id = "bench simulated TTS" if simulated else "bench instant TTS"
        self.clause_audio = tone(float(os.environ.get("BENCH_TONE_MS_PER_CLAUSE", "600")))
        self.first_audio_ms = float(os.environ.get("BENCH_TTS_FIRST_AUDIO_MS", "120"))

    def voices(self) -> list[Any]:
        return []

    async def open(self, voice_id: str) -> _Synthesis:
        return _Synthesis(self)


# --- the hook -------------------------------------------------------------------------

# One record per end-of-turn decision. The decision task's context is copied into the
# turn, reply and sender tasks it starts and into the threads they use (to_thread,
# sync_to_async), so everything the turn does can write here and `_timings` reads it.
_decision: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "bench_decision", default=None
)


def _record() -> dict[str, Any] | None:
    return _decision.get()


def _timed_sync(function: Any, name: str) -> Any:
    """`function` (run on a database thread) noting when it ran and whether it had to
    open a database connection first."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        from django.db import connection

        record = _record()
        if record is not None:
            record[f"{name}_start"] = time.monotonic()
            record[f"{name}_connect"] = connection.connection is None
        try:
            return function(*args, **kwargs)
        finally:
            if record is not None:
                record[f"{name}_end"] = time.monotonic()

    return timed


def _instrument() -> None:
    """Measurement only: time the end-of-turn model and the steps between the final
    transcript and the first token, and add them to each turn's `timings_ms` (keys
    `bench_*`). The pipeline's behaviour is unchanged."""
    from training import sessions, streaming, turns
    from voice import pipeline

    model = pipeline.completion_probability
    decide = pipeline.Conversation._decide_end_of_turn
    timings = pipeline.Conversation._timings
    send = streaming.ReplyPublisher.send

    def timed_model(audio: bytes) -> float:
        started = time.perf_counter()
        probability = model(audio)
        record = _record()
        if record is not None:
            record["model_ms"] = (time.perf_counter() - started) * 1000
            record["probability"] = probability
        return probability

    async def timed_decide(self: Any) -> None:
        _decision.set({})
        await decide(self)

    async def timed_send(self: Any, kind: str, **data: Any) -> None:
        await send(self, kind, **data)
        record = _record()
        if record is not None and f"sent_{kind}" not in record:
            record[f"sent_{kind}"] = time.monotonic()

    def ms(record: dict[str, Any], start: str, end: str) -> float | None:
        if start in record and end in record:
            return round((record[end] - record[start]) * 1000, 1)
        return None

    def timings_with_instruments(reply: Any) -> dict[str, Any]:
        result = timings(reply)
        record = _record()
        if not record:
            return result
        if "model_ms" in record:
            result["bench_end_of_turn_model_ms"] = round(record["model_ms"], 1)
            result["bench_end_of_turn_probability"] = round(record["probability"], 3)
        record = {**record, **{k: v for k, v in reply.timings.items() if k != "recorded"}}
        steps = {
            # before the decision: the draft reply's prompt (turns._prepare_draft)
            "final_to_draft_prompt_start": ("final", "draft_start"),
            "draft_prompt": ("draft_start", "draft_end"),
            # after it: storing the turn, the reply's own preparation, the first publish
            "decided_to_turn_stored_start": ("decided", "post_start"),  # a DB thread free
            "turn_stored": ("post_start", "post_end"),  # post_voice_turn itself
            "stored_to_prepare_start": ("post_end", "prepare_start"),
            "prepare": ("prepare_start", "prepare_end"),  # turns._prepare itself
            "prepare_to_start_published": ("prepare_end", "sent_start"),
            "start_published_to_first_token": ("sent_start", "first_token"),
        }
        for name, (start, end) in steps.items():
            value = ms(record, start, end)
            if value is not None:
                result[f"bench_{name}_ms"] = value
        connects = [record.get(k) for k in ("draft_connect", "post_connect", "prepare_connect")]
        result["bench_new_db_connections"] = sum(1 for c in connects if c)
        return result

    pipeline.completion_probability = timed_model
    pipeline.Conversation._decide_end_of_turn = timed_decide
    pipeline.Conversation._timings = staticmethod(timings_with_instruments)
    streaming.ReplyPublisher.send = timed_send
    sessions.post_voice_turn = _timed_sync(sessions.post_voice_turn, "post")
    turns._prepare = _timed_sync(turns._prepare, "prepare")
    if hasattr(turns, "_prepare_draft"):
        turns._prepare_draft = _timed_sync(turns._prepare_draft, "draft")


def watch_event_loop(loop: asyncio.AbstractEventLoop, path: str) -> None:
    """Measure how late `loop` wakes from a 10 ms sleep; every 5 s append a line of
    JSON to `path`: [wall time, wake-ups, p50, p99, max, over 50 ms, over 100 ms]."""

    async def watch() -> None:
        lags: list[float] = []
        flushed = time.monotonic()
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic() - started - 0.01) * 1000)
            if time.monotonic() - flushed >= 5:
                lags.sort()
                line = [
                    time.time(), len(lags), lags[len(lags) // 2], lags[int(len(lags) * 0.99)],
                    lags[-1], sum(1 for v in lags if v > 50), sum(1 for v in lags if v > 100),
                ]  # fmt: skip
                with open(path, "a") as file:
                    file.write(json.dumps([round(v, 2) for v in line]) + "\n")
                lags, flushed = [], time.monotonic()

    loop.call_soon(lambda: loop.create_task(watch()))


def skip_connection_cleanup_on_audio() -> None:
    """Diagnostic only (BENCH_SKIP_FRAME_CLEANUP=1, never in the figures reported as the
    pipeline's): Channels' `AsyncConsumer.dispatch` runs `close_old_connections` on the
    one thread-sensitive thread before every message, so every audio frame of every call
    queues behind all the process's database work. This lets audio frames skip that hop
    (the consumer does no database work for them), to measure what it costs."""
    from voice.consumers import VoiceConsumer

    dispatch = VoiceConsumer.dispatch

    async def audio_without_cleanup(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.receive" and message.get("bytes") is not None:
            await self.websocket_receive(message)
            return
        await dispatch(self, message)

    VoiceConsumer.dispatch = audio_without_cleanup


def install(kind: str) -> None:
    """Use `kind` ("instant", "simulated" or "real") providers in this process."""
    _instrument()
    if os.environ.get("BENCH_SKIP_FRAME_CLEANUP") == "1":
        skip_connection_cleanup_on_audio()
    if kind == "real":
        return
    if kind not in ("instant", "simulated"):
        raise SystemExit(f"BENCH_VOICE_PROVIDERS must be instant, simulated or real, not {kind!r}")
    from voice import consumers, stt, tts

    simulated = kind == "simulated"
    speech_to_text = FakeSpeechToText(simulated=simulated)
    text_to_speech = FakeTextToSpeech(simulated=simulated)

    def get_speech_to_text(organization_id: int | None) -> FakeSpeechToText:
        return speech_to_text

    def get_text_to_speech(organization_id: int | None) -> FakeTextToSpeech:
        return text_to_speech

    for module in (consumers, stt):
        module.get_speech_to_text = get_speech_to_text
    for module in (consumers, tts):
        module.get_text_to_speech = get_text_to_speech
