"""The voices a scenario may speak with, and the video avatars it may show: lists, not
free text.

The lists belong to the configured text-to-speech and avatar providers, which live in the
voice app (it depends on this one, not the other way), so the voice app registers the
catalogues when it starts; scenarios validate against them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from training.errors import TrainingError

_catalogue: Callable[[], list[tuple[str, str]]] = lambda: []  # noqa: E731
_avatars: Callable[[int | None], list[tuple[str, str]]] = lambda organization_id: []  # noqa: E731
_AVATAR_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


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


def register_avatar_catalogue(catalogue: Callable[[int | None], list[tuple[str, str]]]) -> None:
    global _avatars
    _avatars = catalogue


def avatar_choices(organization_id: int | None) -> list[tuple[str, str]]:
    """(id, label) of the video avatars the organization's avatar key may use (the
    provider's list, fetched: slow, and TrainingError when it cannot be had)."""
    return _avatars(organization_id)


def check_avatar_id(value: object) -> None:
    """Raises TrainingError (400) for a value that cannot be an avatar id. Whether the
    provider knows it is checked where the list is shown (the admin's form); a session
    with an unknown one goes on with voice and says why."""
    if value in ("", None):
        return
    if not isinstance(value, str) or not _AVATAR_ID.fullmatch(value):
        raise TrainingError(
            "avatar_id must be a LiveAvatar avatar id (letters, digits, - and _, at most "
            "100), or empty for the installation's default."
        )
