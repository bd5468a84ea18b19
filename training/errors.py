"""The training app's refusal: a core.errors.Refused (mapped once per surface)."""

from __future__ import annotations

from core.errors import Refused


class TrainingError(Refused):
    """A request the training engine refuses (400 invalid, 409 conflict, 413, 429...)."""

    # The codes API clients have matched on since v1 (the core defaults differ).
    CODES = {403: "forbidden", 413: "too_long"}

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code or self.CODES.get(status or 400))
