"""A local stand-in for LiveAvatar (LITE mode), speaking its wire protocol.

One localhost port, as `speech_servers` does: the session endpoints over plain HTTP
(`POST /v1/sessions/token`, `/start`, `/stop`, `/keep-alive`, `GET /v1/sessions`) and the
command WebSocket that `/start` hands out as `ws_url`. It checks what it receives (a
protocol slip is recorded in `problems`, which every test expects to stay empty), records
the commands and the audio, and answers as the docs describe: `session.state_updated`
(connecting, then connected), `agent.speak_started` at an utterance's first packet and
`agent.speak_ended` once its `agent.speak_end` has arrived.

It can be told to answer the token or start call with any response (401, 402, 429, 500),
to hang, never to report `connected`, to end the session itself, or to drop the socket
after so many audio packets.

With `serve_room`, the LiveKit URL it hands out is its own port: a browser's LiveKit
client that joins it is recorded (`room_tokens`, the access token it presented) and
refused as LiveKit refuses a bad token (401 on the signalling socket and on its validate
call). There is no LiveKit server here: a room that works is not tested.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from voice.tests.speech_servers import HttpRequest, HttpResponse, _abort, _Stub

LIVEAVATAR_KEY = "la-test-key-0123456789abcdef"
AVATAR_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
PUBLIC_AVATAR_ID = "7f1e5d2a-9b0c-4e3f-8a6d-2c4b1e0f9a87"
EXPIRED_AVATAR_ID = "0a0b0c0d-1111-4222-8333-444455556666"


def _avatar(avatar_id: str, name: str, *, expired: bool = False) -> dict[str, Any]:
    return {
        "id": avatar_id, "name": name, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "error_message": None, "space_id": "s1",
        "type": "VIDEO", "status": "ACTIVE", "preview_url": f"https://cdn.invalid/{avatar_id}.jpg",
        "is_expired": expired, "default_voice": {"id": "v1", "name": "Voice"}, "is_1080p": False,
    }  # fmt: skip


USER_AVATARS = [_avatar(AVATAR_ID, "Dana in the office"),
                _avatar(EXPIRED_AVATAR_ID, "An old trial", expired=True)]  # fmt: skip
PUBLIC_AVATARS = [_avatar(PUBLIC_AVATAR_ID, "Wayne"), _avatar(AVATAR_ID, "Dana in the office")]
MAX_PACKET_BYTES = 1_000_000
COMMANDS = {
    "agent.speak",
    "agent.speak_end",
    "agent.interrupt",
    "agent.start_listening",
    "agent.stop_listening",
    "session.keep_alive",
}

INVALID_KEY = {"code": 401, "message": "Invalid API key", "data": None}
NO_CREDITS = {"code": 402, "message": "Insufficient credits to start a session", "data": None}
CONCURRENCY = {"code": 429, "message": "Concurrent session limit reached", "data": None}
RATE_LIMITED = {"code": 429, "message": "Too many requests", "data": None}
SERVER_ERROR = {"code": 500, "message": "Internal server error", "data": None}


@dataclass
class StubSession:
    session_id: str
    session_token: str
    ws_token: str
    started: bool = False
    stopped_with: str | None = None  # "session_token" or "api_key"
    spoken: dict[str, bytearray] = field(default_factory=dict)  # audio by event_id
    ended: set[str] = field(default_factory=set)  # event ids given speak_end
    started_events: set[str] = field(default_factory=set)


class LiveAvatarStub(_Stub):
    def __init__(
        self,
        *,
        token_response: HttpResponse | None = None,
        start_response: HttpResponse | None = None,
        never_connect: bool = False,
        end_after_connect: bool = False,
        drop_after_packets: int | None = None,
        speak_ended_delay: float = 0.02,
        serve_room: bool = False,
        speak_started_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.token_response = token_response
        self.start_response = start_response
        self.never_connect = never_connect
        self.end_after_connect = end_after_connect
        self.drop_after_packets = drop_after_packets
        self.speak_ended_delay = speak_ended_delay
        self.serve_room = serve_room
        self.speak_started_delay = speak_started_delay  # the avatar renders this far behind
        self.speak_started_at: dict[str, float] = {}  # event id -> loop time it was sent
        self.room_tokens: list[str] = []  # access tokens a LiveKit client joined with
        self.sessions: dict[str, StubSession] = {}
        self.token_bodies: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.packets: list[bytes] = []  # decoded audio of each agent.speak, in order
        self.packet_times: list[float] = []
        self.avatar_lists: list[
            str
        ] = []  # the avatar-list addresses asked, in order  # when each arrived (time.monotonic())
        self.packet_message_bytes: list[int] = []
        self.http_keepalives: list[str] = []
        self.sent_events: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return self.origin

    def session(self) -> StubSession:
        assert len(self.sessions) == 1, self.sessions
        return next(iter(self.sessions.values()))

    def types(self) -> list[str]:
        return [command["type"] for command in self.commands]

    # HTTP

    def _by_bearer(self, request: HttpRequest) -> StubSession | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        return next((s for s in self.sessions.values() if s.session_token == token), None)

    async def http(self, request: HttpRequest) -> HttpResponse:
        route = (request.method, request.path)
        if self.serve_room and request.method == "GET" and request.path.startswith("/rtc"):
            # LiveKit's client asks why its signalling socket was refused.
            self.room_tokens.extend(request.query.get("access_token", []))
            return HttpResponse(
                401,
                b"invalid token: this stub has no LiveKit room",
                {"Access-Control-Allow-Origin": "*", "Content-Type": "text/plain"},
            )
        if route == ("POST", "/v1/sessions/token"):
            return self._token(request)
        if route == ("POST", "/v1/sessions/start"):
            return self._start(request)
        if route == ("POST", "/v1/sessions/stop"):
            return self._stop(request)
        if route == ("POST", "/v1/sessions/keep-alive"):
            if request.headers.get("x-api-key") != LIVEAVATAR_KEY and not self._by_bearer(request):
                return HttpResponse.json(401, INVALID_KEY)
            self.http_keepalives.append(request.json().get("session_id"))
            return HttpResponse.json(200, {"code": 100, "data": None, "message": "ok"})
        if route == ("GET", "/v1/sessions"):
            return self._list(request)
        if route in (("GET", "/v1/avatars"), ("GET", "/v1/avatars/public")):
            if request.headers.get("x-api-key") != LIVEAVATAR_KEY:
                return HttpResponse.json(401, INVALID_KEY)
            self.avatar_lists.append(request.path)
            results = PUBLIC_AVATARS if request.path.endswith("/public") else USER_AVATARS
            page = {"count": len(results), "results": results, "next": None, "previous": None}
            return HttpResponse.json(200, {"code": 100, "data": page, "message": ""})
        self.problems.append(f"unexpected HTTP {request.method} {request.path}")
        return HttpResponse(404)

    def _token(self, request: HttpRequest) -> HttpResponse:
        if request.headers.get("x-api-key") != LIVEAVATAR_KEY:
            return HttpResponse.json(401, INVALID_KEY)
        if "authorization" in request.headers:
            self.problems.append("the token call carried an Authorization header")
        body = request.json()
        self.token_bodies.append(body)
        if body.get("mode") != "LITE":
            self.problems.append(f"token requested without mode LITE: {body}")
        if body.get("avatar_id") not in (AVATAR_ID, PUBLIC_AVATAR_ID):
            self.problems.append(f"token requested for avatar {body.get('avatar_id')!r}")
        video = body.get("video_settings")
        if not isinstance(video, dict) or video.get("encoding") not in ("VP8", "H264"):
            self.problems.append(f"token requested with video_settings {video!r}")
        if self.token_response is not None:
            return self.token_response
        session = StubSession(uuid.uuid4().hex, f"st-{uuid.uuid4().hex}", uuid.uuid4().hex)
        self.sessions[session.session_id] = session
        return HttpResponse.json(
            200,
            {
                "code": 100,
                "data": {"session_id": session.session_id, "session_token": session.session_token},
                "message": "Session token created",
            },
        )

    def _start(self, request: HttpRequest) -> HttpResponse:
        session = self._by_bearer(request)
        if session is None:
            if request.headers.get("x-api-key"):
                self.problems.append("start called with the API key instead of the token")
            return HttpResponse.json(401, {"code": 401, "message": "Invalid session token"})
        if self.start_response is not None:
            return self.start_response
        session.started = True
        return HttpResponse.json(
            201,
            {
                "code": 100,
                "data": {
                    "session_id": session.session_id,
                    "livekit_url": (
                        f"ws://127.0.0.1:{self.port}"
                        if self.serve_room
                        else "wss://livekit.stub.invalid"
                    ),
                    "livekit_client_token": f"lk-client-{session.session_id}",
                    "livekit_agent_token": f"lk-agent-{session.session_id}",
                    "max_session_duration": 1200,
                    "ws_url": (
                        f"ws://127.0.0.1:{self.port}/v1/sessions/{session.session_id}/ws"
                        f"?token={session.ws_token}"
                    ),
                },
                "message": "Session started",
            },
        )

    @property
    def port(self) -> int:
        return int(urlsplit(self.origin).port or 0)

    def _stop(self, request: HttpRequest) -> HttpResponse:
        body = request.json()
        session = self._by_bearer(request)
        stopped_with = "session_token"
        if session is None and request.headers.get("x-api-key") == LIVEAVATAR_KEY:
            session = self.sessions.get(body.get("session_id", ""))
            stopped_with = "api_key"
        if session is None:
            return HttpResponse.json(401, INVALID_KEY)
        if body.get("session_id") != session.session_id:
            self.problems.append(f"stop for {body.get('session_id')!r} with another's token")
        if body.get("reason") not in (None, "USER_CLOSED", "USER_DISCONNECTED", "UNKNOWN"):
            self.problems.append(f"stop with an undocumented reason {body.get('reason')!r}")
        session.stopped_with = stopped_with
        return HttpResponse.json(200, {"code": 100, "data": None, "message": "Session stopped"})

    def _list(self, request: HttpRequest) -> HttpResponse:
        if request.headers.get("x-api-key") != LIVEAVATAR_KEY:
            return HttpResponse.json(401, INVALID_KEY)
        kind = request.query.get("type", [""])[0]
        if kind not in ("active", "historic"):
            return HttpResponse.json(422, {"detail": [{"msg": "type is required"}]})
        results = [
            {"session_id": s.session_id, "status": "connected", "created_at": "2026-01-01T00:00Z"}
            for s in self.sessions.values()
            if (s.stopped_with is None) == (kind == "active")
        ]
        return HttpResponse.json(
            200, {"code": 100, "data": {"count": len(results), "results": results}, "message": ""}
        )

    # The command socket

    def handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if self.serve_room and parts.path.startswith("/rtc"):
            self.room_tokens.extend(parse_qs(parts.query).get("access_token", []))
            return connection.respond(401, "invalid token: this stub has no LiveKit room")
        pieces = parts.path.strip("/").split("/")
        session = self.sessions.get(pieces[2]) if len(pieces) == 4 else None
        if session is None or pieces[3] != "ws":
            self.problems.append(f"unexpected command socket path {parts.path}")
            return connection.respond(404, "Not found")
        if parse_qs(parts.query).get("token") != [session.ws_token]:
            return self.reject(connection, 401, {"code": 401, "message": "Invalid token"})
        if not session.started:
            self.problems.append("command socket opened before the session was started")
        return None

    async def emit(self, ws: ServerConnection, event: dict[str, Any]) -> None:
        self.sent_events.append(event)
        await ws.send(json.dumps(event))

    async def websocket(self, ws: ServerConnection) -> None:
        session_id = urlsplit(ws.request.path).path.strip("/").split("/")[2]
        session = self.sessions[session_id]
        await self.emit(ws, {"type": "session.state_updated", "state": "connecting"})
        connected = False
        if not self.never_connect:
            await asyncio.sleep(0.02)
            await self.emit(ws, {"type": "session.state_updated", "state": "connected"})
            connected = True
            if self.end_after_connect:
                await asyncio.sleep(0.05)
                await self.emit(ws, {"type": "session.state_updated", "state": "closed"})
                await ws.close(1000)
                return
        async for raw in ws:
            if isinstance(raw, bytes):
                self.problems.append("a binary frame on the command socket")
                continue
            command = json.loads(raw)
            kind = command.get("type")
            self.commands.append(command)
            if not connected:
                self.problems.append(f"{kind} sent before the session was connected")
            if kind not in COMMANDS:
                self.problems.append(f"unknown command {kind!r}")
                continue
            event_id = command.get("event_id")
            if kind != "agent.interrupt" and not isinstance(event_id, str):
                self.problems.append(f"{kind} without an event_id")
            if kind == "agent.speak":
                if await self._speak(ws, session, command, len(raw)):
                    return
            elif kind == "agent.speak_end":
                if event_id not in session.spoken:
                    self.problems.append(f"speak_end for {event_id!r}, which spoke nothing")
                session.ended.add(event_id)
                self.spawn(self._end_speaking(ws, session, event_id))
            elif kind == "agent.interrupt":
                # Everything scheduled is cleared; what had started ends now.
                for started in session.started_events - session.ended:
                    session.ended.add(started)
                    self.spawn(self._end_speaking(ws, session, started))

    async def _start_speaking(self, ws: ServerConnection, event_id: str) -> None:
        if self.speak_started_delay:
            await asyncio.sleep(self.speak_started_delay)
        self.speak_started_at[event_id] = asyncio.get_running_loop().time()
        with contextlib.suppress(Exception):  # the socket closed meanwhile
            await self.emit(
                ws,
                {"type": "agent.speak_started", "event_id": event_id, "task": {"id": event_id}},
            )

    async def _speak(
        self, ws: ServerConnection, session: StubSession, command: dict[str, Any], size: int
    ) -> bool:
        """Record one packet; True when the stub drops the socket after it."""
        event_id = command.get("event_id")
        self.packet_message_bytes.append(size)
        if size >= MAX_PACKET_BYTES:
            self.problems.append(f"an agent.speak packet of {size} bytes")
        try:
            audio = base64.b64decode(command.get("audio", ""), validate=True)
        except (ValueError, binascii.Error):
            self.problems.append("agent.speak without valid base64 audio")
            return False
        if not audio or len(audio) % 2:
            self.problems.append(f"agent.speak with {len(audio)} bytes (not whole samples)")
        if event_id in session.ended:
            self.problems.append(f"audio for {event_id!r} after its speak_end")
        self.packets.append(audio)
        self.packet_times.append(time.monotonic())
        session.spoken.setdefault(event_id, bytearray()).extend(audio)
        if event_id not in session.started_events:
            session.started_events.add(event_id)
            self.spawn(self._start_speaking(ws, event_id))
        if self.drop_after_packets is not None and len(self.packets) >= self.drop_after_packets:
            _abort(ws)
            return True
        return False

    async def _end_speaking(
        self, ws: ServerConnection, session: StubSession, event_id: str
    ) -> None:
        with contextlib.suppress(Exception):
            await asyncio.sleep(self.speak_ended_delay)
            if event_id in session.started_events:
                await self.emit(
                    ws,
                    {"type": "agent.speak_ended", "event_id": event_id, "task": {"id": event_id}},
                )


@contextlib.contextmanager
def running_in_thread(stub: LiveAvatarStub) -> Iterator[LiveAvatarStub]:
    """The stub on an event loop of its own thread, for tests that are not async (a
    browser test, whose server runs in another process)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="liveavatar-stub", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(stub.start(), loop).result(10)
    try:
        yield stub
    finally:
        asyncio.run_coroutine_threadsafe(stub.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
