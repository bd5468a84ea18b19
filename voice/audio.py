"""PCM helpers: 16-bit little-endian mono, as the wire protocol carries it."""

from __future__ import annotations

import io
import wave

import numpy as np

INPUT_SAMPLE_RATE = 16_000  # learner audio, client -> server


def pcm_to_float(pcm: bytes) -> np.ndarray:
    """16-bit PCM bytes as float32 samples in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()


def resample(pcm: bytes, source_rate: int, target_rate: int) -> bytes:
    """Linear-interpolation resampling (speech in, speech out: good enough, and cheap)."""
    if source_rate == target_rate or not pcm:
        return pcm
    samples = pcm_to_float(pcm)
    count = max(1, round(len(samples) * target_rate / source_rate))
    positions = np.linspace(0, len(samples) - 1, count)
    return float_to_pcm(np.interp(positions, np.arange(len(samples)), samples))


def duration_ms(pcm: bytes, sample_rate: int) -> float:
    return len(pcm) / 2 / sample_rate * 1000


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def read_wav(data: bytes, sample_rate: int = INPUT_SAMPLE_RATE) -> bytes:
    """A mono 16-bit WAV's PCM, resampled to `sample_rate` (tests and benchmarks)."""
    with wave.open(io.BytesIO(data)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError("Expected a mono 16-bit WAV file.")
        return resample(wav.readframes(wav.getnframes()), wav.getframerate(), sample_rate)
