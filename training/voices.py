"""The voices a scenario may speak with: a list, not free text.

The list belongs to the configured text-to-speech provider, which lives in the voice app
(it depends on this one, not the other way), so the voice app registers the catalogue
when it starts; scenarios validate against it.
"""

from __future__ import annotations

from collections.abc import Callable

from training.errors import TrainingError

_catalogue: Callable[[], list[tuple[str, str]]] = lambda: []  # noqa: E731


def register_catalogue(catalogue: Callable[[], list[tuple[str, str]]]) -> None:
    global _catalogue
    _catalogue = catalogue


def voice_choices() -> list[tuple[str, str]]:
    """(id, label) of every voice a scenario may choose; "" is the provider's default."""
    return _catalogue()


def check_voice(value: object) -> None:
    """Raises TrainingError (400) for a voice that is not in the list."""
    if value in ("", None):
        return
    choices = voice_choices()
    if value not in {voice_id for voice_id, _ in choices}:
        names = ", ".join(f"{voice_id} ({label})" for voice_id, label in choices) or "none"
        raise TrainingError(f"Unknown voice {str(value)[:60]!r}; choose one of: {names}.")
