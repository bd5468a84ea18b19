"""Local stand-ins for the hosted speech providers, speaking their wire protocols.

Each stub listens on one localhost port, as the real service does on one host: plain HTTP
requests are answered here, and WebSocket upgrades are piped to a `websockets` server
behind it, so a client pointed at the stub's base URL finds both at the paths it would
use in production. The stubs check what they receive (a protocol slip is recorded in
`problems`, which every test expects to stay empty) and record what they saw.

- `OpenAIStub`: the Realtime transcription session (`session.update`,
  `input_audio_buffer.append` / `.commit` / `.clear`; `session.updated`,
  `input_audio_buffer.committed`, transcription `.delta`s then `.completed`, `error`)
  and `POST /v1/audio/transcriptions`. Its "transcript" names the audio's length.
- `ElevenLabsStub`: the multi-context TTS socket (context init with voice settings, text
  with `flush`, `close_context`, `{"text": ""}` keep-alives, `close_socket`; audio per
  context, `isFinal` once a context is closed and its audio sent) and
  `POST /v1/text-to-speech/{voice_id}/stream`. Each clause's audio is one constant sample
  value derived from its text, so a test can tell whose audio it got.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import io
import json
import uuid
import wave
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

OPENAI_KEY = "sk-test-openai"
ELEVENLABS_KEY = "xi-test-elevenlabs"
PCM_CHUNK_BYTES = 960  # 20 ms at 24 kHz, 16-bit mono


def phrase_for(seconds: float) -> str:
    """What the OpenAI stub 'hears' in `seconds` of audio."""
    return f"you spoke for {seconds:.1f} seconds"


def sample_for(text: str) -> int:
    """The constant sample value of the ElevenLabs stub's audio for `text`."""
    return zlib.crc32(" ".join(text.split()).encode()) % 20_000 + 1


def samples_of(pcm: bytes) -> set[int]:
    return {int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)}


# --- A small HTTP/1.1 server that pipes WebSocket upgrades onwards ----------------------


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """multipart/form-data fields: name -> (filename, content)."""
        head = f"Content-Type: {self.headers.get('content-type', '')}\r\n\r\n".encode()
        message = email.message_from_bytes(head + self.body, policy=email.policy.HTTP)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return fields


@dataclass
class HttpResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # sent with chunked transfer encoding
    chunk_delay: float = 0.0
    hang: bool = False  # never answer

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> HttpResponse:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **headers},
        )


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _Front:
    def __init__(self, handler: Handler, ws_port: int) -> None:
        self.handler = handler
        self.ws_port = ws_port
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() == "websocket":
            await self._pipe(head, reader, writer)
            return
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        parts = urlsplit(target)
        response = await self.handler(
            HttpRequest(method, parts.path, parse_qs(parts.query), headers, body)
        )
        if response.hang:
            await asyncio.Event().wait()
        head_lines = [f"HTTP/1.1 {response.status} Stub", "Connection: close"]
        head_lines += [f"{name}: {value}" for name, value in response.headers.items()]
        if response.chunks is None:
            head_lines.append(f"Content-Length: {len(response.body)}")
            writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode() + response.body)
        else:
            head_lines.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode())
            for chunk in response.chunks:
                await asyncio.sleep(response.chunk_delay)
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _pipe(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.ws_port)
        upstream_writer.write(head)

        async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            except ConnectionError:
                pass
            finally:
                # An abrupt end upstream is an abrupt end here (no close frame relayed).
                target.close()

        try:
            await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
        finally:
            upstream_writer.close()


