"""A local HTTP server that speaks the OpenAI API wire format, for testing our real clients.

The SDK under test talks real HTTP to 127.0.0.1 on a random port; nothing in it is patched.
Tests queue behaviours for the next requests with `server.script(...)`:

    with OpenAIWireServer(api_key="sk-test") as wire:
        wire.script(Fail(429, retry_after="0"), Delay(3), WrongCount())
        client = OpenAI(base_url=wire.base_url, api_key="sk-test")
        ...
        wire.requests[0].body["dimensions"]

`POST /v1/embeddings` is built in (JSON or base64 float32 answers, as OpenAI gives them).
Other endpoints (chat completions, SSE streams) are added with `server.route(path, handler)`;
a handler takes the `RecordedRequest` and returns a `Response`, whose `chunks` can be written
one by one with pauses for streaming.
"""

import base64
import hashlib
import json
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ----------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Fail:
    """Answer with an OpenAI-style error body and this HTTP status."""

    status: int
    message: str = "scripted failure"
    retry_after: str | None = None  # the Retry-After header, e.g. "0"
    type: str = "server_error"
    code: str | None = None  # e.g. "insufficient_quota"


@dataclass(frozen=True)
class Redirect:
    """Answer with a redirect to `location` (where a client that follows it would go)."""

    location: str
    status: int = 307


@dataclass(frozen=True)
class Answer:
    """Answer 200 with this JSON body, whatever was asked (e.g. `{}`)."""

    json: Any


@dataclass(frozen=True)
class Delay:
    """Wait this long, then answer normally (a client that timed out has gone by then)."""

    seconds: float


@dataclass(frozen=True)
class WrongCount:
    """Answer /embeddings with `delta` more (or fewer) vectors than inputs."""

    delta: int = -1


@dataclass(frozen=True)
class WrongDimensions:
    """Answer /embeddings with vectors one element too long."""


@dataclass(frozen=True)
class FloatsOnly:
    """Answer /embeddings with JSON floats even when base64 was asked (lenient servers do)."""


# ----------------------------------------------------------------------------- wire types


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    raw: bytes


@dataclass
class Response:
    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # For streaming: written in order, each after its delay in seconds (Content-Type from headers)
    chunks: list[tuple[bytes, float]] | None = None


def error_response(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None
) -> Response:
    return Response(status, {"error": {"message": message, "type": type_, "code": code}})


def wire_vector(text: str, dimensions: int) -> list[float]:
    """The server's deterministic, deliberately not normalised vector for a text."""
    seed = hashlib.sha256(text.encode()).digest()
    values = []
    for i in range(dimensions):
        byte = seed[i % len(seed)] ^ (i * 37 % 256)
        values.append(round((byte - 127.5) / 40.0, 4))
    return values


# ----------------------------------------------------------------------------- server

Handler = Callable[[RecordedRequest, Any], Response]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here


class OpenAIWireServer:
    """A threaded stdlib HTTP server on 127.0.0.1; use it as a context manager."""

    def __init__(self, *, api_key: str | None = None, dimensions: int = 8) -> None:
        self.api_key = api_key  # None: any key (or none) is accepted
        self.default_dimensions = dimensions
        self._requests: list[RecordedRequest] = []
        self._behaviours: deque = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.routes: dict[str, Handler] = {"/v1/embeddings": self._embeddings}
        self.httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "OpenAIWireServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # wakes handlers that are sleeping through a Delay
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- what tests use

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def script(self, *behaviours: Any) -> None:
        """Queue behaviours for the next requests, one each; then every request is answered."""
        with self._lock:
            self._behaviours.extend(behaviours)

    def route(self, path: str, handler: Handler) -> None:
        """Answer POSTs to `path` (e.g. "/v1/chat/completions") with handler(request, behaviour)."""
        self.routes[path] = handler

    # -- built-in endpoint

    def _embeddings(self, request: RecordedRequest, behaviour: Any) -> Response:
        body = request.body
        if not isinstance(body, dict):
            return error_response(400, "We could not parse the JSON body of your request.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error_response(400, "you must provide a model parameter")
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(text, str) and text for text in inputs)
        ):
            return error_response(400, "'$.input' is invalid. Please check the API reference.")
        dimensions = body.get("dimensions", self.default_dimensions)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            return error_response(400, "'dimensions' must be a positive integer.")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return error_response(400, "'encoding_format' must be 'float' or 'base64'.")
        if isinstance(behaviour, WrongCount):
            inputs = (
                inputs[: len(inputs) + behaviour.delta]
                if behaviour.delta < 0
                else (inputs + inputs[: behaviour.delta])
            )
        size = dimensions + 1 if isinstance(behaviour, WrongDimensions) else dimensions
        data = []
        for index, text in enumerate(inputs):
            vector = wire_vector(text, size)
            if encoding == "base64" and not isinstance(behaviour, FloatsOnly):
                embedding: Any = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(text.split()) for text in inputs)
        return Response(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- plumbing

    def _answer(self, request: RecordedRequest) -> Response:
        with self._lock:
            self._requests.append(request)
            behaviour = self._behaviours.popleft() if self._behaviours else None
        if isinstance(behaviour, Delay):
            self._closing.wait(behaviour.seconds)
        if isinstance(behaviour, Redirect):
            return Response(behaviour.status, {}, headers={"Location": behaviour.location})
        if isinstance(behaviour, Answer):
            return Response(200, behaviour.json)
        if isinstance(behaviour, Fail):
            response = error_response(
                behaviour.status, behaviour.message, behaviour.type, behaviour.code
            )
            if behaviour.retry_after is not None:
                response.headers["Retry-After"] = behaviour.retry_after
            return response
        if self.api_key is not None:
            presented = request.headers.get("authorization", "").removeprefix("Bearer ")
            if presented != self.api_key:
                # Like OpenAI, the message names the key it got (OpenAI masks most of it).
                return error_response(401, f"Incorrect API key provided: {presented}.")
        handler = self.routes.get(request.path)
        if handler is None:
            return error_response(404, f"Invalid URL (POST {request.path})")
        return handler(request, behaviour)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                request = RecordedRequest(
                    method="POST",
                    path=self.path.split("?", 1)[0],
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    raw=raw,
                )
                response = server._answer(request)
                try:
                    self._send(response)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before we answered

            def _send(self, response: Response) -> None:
                self.send_response(response.status)
                if response.chunks is not None:
                    headers = {"Content-Type": "text/event-stream", **response.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()  # HTTP/1.0: the end of the stream closes the connection
                    for chunk, delay in response.chunks:
                        if delay and server._closing.wait(delay):
                            return
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    return
                data = json.dumps(response.json).encode()
                headers = {
                    "Content-Type": "application/json",
                    "Content-Length": str(len(data)),
                    **response.headers,
                }
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return RequestHandler
