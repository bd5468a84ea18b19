"""Voice activity: Silero VAD (v6) as ONNX on onnxruntime, no PyTorch.

The model file ships in the `faster-whisper` wheel (MIT, `faster_whisper/assets`). It reads
32 ms windows (512 samples at 16 kHz, with 64 samples of context) and keeps a recurrent
state, so every call has its own `SpeechDetector`; the ONNX session is shared. About
0.2-0.3 ms of CPU a window alone, but with twenty calls on two cores it was a third of the
event loop's busy time: `feed_off_loop` runs the model on one thread for all calls
(onnxruntime releases the GIL while it runs), so the loop goes on with sockets and turns.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from voice.audio import pcm_to_float

WINDOW = 512  # samples at 16 kHz: 32 ms
WINDOW_MS = 32
_CONTEXT = 64
_session = None
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _thread() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice-vad")
        return _executor


def _model() -> Any:
    global _session
    with _lock:
        if _session is None:
            import faster_whisper
            import onnxruntime

            path = os.path.join(
                os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx"
            )
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            options.log_severity_level = 4
            _session = onnxruntime.InferenceSession(
                path, providers=["CPUExecutionProvider"], sess_options=options
            )
        return _session


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "speech_started", "speech_paused", "speech_resumed" or "speech_stopped"
    at_ms: int  # position in the call's audio where it happened


class SpeechDetector:
    """Feeds 16 kHz PCM in any frame size; reports speech start and stop.

    Speech starts after `start_ms` of windows above `threshold` and stops after `stop_ms`
    below `threshold - 0.15` (hysteresis, as Silero's own iterator does). With `pause_ms`
    (shorter than `stop_ms`), a pause that long is reported on the way ("speech_paused",
    a probable end of turn), and "speech_resumed" if the speech goes on before it stops."""

    def __init__(self, *, threshold: float, start_ms: int, stop_ms: int, pause_ms: int = 0) -> None:
        self.session = _model()
        self.threshold = threshold
        self.start_windows = max(1, start_ms // WINDOW_MS)
        self.stop_windows = max(1, stop_ms // WINDOW_MS)
        self.pause_windows = pause_ms // WINDOW_MS if 0 < pause_ms < stop_ms else 0
        self.state = (
            np.zeros((1, 1, 128), dtype=np.float32),
            np.zeros((1, 1, 128), dtype=np.float32),
        )
        self.context = np.zeros(_CONTEXT, dtype=np.float32)
        self.pending = np.zeros(0, dtype=np.float32)
        self.speaking = False
        self.run = 0  # consecutive windows against the current state
        self.position_ms = 0  # audio consumed so far
        self.last_probability = 0.0
        self.voiced_ms = 0  # of the current (or last) speech: windows at the threshold or above

    def probability(self, window: np.ndarray) -> float:
        batch = np.concatenate([self.context, window])[None, :]
        output, h, c = self.session.run(
            None, {"input": batch, "h": self.state[0], "c": self.state[1]}
        )
        self.state = (h, c)
        self.context = window[-_CONTEXT:]
        return float(np.asarray(output).reshape(-1)[0])

    async def feed_off_loop(self, pcm: bytes) -> list[VadEvent]:
        """`feed`, with the model run on the VAD thread when `pcm` completes a window. The
        caller awaits it before feeding more (a call's frames stay in order)."""
        if len(self.pending) + len(pcm) // 2 < WINDOW:
            return self.feed(pcm)  # no window yet: nothing to run
        return await asyncio.get_running_loop().run_in_executor(_thread(), self.feed, pcm)

    def feed(self, pcm: bytes) -> list[VadEvent]:
        events: list[VadEvent] = []
        self.pending = np.concatenate([self.pending, pcm_to_float(pcm)])
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            self.position_ms += WINDOW_MS
            probability = self.last_probability = self.probability(window)
            if probability >= self.threshold:
                self.voiced_ms += WINDOW_MS
            if not self.speaking:
                self.run = self.run + 1 if probability >= self.threshold else 0
                if self.run >= self.start_windows:
                    self.speaking, self.run = True, 0
                    self.voiced_ms = self.start_windows * WINDOW_MS
                    at = self.position_ms - self.start_windows * WINDOW_MS
                    events.append(VadEvent("speech_started", max(0, at)))
            elif probability >= self.threshold - 0.15:
                if self.pause_windows and self.run >= self.pause_windows:
                    events.append(VadEvent("speech_resumed", self.position_ms - WINDOW_MS))
                self.run = 0
            else:
                self.run += 1
                if self.run == self.pause_windows:
                    events.append(
                        VadEvent("speech_paused", self.position_ms - self.run * WINDOW_MS)
                    )
                if self.run >= self.stop_windows:
                    self.speaking, self.run = False, 0
                    events.append(
                        VadEvent("speech_stopped", self.position_ms - self.stop_windows * WINDOW_MS)
                    )
        return events