class _Stub:
    """One port: HTTP handled by `http`, WebSocket upgrades by `websocket`."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.ws_connections = 0
        self.ws_headers: list[Headers] = []
        self.ws_paths: list[str] = []
        self.http_requests: list[HttpRequest] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self._front: _Front | None = None
        self._ws_server: Any = None

    @property
    def origin(self) -> str:
        assert self._front is not None
        return f"http://127.0.0.1:{self._front.port}"

    async def start(self) -> None:
        self._ws_server = await serve(
            self._websocket, "127.0.0.1", 0, process_request=self._handshake, max_size=None
        )
        ws_port = self._ws_server.sockets[0].getsockname()[1]
        self._front = _Front(self._http, ws_port)
        await self._front.start()

    async def stop(self) -> None:
        assert self._front is not None
        for task in list(self.tasks):
            task.cancel()
        await self._front.stop()
        self._ws_server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._ws_server.wait_closed()

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def reject(self, connection: ServerConnection, status: int, payload: Any) -> Response:
        response = connection.respond(status, json.dumps(payload))
        response.headers["Content-Type"] = "application/json"
        return response

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        self.ws_headers.append(request.headers)
        self.ws_paths.append(request.path)
        return self.handshake(connection, request)

    def handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        return None

    async def _websocket(self, ws: ServerConnection) -> None:
        self.ws_connections += 1
        try:
            await self.websocket(ws)
        except (ConnectionClosed, ConnectionError):
            pass
        except Exception as exc:  # a crash here is a bug in the stub or the client
            self.problems.append(f"websocket handler crashed: {exc!r}")

    async def websocket(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    async def _http(self, request: HttpRequest) -> HttpResponse:
        self.http_requests.append(request)
        return await self.http(request)

    async def http(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(404)


def _abort(ws: ServerConnection) -> None:
    """Drop the connection without a close frame (a network failure, as the client sees it)."""
    ws.transport.abort()


# --- OpenAI -----------------------------------------------------------------------------


def _openai_error(kind: str, code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


INVALID_KEY = _openai_error(
    "invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-wrong."
)
INSUFFICIENT_QUOTA = _openai_error(
    "insufficient_quota",
    "insufficient_quota",
    "You exceeded your current quota, please check your plan and billing details.",
)
RATE_LIMITED = _openai_error(
    "requests", "rate_limit_exceeded", "Rate limit reached for requests per min."
)


class OpenAIStub(_Stub):
    def __init__(
        self,
        *,
        model: str,
        reject_websocket: tuple[int, Any] | None = None,
        quota_on_session: bool = False,
        drop_after_appends: int | None = None,
        silent: bool = False,
        http_responses: list[HttpResponse] | None = None,
        delta_delay: float = 0.005,
    ) -> None:
        super().__init__()
        self.model = model
        self.reject_websocket = reject_websocket
        self.quota_on_session = quota_on_session
        self.drop_after_appends = drop_after_appends
        self.silent = silent
        self.http_responses = list(http_responses or [])  # answered first, in order
        self.delta_delay = delta_delay
        self.client_events: list[str] = []
        self.appended_bytes: list[int] = []  # per append, 24 kHz PCM
        self.committed_bytes: list[int] = []  # per committed segment
        self.deltas_sent: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path != "/v1/realtime" or parse_qs(parts.query) != {"intent": ["transcription"]}:
            self.problems.append(f"unexpected realtime URL {request.path}")
            return connection.respond(404, "Not found")
        if request.headers.get("Authorization") != f"Bearer {OPENAI_KEY}":
            return self.reject(connection, 401, INVALID_KEY)
        if self.reject_websocket is not None:
            status, payload = self.reject_websocket
            return self.reject(connection, status, payload)
        return None

    async def send(self, ws: ServerConnection, event: dict[str, Any]) -> None:
        await ws.send(json.dumps({"event_id": f"event_{uuid.uuid4().hex[:12]}", **event}))

    async def websocket(self, ws: ServerConnection) -> None:
        await self.send(
            ws, {"type": "session.created", "session": {"type": "transcription", "id": "sess_1"}}
        )
        buffer = bytearray()
        appends = 0
        configured = False
        async for raw in ws:
            event = json.loads(raw)
            kind = event.get("type")
            self.client_events.append(kind)
            if kind == "session.update":
                session = event.get("session", {})
                audio_input = session.get("audio", {}).get("input", {})
                expected = {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": self.model},
                    "turn_detection": None,
                }
                if session.get("type") != "transcription" or audio_input != expected:
                    self.problems.append(f"unexpected session.update {session}")
                if self.quota_on_session:
                    await self.send(ws, {"type": "error", **INSUFFICIENT_QUOTA})
                    await ws.close(1008, "insufficient_quota")
                    return
                configured = True
                await self.send(ws, {"type": "session.updated", "session": session})
            elif kind == "input_audio_buffer.append":
                if not configured:
                    self.problems.append("audio appended before the session was configured")
                try:
                    audio = base64.b64decode(event["audio"], validate=True)
                except (KeyError, ValueError):
                    self.problems.append("an append without valid base64 audio")
                    continue
                if len(audio) % 2:
                    self.problems.append("an append with half a 16-bit sample")
                buffer += audio
                appends += 1
                self.appended_bytes.append(len(audio))
                if self.drop_after_appends is not None and appends >= self.drop_after_appends:
                    _abort(ws)
                    return
            elif kind == "input_audio_buffer.clear":
                buffer.clear()
                await self.send(ws, {"type": "input_audio_buffer.cleared"})
            elif kind == "input_audio_buffer.commit":
                if not buffer:
                    await self.send(
                        ws,
                        {
                            "type": "error",
                            "error": {
                                "type": "invalid_request_error",
                                "code": "input_audio_buffer_commit_empty",
                                "message": "Error committing input audio buffer: buffer is empty.",
                                "event_id": event.get("event_id"),
                            },
                        },
                    )
                    continue
                item_id = f"item_{uuid.uuid4().hex[:12]}"
                audio, buffer = bytes(buffer), bytearray()
                self.committed_bytes.append(len(audio))
                await self.send(
                    ws,
                    {
                        "type": "input_audio_buffer.committed",
                        "item_id": item_id,
                        "previous_item_id": None,
                    },
                )
                if not self.silent:
                    self.spawn(self._transcribe(ws, item_id, audio))
            else:
                self.problems.append(f"unexpected client event {kind!r}")

    async def _transcribe(self, ws: ServerConnection, item_id: str, audio: bytes) -> None:
        transcript = phrase_for(len(audio) / 2 / 24000)
        words = transcript.split(" ")
        with contextlib.suppress(Exception):
            for index, word in enumerate(words):
                await asyncio.sleep(self.delta_delay)
                delta = word if index == 0 else f" {word}"
                self.deltas_sent.append(delta)
                await self.send(
                    ws,
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": delta,
                    },
                )
            await self.send(
                ws,
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": {"type": "duration", "seconds": len(audio) / 2 / 24000},
                },
            )

    async def http(self, request: HttpRequest) -> HttpResponse:
        if (request.method, request.path) == ("GET", "/v1/models"):  # a key's cheapest read
            if request.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
                return HttpResponse.json(401, INVALID_KEY)
            models = [{"id": self.model, "object": "model"}, {"id": "whisper-1", "object": "model"}]
            return HttpResponse.json(200, {"object": "list", "data": models})
        if request.method != "POST" or request.path != "/v1/audio/transcriptions":
            self.problems.append(f"unexpected HTTP {request.method} {request.path}")
            return HttpResponse(404)
        if request.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
            return HttpResponse.json(401, INVALID_KEY)
        if self.http_responses:
            return self.http_responses.pop(0)
        fields = request.form()
        if fields.get("model", (None, b""))[1].decode() != self.model:
            self.problems.append(f"transcription request without model {self.model}")
        filename, content = fields.get("file", (None, b""))
        try:
            with wave.open(io.BytesIO(content)) as wav:
                if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                    self.problems.append("transcription file is not mono 16-bit")
                seconds = wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError):
            self.problems.append(f"transcription file {filename!r} is not a WAV file")
            return HttpResponse.json(400, _openai_error("invalid_request_error", None, "bad file"))
        return HttpResponse.json(200, {"text": phrase_for(seconds)})


# --- ElevenLabs -------------------------------------------------------------------------

QUOTA_DETAIL = {
    "detail": {
        "status": "quota_exceeded",
        "message": "This request exceeds your quota of 10000. You have 0 credits remaining, "
        "while 12 credits are required for this request.",
    }
}
INVALID_XI_KEY = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}


@dataclass
class _Context:
    text: str = ""
    audio_task: asyncio.Task[None] | None = None
    audio_sent: int = 0
    audio_done: bool = False
    close_requested: bool = False
    final_sent: bool = False
    chunks_sent_at_close: int | None = None


class ElevenLabsStub(_Stub):
    def __init__(
        self,
        *,
        model: str,
        voice_id: str,
        reject_websocket: tuple[int, Any] | None = None,
        quota_on_text: bool = False,
        drop_on_text: bool = False,
        silent: bool = False,
        chunk_count: int = 3,
        chunk_delay: float = 0.01,
        http_responses: list[HttpResponse] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.voice_id = voice_id
        self.reject_websocket = reject_websocket
        self.quota_on_text = quota_on_text
        self.drop_on_text = drop_on_text
        self.silent = silent
        self.chunk_count = chunk_count
        self.chunk_delay = chunk_delay
        self.http_responses = list(http_responses or [])
        self.messages: list[dict[str, Any]] = []
        self.keepalives: list[dict[str, Any]] = []
        self.contexts: dict[str, _Context] = {}  # every context of every connection, by id

    @property
    def base_url(self) -> str:
        return self.origin

    def audio(self, text: str) -> bytes:
        return sample_for(text).to_bytes(2, "little", signed=True) * (PCM_CHUNK_BYTES // 2)

    def handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        expected_path = f"/v1/text-to-speech/{self.voice_id}/multi-stream-input"
        query = parse_qs(parts.query)
        if parts.path != expected_path:
            self.problems.append(f"unexpected TTS socket path {parts.path}")
            return connection.respond(404, "Not found")
        if query.get("model_id") != [self.model] or query.get("output_format") != ["pcm_24000"]:
            self.problems.append(f"unexpected TTS socket query {parts.query}")
        if request.headers.get("xi-api-key") != ELEVENLABS_KEY:
            return self.reject(connection, 401, INVALID_XI_KEY)
        if self.reject_websocket is not None:
            status, payload = self.reject_websocket
            return self.reject(connection, status, payload)
        return None

    async def websocket(self, ws: ServerConnection) -> None:
        mine: dict[str, _Context] = {}
        async for raw in ws:
            message = json.loads(raw)
            self.messages.append(message)
            context_id = message.get("context_id")
            if message.get("close_socket"):
                await ws.close(1000)
                return
            if context_id is None:
                if message == {"text": ""}:
                    self.keepalives.append(message)
                else:
                    self.problems.append(f"a message without context_id: {message}")
                continue
            context = mine.get(context_id)
            if message.get("close_context"):
                if context is None:
                    self.problems.append(f"close_context for unknown context {context_id}")
                    continue
                context.close_requested = True
                context.chunks_sent_at_close = context.audio_sent
                await self._maybe_final(ws, context_id, context)
                continue
            text = message.get("text")
            if context is None:
                if text != " " or "voice_settings" not in message:
                    self.problems.append(f"context {context_id} opened without ' ' + settings")
                context = mine[context_id] = self.contexts[context_id] = _Context()
                continue
            if "voice_settings" in message:
                self.problems.append("voice_settings after a context's first message")
            if context.close_requested:
                self.problems.append(f"text for closed context {context_id}")
                continue
            if text:
                context.text += text
            if message.get("flush"):
                if self.quota_on_text:
                    await ws.close(1008, QUOTA_DETAIL["detail"]["message"])
                    return
                if self.drop_on_text:
                    _abort(ws)
                    return
                if not self.silent:
                    context.audio_task = asyncio.ensure_future(self._speak(ws, context_id, context))
                    self.tasks.add(context.audio_task)

    async def _speak(self, ws: ServerConnection, context_id: str, context: _Context) -> None:
        with contextlib.suppress(Exception):
            for _ in range(self.chunk_count):
                await asyncio.sleep(self.chunk_delay)
                await ws.send(
                    json.dumps(
                        {
                            "audio": base64.b64encode(self.audio(context.text)).decode(),
                            "isFinal": None,
                            "normalizedAlignment": None,
                            "alignment": None,
                            "contextId": context_id,
                        }
                    )
                )
                context.audio_sent += 1
            context.audio_done = True
            await self._maybe_final(ws, context_id, context)

    async def _maybe_final(self, ws: ServerConnection, context_id: str, context: _Context) -> None:
        """`isFinal` once the context is closed and its flushed text spoken."""
        if self.silent:
            return
        flushed = context.audio_task is not None
        if (
            context.close_requested
            and (context.audio_done or not flushed)
            and not context.final_sent
        ):
            context.final_sent = True
            await ws.send(json.dumps({"isFinal": True, "contextId": context_id}))

    async def http(self, request: HttpRequest) -> HttpResponse:
        if (request.method, request.path) == ("GET", "/v1/models"):  # a key's cheapest read
            if request.headers.get("xi-api-key") != ELEVENLABS_KEY:
                return HttpResponse.json(401, INVALID_XI_KEY)
            return HttpResponse.json(200, [{"model_id": self.model}, {"model_id": "eleven_v3"}])
        expected_path = f"/v1/text-to-speech/{self.voice_id}/stream"
        if request.method != "POST" or request.path != expected_path:
            self.problems.append(f"unexpected HTTP {request.method} {request.path}")
            return HttpResponse(404)
        if request.headers.get("xi-api-key") != ELEVENLABS_KEY:
            return HttpResponse.json(401, INVALID_XI_KEY)
        if self.http_responses:
            return self.http_responses.pop(0)
        if request.query.get("output_format") != ["pcm_24000"]:
            self.problems.append(f"unexpected output_format {request.query}")
        body = request.json()
        if body.get("model_id") != self.model:
            self.problems.append(f"stream request without model {self.model}: {body}")
        audio = self.audio(body.get("text", ""))
        # Split mid-sample on purpose: a client must keep whole samples together.
        stream = audio * self.chunk_count
        chunks = [stream[:301], stream[301:1501], stream[1501:]]
        return HttpResponse(
            200, headers={"Content-Type": "audio/pcm"}, chunks=chunks, chunk_delay=0.005
        )


def run_bounded(coroutine: Any) -> Any:
    """Await a coroutine from a synchronous test, on a fresh event loop (bounded, so a
    client bug fails the test instead of hanging the suite)."""
    running_loop = asyncio._get_running_loop()
    asyncio._set_running_loop(None)  # a browser test's Playwright may have left one marked
    try:
        return asyncio.run(asyncio.wait_for(coroutine, 30))
    finally:
        asyncio._set_running_loop(running_loop)


@contextlib.asynccontextmanager
async def running(stub: _Stub) -> AsyncIterator[Any]:
    await stub.start()
    try:
        yield stub
    finally:
        await stub.stop()
