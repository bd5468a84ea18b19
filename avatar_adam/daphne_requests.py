"""Daphne hands request bodies to Django unparsed, within limits, a little at a time.

Three things Daphne and the Twisted request under it do not do on their own:

- Twisted parses multipart and urlencoded POST bodies into `request.args`, which Daphne
  never reads: a malformed multipart body got a bare 400 before Django saw it (so never
  the API's error shape), and every upload was held in memory twice. Parsing is left to
  Django, with its limits and our errors.
- A body over the limit of its address (avatar_adam.body_limits) is refused with 413 as
  soon as its declared length says so, or, for a chunked body, as soon as that much has
  arrived: the answer goes out before the body is read, no "100 Continue" is sent, and
  whatever the client still sends is read and dropped (never stored) until the declared
  body ends or LINGER_SECONDS pass; then the connection closes.
- An accepted body stays where Twisted put it (in memory under 100 KB, else a temporary
  file) and reaches the application QUEUED_CHUNKS chunks ahead of what it has read,
  where Daphne would queue all of it in memory at once (a 25 MB upload was 25 MB of
  queued bytes). Django then spools it to disk beyond FILE_UPLOAD_MAX_MEMORY_SIZE.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import IO, Any
from urllib.parse import unquote

import structlog
from daphne import http_protocol
from twisted.internet import reactor

from avatar_adam.body_limits import body_limit, too_large_message
from core.api_errors import error_body

log = structlog.get_logger(__name__)

CHUNK_BYTES = 64 * 1024
QUEUED_CHUNKS = 4
# How long a refused client may go on sending (nginx's lingering_time is the same).
LINGER_SECONDS = 30.0


class _UnreadBody:
    """What Daphne itself reads of an accepted body: nothing. BodyFeeder passes `file` on."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    @property
    def closed(self) -> bool:
        return self.file.closed

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        self.file.close()


class BodyFeeder:
    """Stands in for Daphne's queue of messages to the application: the body goes in
    QUEUED_CHUNKS chunks of CHUNK_BYTES ahead of what the application has taken."""

    def __init__(self, queue: asyncio.Queue, body: IO[bytes]) -> None:
        self._queue = queue
        self._body = body
        self._feeding: asyncio.Future | None = None
        # The queue Daphne made is unbounded; bounded, `put` waits for the reader.
        queue._maxsize = QUEUED_CHUNKS  # type: ignore[attr-defined]

    def put_nowait(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.request" and self._feeding is None:
            # Daphne's one empty message for the body it did not read (_UnreadBody).
            self._feeding = asyncio.ensure_future(self._feed())
            return
        # http.disconnect: the client left or the answer is complete; no more body.
        if self._feeding is not None:
            self._feeding.cancel()
        self._queue._maxsize = 0  # type: ignore[attr-defined]
        self._queue.put_nowait(message)

    async def _feed(self) -> None:
        self._body.seek(0)
        while True:
            try:
                chunk = self._body.read(CHUNK_BYTES)
            except ValueError:  # the request was cleaned up (file closed) meanwhile
                return
            more = len(chunk) == CHUNK_BYTES
            await self._queue.put({"type": "http.request", "body": chunk, "more_body": more})
            if not more:
                return


class DjangoParsedWebRequest(http_protocol.WebRequest):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        self._application_queue: BodyFeeder | asyncio.Queue | None = None
        self._body_path = "/"
        self._body_limit = 0
        self._body_received = 0
        self._refused = False
        self._linger: Any = None
        super().__init__(*args, **kwargs)

    # --- the body arrives (Twisted's HTTPChannel calls these) ---------------------------

    def gotLength(self, length: int | None) -> None:
        if length != 0:
            # Before the request line is handed over, only the channel has the path.
            raw = getattr(self.channel, "_path", b"/").split(b"?", 1)[0]
            self._body_path = unquote(raw.decode("latin-1"))
            self._body_limit = body_limit(self._body_path)
            if length is not None and length > self._body_limit:
                self._refuse(length)
                return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_received += len(data)
        if self._body_received > self._body_limit:  # a chunked body, over the limit
            self.content.close()  # and the temporary file with it
            self._refuse(None)
            return
        super().handleContentChunk(data)

    def _refuse(self, declared: int | None) -> None:
        self._refused = True
        self.content = io.BytesIO()  # stays empty: what still arrives is dropped
        # allHeadersReceived answers "Expect: 100-continue" after gotLength: not for this one.
        self.requestHeaders.removeHeader(b"Expect")
        self.channel.persistent = False
        message = too_large_message(self._body_path, self._body_limit, declared)
        if self._body_path.startswith("/api/"):
            content_type = b"application/json"
            body = json.dumps(error_body("request_too_large", message)).encode()
        else:
            content_type = b"text/plain; charset=utf-8"
            body = message.encode()
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n%s"
            % (content_type, len(body), body)
        )
        log.warning(
            "request_body_refused",
            path=self._body_path,
            declared_bytes=declared,
            received_bytes=self._body_received,
            limit_bytes=self._body_limit,
        )
        self._linger = reactor.callLater(LINGER_SECONDS, self._close_refused)

    def _close_refused(self) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        transport = getattr(getattr(self, "channel", None), "transport", None)
        if transport is not None:
            transport.loseConnection()

    # --- the body has arrived --------------------------------------------------------------

    def process(self) -> Any:
        if self._refused:  # all of the refused body has been dropped: the answer is out
            self._close_refused()
            return None
        self.content = _UnreadBody(self.content)
        return super().process()

    @property
    def application_queue(self) -> BodyFeeder | asyncio.Queue | None:
        return self._application_queue

    @application_queue.setter
    def application_queue(self, queue: asyncio.Queue | None) -> None:
        # Daphne sets the application's queue here once the application is created.
        if queue is not None and isinstance(self.content, _UnreadBody):
            self._application_queue = BodyFeeder(queue, self.content.file)
        else:
            self._application_queue = queue

    def connectionLost(self, reason: Any) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


def leave_request_bodies_to_django() -> None:
    """Make Daphne's protocol build requests that do not parse their bodies, refuse them
    over the limit before reading them, and pass them on a chunk at a time (idempotent)."""
    # HTTPFactory.buildProtocol reads this module global for every connection.
    http_protocol.WebRequest = DjangoParsedWebRequest
