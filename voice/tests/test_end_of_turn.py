"""The end-of-turn decision: the sound model's probability, and the words it ends on."""

import pytest

from voice.end_of_turn import turn_is_complete


@pytest.mark.parametrize(
    ("probability", "transcript", "complete"),
    [
        (0.6, "and then we could", True),  # the sound says finished
        (0.45, "and then we could", False),  # unsure, and the words run on
        (0.45, "That is all I wanted to ask.", True),  # unsure, but a finished sentence
        (0.4, "Can you do better on price?", True),
        (0.4, '"Fine," she said.”', True),
        (0.3, "That is all I wanted to ask.", False),  # the sound says not finished
        (0.45, "Hello Dana,", False),
    ],
)
def test_a_turn_is_complete_by_sound_or_by_sound_and_a_finished_sentence(
    probability, transcript, complete
):
    assert turn_is_complete(probability, transcript) is complete


def test_the_thresholds_are_settings(settings):
    settings.VOICE_END_OF_TURN_THRESHOLD = 0.8
    settings.VOICE_END_OF_TURN_SENTENCE_THRESHOLD = 0.8
    assert not turn_is_complete(0.7, "That is all.")
