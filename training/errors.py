"""The training app's refusal: a core.errors.Refused (mapped once per surface)."""

from __future__ import annotations

from core.errors import Refused


class TrainingError(Refused):
    """A request the training engine refuses (400 invalid, 409 conflict, 413, 429...)."""
