"""Speech for the tests, synthesized offline by Piper and fed through a real socket."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from voice.audio import INPUT_SAMPLE_RATE, resample
from voice.consumers import VoiceConsumer
from voice.tts import OUTPUT_SAMPLE_RATE

FRAME_BYTES = 640  # 20 ms at 16 kHz


@functools.lru_cache(maxsize=32)
def spoken(text: str) -> bytes:
    """`text` spoken by the offline voice, as 16 kHz PCM (what a microphone would send)."""
    from voice.tts.local import PiperSpeech

    return resample(PiperSpeech.shared().render(text), OUTPUT_SAMPLE_RATE, INPUT_SAMPLE_RATE)


def silence(milliseconds: int) -> bytes:
    return b"\0\0" * (INPUT_SAMPLE_RATE * milliseconds // 1000)


class CallClient:
    """A voice client on a WebsocketCommunicator: sends audio in real time, collects
    events and reply audio."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.events: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.audio_frames = 0
        self.closed: int | None = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self) -> bool:
        connected, _ = await self.communicator.connect(timeout=20)
        self.reader = asyncio.ensure_future(self._read())
        return connected

    async def _read(self) -> None:
        while True:
            message = await self.communicator.receive_output(timeout=120)
            if message["type"] == "websocket.close":
                self.closed = message.get("code", 1000)
                return
            if message.get("bytes") is not None:
                self.audio += message["bytes"]
                self.audio_frames += 1
            else:
                self.events.append(json.loads(message["text"]))

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(data))

    async def speak(self, pcm: bytes, *, speed: float = 1.0) -> None:
        """Send audio in 20 ms frames, paced as a microphone would (speed > 1: faster)."""
        for start in range(0, len(pcm), FRAME_BYTES):
            await self.communicator.send_to(bytes_data=pcm[start : start + FRAME_BYTES])
            await asyncio.sleep(0.02 / speed)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]

    async def wait_for(self, kind: str, *, timeout: float = 30, count: int = 1) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.of_type(kind)) < count:
            if self.closed is not None:
                raise AssertionError(f"closed with {self.closed} before {kind}: {self.events}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {kind} within {timeout} s: {self.events}")
            await asyncio.sleep(0.01)
        return self.of_type(kind)[count - 1]

    async def wait_closed(self, timeout: float = 10) -> int:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.closed is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not closed within {timeout} s: {self.events}")
            await asyncio.sleep(0.01)
        return self.closed

    async def disconnect(self) -> None:
        from voice.pipeline import finish_background_work

        if self.closed is None:
            await self.communicator.disconnect()
        if self.reader is not None:
            self.reader.cancel()
        await finish_background_work()  # its database work on this test's thread


def call_for(user, session_id, *, query="", origin=True):
    """A client on the consumer itself (the user set in the scope, as AuthMiddleware does)."""
    application = URLRouter([path("ws/sessions/<int:session_id>/voice/", VoiceConsumer.as_asgi())])
    url = f"/ws/sessions/{session_id}/voice/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, url)
    if user is not None:
        communicator.scope["user"] = user
    communicator.scope["origin_present"] = origin
    return CallClient(communicator)


def describe(client: CallClient) -> str:
    """The call's events, one a line (text deltas left out), for assertion messages."""
    return "\n".join(
        json.dumps(event)[:200] for event in client.events if event["type"] != "reply.text_delta"
    )
