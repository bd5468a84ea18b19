"""Voice activity on speech from the offline voice: where speech starts and stops, and how
much of each stretch is clear speech (what tells a cough from a short "hold on")."""

import itertools

import pytest
from django.conf import settings

from voice.tests.speech import silence, spoken
from voice.vad import SpeechDetector


def _stretches(pcm: bytes) -> list[tuple[int, int, int]]:
    """(started_ms, stopped_ms, voiced_ms) of each stretch of speech in `pcm`."""
    detector = SpeechDetector(
        threshold=settings.VOICE_VAD_THRESHOLD,
        start_ms=settings.VOICE_VAD_START_MS,
        stop_ms=settings.VOICE_VAD_STOP_MS,
        pause_ms=settings.VOICE_DRAFT_PAUSE_MS,
    )
    found, started = [], None
    for start in range(0, len(pcm), 640):  # 20 ms frames, as the browser sends them
        for event in detector.feed(pcm[start : start + 640]):
            if event.kind == "speech_started":
                started = event.at_ms
            elif event.kind == "speech_stopped":
                found.append((started, event.at_ms, detector.voiced_ms))
    assert not detector.speaking
    return found


def test_a_sentence_is_one_stretch_of_speech_where_it_was_spoken():
    words = spoken("I have been thinking about this renewal for a long while now.")
    [(started, stopped, voiced)] = _stretches(silence(500) + words + silence(600))
    assert 400 <= started <= 700
    assert stopped - started >= len(words) / 32 * 0.7
    assert voiced >= (stopped - started) * 0.7


def test_a_cough_is_less_clear_speech_than_an_interruption_needs():
    [(_, _, voiced)] = _stretches(silence(300) + spoken("Ha!") + silence(500))
    assert voiced < settings.VOICE_BARGE_IN_MIN_VOICED_MS


@pytest.mark.parametrize("text", ["Wait, stop.", "Hold on.", "No, no.", "Sorry, what?"])
def test_a_short_interruption_has_enough_clear_speech_over_its_stretches(text):
    stretches = _stretches(silence(300) + spoken(text) + silence(500))
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(stretches)]
    assert all(gap <= settings.VOICE_BARGE_IN_CONFIRM_MS for gap in gaps)  # one utterance
    assert sum(voiced for _, _, voiced in stretches) >= settings.VOICE_BARGE_IN_MIN_VOICED_MS


def test_clear_speech_is_counted_afresh_for_each_stretch():
    long = spoken("I have been thinking about this renewal for a long while now.")
    first, cough = _stretches(silence(300) + long + silence(900) + spoken("Ha!") + silence(500))
    assert first[2] > 1500
    assert cough[2] < settings.VOICE_BARGE_IN_MIN_VOICED_MS
