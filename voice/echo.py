"""Is the microphone hearing the persona's own voice? A server-side guard behind the
browser's echo canceller (which covers WebRTC playback only, and is absent on some
speakerphones and API clients).

The reply audio sent in the last seconds is kept at 16 kHz; a stretch of "learner speech"
during playback that is mostly a delayed, quieter copy of it (high normalised cross-
correlation somewhere in that window) is echo, and never interrupts the reply. Speech of
the learner's own mixed over the echo correlates far less, so a real barge-in still
counts. One FFT correlation of ~2 s against 256 ms: about 1 ms of CPU.
"""

from __future__ import annotations

import numpy as np

from voice.audio import INPUT_SAMPLE_RATE, pcm_to_float, resample

KEEP_SECONDS = 2.0
WINDOW_SAMPLES = 4096  # the latest 256 ms of microphone audio
ECHO_CORRELATION = 0.45


class EchoReference:
    """The reply audio sent in the last KEEP_SECONDS, in a ring (no copy per frame)."""

    def __init__(self) -> None:
        self.ring = np.zeros(int(KEEP_SECONDS * INPUT_SAMPLE_RATE), dtype=np.float32)
        self.end = 0  # where the next sample goes
        self.filled = 0

    @property
    def samples(self) -> np.ndarray:
        """The kept audio, oldest first."""
        if self.filled < len(self.ring):
            return self.ring[: self.filled]
        return np.concatenate([self.ring[self.end :], self.ring[: self.end]])

    def played(self, pcm: bytes, sample_rate: int) -> None:
        """Record reply audio just sent to the client."""
        audio = pcm_to_float(resample(pcm, sample_rate, INPUT_SAMPLE_RATE))[-len(self.ring) :]
        first = min(len(audio), len(self.ring) - self.end)
        self.ring[self.end : self.end + first] = audio[:first]
        self.ring[: len(audio) - first] = audio[first:]
        self.end = (self.end + len(audio)) % len(self.ring)
        self.filled = min(len(self.ring), self.filled + len(audio))

    def clear(self) -> None:
        self.end = self.filled = 0

    def likeness(self, microphone_pcm: bytes) -> float:
        """Highest normalised correlation of the microphone's latest 256 ms with any
        stretch of the recent reply audio (0: unrelated, 1: an exact copy)."""
        mic = pcm_to_float(microphone_pcm)[-WINDOW_SAMPLES:]
        reference = self.samples
        if len(mic) < WINDOW_SAMPLES // 2 or len(reference) < len(mic):
            return 0.0
        mic = mic - mic.mean()
        mic_norm = float(np.linalg.norm(mic))
        if mic_norm < 1e-6:
            return 0.0
        size = 1 << int(np.ceil(np.log2(len(reference) + len(mic))))
        spectrum = np.fft.rfft(reference, size) * np.conj(np.fft.rfft(mic, size))
        correlation = np.fft.irfft(spectrum, size)[: len(reference) - len(mic) + 1]
        energy = np.concatenate([[0.0], np.cumsum(reference.astype(np.float64) ** 2)])
        window_energy = np.sqrt(np.maximum(energy[len(mic) :] - energy[: -len(mic)], 1e-9))
        return float(np.max(np.abs(correlation) / (window_energy * mic_norm)))
