"""The talking avatar's interface: what the voice pipeline asks of any avatar provider.

A call opens one `AvatarSession` for its TrainingSession. The browser is given
`browser_info()` (where to watch the face; never a secret). The pipeline streams the
reply's audio to `speak()` clause by clause as it is synthesised (16-bit little-endian
mono PCM at `AVATAR_SAMPLE_RATE`), closes each reply with `speak_end()`, cuts it short
with `interrupt()` at a barge-in, and learns what the face actually said from the
`AvatarEvent`s passed to its `on_event` callback.

The avatar never blocks or ends a call: every provider failure is an `AvatarError`, and
the call goes on with voice only (the page draws its own face). `AvatarError` is
deliberately not a `SpeechProviderError`: code that ends or refuses a call when speech
fails must not do so because the face failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

AVATAR_SAMPLE_RATE = 24_000  # what LiveAvatar renders from, and what our TTS produces

AvatarEventKind = Literal["speak_started", "speak_ended", "interrupted", "lost"]


class AvatarError(Exception):
    """An avatar provider failed; the call goes on with voice only.

    str(exc) is a sentence a person can read. `code` names the kind of failure.
    `session_lost` says whether this avatar session is gone (stop calling it and show
    the page's own face) or only this one command failed. `retryable` says whether a new
    avatar session later may work: never for a bad key, exhausted credits or a setting
    an administrator must fix.
    """

    code = "avatar_failed"

    def __init__(self, message: str, *, retryable: bool = False, session_lost: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.session_lost = session_lost


class AvatarConfigurationError(AvatarError):
    """A setting or an organization's key is missing or unusable; an admin must act."""

    code = "avatar_misconfigured"


class AvatarAuthError(AvatarError):
    """The provider rejected the API key (401/403)."""

    code = "avatar_bad_key"


class AvatarQuotaError(AvatarError):
    """Credits, plan or concurrent-session limit reached (402, or 429 naming a limit)."""

    code = "avatar_quota"


class AvatarUnavailableError(AvatarError):
    """The provider failed or is busy (5xx, 429, or our circuit breaker is open)."""

    code = "avatar_unavailable"


class AvatarTimeoutError(AvatarError):
    """The provider did not answer, or the avatar did not join its room, in time."""

    code = "avatar_timeout"


class AvatarConnectionLost(AvatarError):
    """The avatar's command connection dropped or the provider closed the session."""

    code = "avatar_connection_lost"


@dataclass(frozen=True)
class AvatarEvent:
    """Something the avatar did. `utterance_id` is the id `speak()` started (and
    `speak_end()` returned); `audio_seconds` is how much of that utterance's audio had
    been sent to the provider when the event arrived. A "lost" event carries the error
    and no utterance."""

    kind: AvatarEventKind
    utterance_id: str | None
    at: float  # time.monotonic()
    audio_seconds: float = 0.0
    error: AvatarError | None = None


AvatarEventCallback = Callable[[AvatarEvent], Awaitable[None]]


class AvatarSession(Protocol):
    """One call's avatar. Every method is bounded by the provider's timeouts and raises
    only AvatarError; once the session is lost each call raises that error at once
    (no network), so a caller can drop the avatar and carry on."""

    provider: str

    @property
    def utterance_id(self) -> str | None:
        """The id of the utterance `speak()` is filling (None between utterances): the id
        its `speak_started` / `speak_ended` events carry."""

    def browser_info(self) -> dict[str, Any]:
        """What the page needs to show the face: always `{"provider": ...}`, plus the
        provider's room URL and client token for a hosted face. Never a key, a session
        token or the command socket's URL."""

    async def speak(self, pcm: bytes) -> None:
        """Queue 24 kHz 16-bit mono PCM for the current utterance (a new one starts at
        the first call after `speak_end()` or `interrupt()`). Returns without waiting
        for the network; a packet that cannot be sent loses the session and the next
        call raises."""

    async def speak_end(self) -> str | None:
        """Send what is left of the current utterance and mark its end; returns the
        utterance's id, or None when nothing was spoken since the last end."""

    async def interrupt(self) -> None:
        """Barge-in: drop audio not yet sent and tell the avatar to stop at once and
        clear everything it had scheduled."""

    async def keep_alive(self) -> None:
        """Tell the provider the session is still wanted (hosted sessions end after a
        few idle minutes; the session also does this by itself when quiet)."""

    async def close(self) -> None:
        """End the avatar session at the provider and release the connection
        (idempotent; never raises)."""


class AvatarProvider(Protocol):
    name: str

    async def open(
        self, training_session_id: int, on_event: AvatarEventCallback | None = None
    ) -> AvatarSession:
        """An avatar session for one call of the TrainingSession, ready to speak.

        `on_event` receives every AvatarEvent (it should return quickly). Raises
        AvatarError when the avatar cannot start; nothing is left running then."""
