"""Word error rate of the offline recogniser (faster-whisper tiny.en) on sales sentences
spoken by the offline voice (Piper), clean and made hard (10% faster, 15 dB white noise),
each transcribed as the pipeline does (one segment at a time).

Synthetic speech flatters any recogniser; this checks the offline path works end to end,
not how it fares with real voices.

    .venv/bin/python bench/voice_wer.py
"""

from __future__ import annotations

import os
import time

import bench_setup
import numpy as np

SENTENCES = [
    "Thanks for taking the call today.",
    "Can you tell me what worries you about the renewal?",
    "What would a day of downtime cost your team?",
    "Our premium plan includes a named support engineer.",
    "We can start a two week trial next Tuesday.",
    "How many people on your team use the product every day?",
    "I understand the other quote is lower.",
    "What matters more to you, price or response time?",
    "Let me check that with our billing team and call you back.",
    "Could we book a review call for Thursday afternoon?",
    "The migration takes about three days and needs no downtime.",
    "Which features would you miss if you switched?",
    "We fixed the outage in March and changed our process.",
    "Who else needs to approve this decision?",
    "I will send you a summary and the pricing by email.",
    "Is the budget already set for next year?",
    "Our customers usually see results in the first month.",
    "Tell me more about how your support desk works today.",
    "That makes sense, and I appreciate you being direct.",
    "Shall we agree on the next step before we finish?",
]


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text).split()


def _errors(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        current = [i]
        for j, heard in enumerate(hypothesis, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != heard))
            )
        previous = current
    return previous[-1]


def _hard(pcm: bytes) -> bytes:
    from voice.audio import float_to_pcm, pcm_to_float, resample

    faster = pcm_to_float(resample(pcm, 17_600, 16_000))  # played 10% faster
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 1, len(faster)).astype(np.float32)
    noise *= np.sqrt(np.mean(faster**2) / np.mean(noise**2) / 10 ** (15 / 10))
    return float_to_pcm(faster + noise)


def main() -> None:
    import django

    django.setup()
    from voice.stt.local import LocalWhisper
    from voice.tests.speech import spoken

    model = LocalWhisper.shared()
    load = os.getloadavg()[0]
    for name, transform in (("clean", lambda pcm: pcm), ("hard", _hard)):
        errors = words = 0
        cpu = []
        for sentence in SENTENCES:
            audio = transform(spoken(sentence))
            started = time.process_time()
            heard = model.transcribe(audio)
            cpu.append(time.process_time() - started)
            reference = _words(sentence)
            errors += _errors(reference, _words(heard))
            words += len(reference)
        print(f"{name}: WER {100 * errors / words:.1f}% over {words} words, "
              f"CPU per sentence median {1000 * sorted(cpu)[len(cpu) // 2]:.0f} ms")  # fmt: skip
    print(f"load average at start: {load:.2f}")


if __name__ == "__main__":
    assert bench_setup
    main()
