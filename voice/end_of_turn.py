"""End of turn: Pipecat's smart-turn v3.2 (ONNX, CPU build) judges from the sound of the
last 8 s of the learner's turn whether they have finished speaking.

The model is vendored in voice/models/ with its licence (BSD-2-Clause, Daily; from the
pipecat-ai 1.14.0 wheel, sha256 in voice/models/README.md): we use nothing else of
Pipecat. Its input is Whisper's log-mel spectrogram of 8 s of 16 kHz audio after
zero-mean/unit-variance normalisation, computed here with faster-whisper's NumPy
feature extractor. About 90 ms of CPU a decision, so it runs on a thread.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from django.conf import settings

from voice.audio import INPUT_SAMPLE_RATE, pcm_to_float

MODEL_PATH = os.path.join(os.path.dirname(__file__), "models", "smart-turn-v3.2-cpu.onnx")
_SECONDS = 8
_lock = threading.Lock()
_loaded: tuple[object, object] | None = None


def _model() -> tuple[object, object]:
    global _loaded
    with _lock:
        if _loaded is None:
            import onnxruntime
            from faster_whisper.feature_extractor import FeatureExtractor

            options = onnxruntime.SessionOptions()
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            options.log_severity_level = 4
            session = onnxruntime.InferenceSession(
                MODEL_PATH, providers=["CPUExecutionProvider"], sess_options=options
            )
            features = FeatureExtractor(feature_size=80, chunk_length=_SECONDS)
            _loaded = (session, features)
        return _loaded


def completion_probability(turn_pcm: bytes) -> float:
    """How likely the learner has finished their turn, from its audio (blocking)."""
    session, features = _model()
    audio = pcm_to_float(turn_pcm)
    samples = _SECONDS * INPUT_SAMPLE_RATE
    audio = audio[-samples:]
    if len(audio) < samples:
        audio = np.pad(audio, (samples - len(audio), 0))
    audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    mel = features(audio.astype(np.float32), padding=0)[:, :800]
    if mel.shape[1] < 800:
        mel = np.pad(mel, ((0, 0), (0, 800 - mel.shape[1])), constant_values=mel.min())
    output = session.run(None, {"input_features": mel[None, :, :].astype(np.float32)})
    return float(np.asarray(output[0]).reshape(-1)[0])


def turn_is_complete(probability: float, transcript: str) -> bool:
    """The decision from the model's probability and the words: a transcript that ends a
    sentence (the recogniser punctuates from the words it heard) needs less certainty
    from the sound, which alone misjudges about a quarter of finished sentences."""
    ends_sentence = transcript.rstrip().rstrip("\"'”’)").endswith((".", "?", "!", "…"))
    threshold = (
        settings.VOICE_END_OF_TURN_SENTENCE_THRESHOLD
        if ends_sentence
        else settings.VOICE_END_OF_TURN_THRESHOLD
    )
    return probability >= threshold
