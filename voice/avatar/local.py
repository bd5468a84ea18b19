"""The offline avatar: the page draws its own face from the reply audio it already plays.

No network and nothing to pay for. The session still keeps the interface's promises, so
the pipeline treats it like a hosted one: utterances get ids, and `speak_started` /
`speak_ended` / `interrupted` events are reported as the audio is handed over (the
browser plays it; there is no renderer here to say more).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from voice.avatar.base import (
    AVATAR_SAMPLE_RATE,
    AvatarEvent,
    AvatarEventCallback,
    AvatarEventKind,
)

_BYTES_PER_SECOND = AVATAR_SAMPLE_RATE * 2


class LocalAvatar:
    name = "local"

    async def open(
        self, training_session_id: int, on_event: AvatarEventCallback | None = None
    ) -> LocalAvatarSession:
        return LocalAvatarSession(on_event)


class LocalAvatarSession:
    provider = "local"

    def __init__(self, on_event: AvatarEventCallback | None = None) -> None:
        self.on_event = on_event
        self.events: list[AvatarEvent] = []
        self.utterance_id: str | None = None
        self.audio_bytes = 0
        self.closed = False

    def browser_info(self) -> dict[str, Any]:
        return {"provider": self.provider}

    async def _report(self, kind: AvatarEventKind, utterance_id: str) -> None:
        event = AvatarEvent(
            kind, utterance_id, time.monotonic(), self.audio_bytes / _BYTES_PER_SECOND
        )
        self.events.append(event)
        if self.on_event is not None:
            await self.on_event(event)

    async def speak(self, pcm: bytes) -> None:
        if self.closed or not pcm:
            return
        if self.utterance_id is None:
            self.utterance_id = uuid.uuid4().hex
            self.audio_bytes = len(pcm)
            await self._report("speak_started", self.utterance_id)
        else:
            self.audio_bytes += len(pcm)

    async def speak_end(self) -> str | None:
        utterance_id, self.utterance_id = self.utterance_id, None
        if utterance_id is not None and not self.closed:
            await self._report("speak_ended", utterance_id)
        return utterance_id

    async def interrupt(self) -> None:
        utterance_id, self.utterance_id = self.utterance_id, None
        if utterance_id is not None and not self.closed:
            await self._report("interrupted", utterance_id)

    async def keep_alive(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True
        self.utterance_id = None
