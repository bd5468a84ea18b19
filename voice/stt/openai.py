"""Hosted speech-to-text through OpenAI's API (or any server that speaks it, by base URL).

`RealtimeTranscription` keeps one Realtime WebSocket per call in a transcription session
with turn detection off: the pipeline decides turns, so each segment is committed by hand
and its transcript streams back as deltas, then a final text. If that socket cannot open,
or drops, with an error that may pass, the rest of the call goes over HTTP instead (each
segment is also kept here as 16 kHz PCM until its transcript arrives, so a segment cut
off by a drop is sent again over HTTP rather than lost).

`HttpTranscription` sends each segment as a WAV file to `/audio/transcriptions`.

Docs followed (read 2026):
- Realtime transcription guide:
  https://developers.openai.com/api/docs/guides/realtime-transcription
  (`wss://…/v1/realtime?intent=transcription` without `model` in the URL, then
  `session.update` with `type: "transcription"`, `audio/pcm` at 24 kHz,
  `turn_detection: null` to commit each turn explicitly)
- Client events: https://developers.openai.com/api/reference/resources/realtime/client-events
  (`input_audio_buffer.append` with base64 audio, `input_audio_buffer.commit`,
  `input_audio_buffer.clear`; "commit … will produce an error if the input audio buffer
  is empty")
- Server events: https://developers.openai.com/api/reference/resources/realtime/server-events
  (`session.updated`, `input_audio_buffer.committed` with `item_id`,
  `conversation.item.input_audio_transcription.delta` / `.completed` / `.failed`,
  `error` with `error.{type, code, message, event_id}`)
- File transcription: https://platform.openai.com/docs/api-reference/audio/createTranscription
  (multipart `file` + `model`, JSON `{"text": …}`; errors `{"error": {…, "code"}}`)
The GA interface needs no `OpenAI-Beta` header (that selected the beta event shapes, with
`transcription_session.update`); the `openai` SDK's own realtime client sends none.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import structlog
import websockets
from django.conf import settings
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from voice.audio import wav_bytes
from voice.errors import SpeechProviderError
from voice.stt import SAMPLE_RATE, PartialCallback

logger = structlog.get_logger(__name__)

REALTIME_SAMPLE_RATE = 24_000  # the only PCM rate a Realtime session accepts
# The service refuses to commit less than 100 ms ("buffer too small"); a pause-to-pause
# segment that short holds no words, so it is cleared instead.
_MIN_SEGMENT_BYTES = SAMPLE_RATE * 2 // 10
_MAX_EVENT_BYTES = 4 * 1024 * 1024
_DETAIL_CHARS = 200


# --- Audio ------------------------------------------------------------------------------


class _Resampler:
    """Linear interpolation of 16-bit mono PCM from one rate to another, continuous across
    the chunks of one segment (each chunk on its own would restart the sample grid)."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.source_rate = source_rate
        self.target_rate = target_rate
        self.reset()

    def reset(self) -> None:
        self._odd = b""  # half a sample split between chunks
        self._last: float | None = None  # the previous chunk's last sample
        self._consumed = 0  # input samples seen
        self._produced = 0  # output samples made

    def process(self, pcm: bytes) -> bytes:
        data = self._odd + pcm
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        if not whole:
            return b""
        if self.source_rate == self.target_rate:
            return data[:whole]
        new = np.frombuffer(data[:whole], dtype="<i2").astype(np.float64)
        if self._last is None:
            samples, start = new, self._consumed
        else:
            samples, start = np.concatenate(([self._last], new)), self._consumed - 1
        self._consumed += len(new)
        self._last = float(new[-1])
        # Output sample k sits at input position k * source / target: make every one up to
        # the last input sample seen.
        end = (self._consumed - 1) * self.target_rate // self.source_rate + 1
        positions = np.arange(self._produced, end) * self.source_rate / self.target_rate - start
        self._produced = end
        out = np.interp(positions, np.arange(len(samples)), samples)
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


# --- Errors a learner can read ----------------------------------------------------------

_AUTH = SpeechProviderError(
    "The speech recognition service rejected its API key; an administrator must check the "
    "speech-to-text key."
)
_FORBIDDEN = SpeechProviderError(
    "The speech recognition service refused this account; an administrator must check the "
    "speech-to-text settings."
)
_QUOTA = SpeechProviderError(
    "The speech recognition service's quota or credit is used up; an administrator must "
    "check the speech-to-text plan and billing.",
    out_of_credit=True,
)


def _error(template: SpeechProviderError) -> SpeechProviderError:
    """A fresh copy (an exception instance carries its traceback; never raise a shared one)."""
    return template.again()


def _timeout_error() -> SpeechProviderError:
    return SpeechProviderError(
        "Speech recognition took too long; please say that again.", retryable=True
    )


def _lost_error() -> SpeechProviderError:
    return SpeechProviderError(
        "The connection to the speech recognition service was lost; please say that again.",
        retryable=True,
    )


def _busy_error(retry_after: float | None = None) -> SpeechProviderError:
    wait = f" in about {max(1, round(retry_after))} seconds" if retry_after else " in a moment"
    return SpeechProviderError(
        f"The speech recognition service is busy; please try again{wait}.", retryable=True
    )


def _detail(text: object) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _classify(
    status: int | None,
    code: str | None = None,
    kind: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
) -> SpeechProviderError:
    """OpenAI's error (an HTTP status and/or an error object's code and type) as the
    sentence and `retryable` flag the pipeline needs. Quota and keys are never retried."""
    labels = {str(code or "").lower(), str(kind or "").lower()}
    text = str(message or "").lower()
    if labels & {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}:
        return _error(_QUOTA)
    if status == 402 or "exceeded your current quota" in text:
        return _error(_QUOTA)
    if status == 401 or labels & {"invalid_api_key", "authentication_error", "unauthorized"}:
        return _error(_AUTH)
    if status == 403 or labels & {"permission_denied", "unsupported_country_region_territory"}:
        return _error(_FORBIDDEN)
    if status == 429 or labels & {"rate_limit_exceeded", "rate_limit_error"}:
        return _busy_error(retry_after)
    if (status is not None and status >= 500) or labels & {"server_error", "api_error"}:
        return SpeechProviderError(
            "The speech recognition service had a problem; please say that again.",
            retryable=True,
        )
    if status == 404:
        return SpeechProviderError(
            "The speech-to-text endpoint was not found; an administrator must check its base "
            "URL and model."
        )
    detail = _detail(message) or (f"HTTP {status}" if status else "no reason given")
    return SpeechProviderError(f"The speech recognition service refused the request ({detail}).")


def _json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(headers: Any) -> float | None:
    """Seconds from a `Retry-After` (or `retry-after-ms`) header, if any."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.datetime.now(when.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None


def _from_body(status: int | None, body: Any, retry_after: float | None) -> SpeechProviderError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return _classify(
            status, error.get("code"), error.get("type"), error.get("message"), retry_after
        )
    return _classify(
        status, message=body if isinstance(body, str) else None, retry_after=retry_after
    )


def _from_event(error: Any) -> SpeechProviderError:
    """An `error` (or `….failed`) event's error object."""
    if not isinstance(error, dict):
        return _classify(None, message=str(error))
    return _classify(None, error.get("code"), error.get("type"), error.get("message"))


def _from_close(code: int | None, reason: str | None) -> SpeechProviderError:
    """A closed socket. 1008 is a policy refusal (a key, quota or bad request: trying again
    will not help); anything else is a lost connection another transport may get past."""
    text = (reason or "").lower()
    if "quota" in text or "billing" in text:
        return _error(_QUOTA)
    if "api key" in text or "api_key" in text or "unauthori" in text or "authenticat" in text:
        return _error(_AUTH)
    if code == 1008:
        return _classify(None, message=reason or "policy violation")
    if code == 1013:  # try again later
        return _busy_error()
    return _lost_error()


def _from_open_failure(exc: BaseException) -> SpeechProviderError:
    if isinstance(exc, SpeechProviderError):
        return exc
    if isinstance(exc, InvalidStatus):
        response = exc.response
        if response.status_code in (404, 405, 426):
            # No Realtime endpoint here (a server with only the HTTP API, say): HTTP may work.
            return SpeechProviderError(
                "The speech recognition service offers no streaming endpoint.", retryable=True
            )
        return _from_body(
            response.status_code,
            _json(response.body or b"") or (response.body or b"").decode("utf-8", "replace"),
            _retry_after(response.headers),
        )
    if isinstance(exc, InvalidURI):
        return SpeechProviderError(
            "The speech-to-text base URL is not valid; an administrator must correct it."
        )
    if isinstance(exc, TimeoutError):
        return _timeout_error()
    if isinstance(exc, ConnectionClosed):
        received = exc.rcvd
        return _from_close(
            received.code if received else None, received.reason if received else None
        )
    # OSError (refused, DNS, TLS) and other handshake failures: the network, most likely.
    return SpeechProviderError(
        "The speech recognition service could not be reached; please try again.",
        retryable=True,
    )


# --- HTTP: one request a segment --------------------------------------------------------


class _HttpTranscriber:
    """POST a segment as WAV to `{base_url}/audio/transcriptions`; one retry, only when
    the service says it is busy or failing and its `Retry-After` fits in the time left."""

    def __init__(self, api_key: str, base_url: str, model: str) -> None:
        self.url = base_url.rstrip("/") + "/audio/transcriptions"
        self.model = model
        self.timeout = settings.VOICE_STT_TIMEOUT_SECONDS
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
        )

    async def transcribe(self, pcm: bytes) -> str:
        """The text of one segment of 16 kHz PCM. Raises SpeechProviderError."""
        if not pcm:
            return ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        wav = wav_bytes(pcm, SAMPLE_RATE)
        for attempt in range(2):
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self.client.post(
                        self.url,
                        data={"model": self.model, "response_format": "json"},
                        files={"file": ("segment.wav", wav, "audio/wav")},
                    )
            except (TimeoutError, httpx.TimeoutException):
                raise _timeout_error() from None
            except httpx.HTTPError as exc:
                logger.warning("speech_to_text_http_failed", error=str(exc), url=self.url)
                raise SpeechProviderError(
                    "The speech recognition service could not be reached; please say that again.",
                    retryable=True,
                ) from None
            if response.is_success:
                body = _json(response.content)
                if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                    raise SpeechProviderError(
                        "The speech recognition service sent an answer that could not be read.",
                        retryable=True,
                    )
                return body["text"].strip()
            if response.is_redirect:
                raise SpeechProviderError(
                    "The speech-to-text endpoint redirects elsewhere; an administrator must "
                    "correct its base URL."
                )
            retry_after = _retry_after(response.headers)
            error = _from_body(response.status_code, _json(response.content), retry_after)
            wait = retry_after if retry_after is not None else 0.5
            transient = response.status_code in (408, 429, 500, 502, 503, 504)
            if attempt == 0 and error.retryable and transient and loop.time() + wait < deadline:
                logger.info(
                    "speech_to_text_http_retry", status=response.status_code, wait_seconds=wait
                )
                await asyncio.sleep(wait)
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.client.aclose()


class HttpTranscription:
    """One HTTP request per segment (no partials)."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.model_id = settings.VOICE_STT_MODEL

    async def open(self, on_partial: PartialCallback | None = None) -> _HttpStream:
        return _HttpStream(_HttpTranscriber(self.api_key, self.base_url, self.model_id))


class _HttpStream:
    def __init__(self, transcriber: _HttpTranscriber) -> None:
        self.transcriber = transcriber
        self.buffer = bytearray()

    async def send_audio(self, pcm: bytes) -> None:
        self.buffer += pcm

    async def finish_segment(self) -> str:
        pcm, self.buffer = bytes(self.buffer), bytearray()
        return await self.transcriber.transcribe(pcm)

    async def close(self) -> None:
        self.buffer.clear()
        await self.transcriber.close()


# --- Realtime: one WebSocket a call -----------------------------------------------------


def realtime_url(base_url: str) -> str:
    """`https://host/v1` → `wss://host/v1/realtime?intent=transcription`."""
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise SpeechProviderError(
            "The speech-to-text base URL is not valid; an administrator must correct it."
        )
    path = parts.path.rstrip("/") + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, "intent=transcription", ""))


class RealtimeTranscription:
    """Streaming transcription over the Realtime API; HTTP is its fallback."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.model_id = settings.VOICE_STT_MODEL

    async def open(self, on_partial: PartialCallback | None = None) -> _RealtimeStream:
        stream = _RealtimeStream(self, on_partial)
        await stream.connect()
        return stream


@dataclass(eq=False)
class _Segment:
    """A committed segment waiting for its transcript."""

    pcm: bytes  # 16 kHz, kept for the HTTP fallback
    event_id: str
    future: asyncio.Future[str]
    item_id: str | None = None
    text: str = ""  # the deltas so far
    fallback: asyncio.Task[None] | None = field(default=None, repr=False)


class _RealtimeStream:
    def __init__(self, owner: RealtimeTranscription, on_partial: PartialCallback | None) -> None:
        self.owner = owner
        self.on_partial = on_partial
        self.timeout = settings.VOICE_STT_TIMEOUT_SECONDS
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.http: _HttpTranscriber | None = None  # set once the socket is given up
        self.failure: SpeechProviderError | None = None  # final: every later call raises it
        self.segment = bytearray()  # the current segment's 16 kHz audio
        self.resampler = _Resampler(SAMPLE_RATE, REALTIME_SAMPLE_RATE)
        self.awaiting_commit: deque[_Segment] = deque()  # commits sent, not yet acknowledged
        self.items: dict[str, _Segment] = {}  # acknowledged, transcript pending
        self.ready: asyncio.Future[None] | None = None
        self.gone = False  # the socket is closed (by us or the far end)
        self.closed = False

    @property
    def transport(self) -> str:
        return "http" if self.http is not None else "websocket"

    # Opening

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        try:
            url = realtime_url(self.owner.base_url)
            self.ws = await websockets.connect(
                url,
                additional_headers={"Authorization": f"Bearer {self.owner.api_key}"},
                open_timeout=self.timeout,
                ping_interval=20,
                ping_timeout=self.timeout,
                close_timeout=2,
                max_size=_MAX_EVENT_BYTES,
            )
            self.reader = asyncio.create_task(self._read(self.ws))
            await self._send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {
                            "input": {
                                "format": {"type": "audio/pcm", "rate": REALTIME_SAMPLE_RATE},
                                "transcription": {"model": self.owner.model_id},
                                "turn_detection": None,
                            }
                        },
                    },
                }
            )
            async with asyncio.timeout(self.timeout):
                await self.ready
        except Exception as exc:
            error = self.failure or _from_open_failure(exc)
            await self._close_socket()
            if not error.retryable:
                raise error from None
            self._use_http(error, during="open")

    def _use_http(self, error: SpeechProviderError, during: str) -> None:
        if self.http is None:
            logger.warning(
                "speech_to_text_fallback",
                provider="openai-realtime",
                fallback="openai-http",
                during=during,
                reason=str(error),
                model=self.owner.model_id,
            )
            self.http = _HttpTranscriber(
                self.owner.api_key, self.owner.base_url, self.owner.model_id
            )

    # The socket's events

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                event = _json(raw)
                if isinstance(event, dict):
                    await self._dispatch(event)
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave segments waiting for nothing
            logger.exception("speech_to_text_reader_failed")
        await self._lost(_from_close(ws.close_code, ws.close_reason))

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.updated":
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        elif kind == "input_audio_buffer.committed":
            if self.awaiting_commit:
                segment = self.awaiting_commit.popleft()
                segment.item_id = str(event.get("item_id"))
                if not segment.future.done():
                    self.items[segment.item_id] = segment
        elif kind == "conversation.item.input_audio_transcription.delta":
            segment = self.items.get(str(event.get("item_id")))
            delta = event.get("delta")
            if segment is not None and isinstance(delta, str) and delta:
                segment.text += delta
                if self.on_partial is not None:
                    try:
                        await self.on_partial(segment.text.strip())
                    except Exception:
                        logger.exception("speech_to_text_partial_callback_failed")
        elif kind == "conversation.item.input_audio_transcription.completed":
            segment = self.items.pop(str(event.get("item_id")), None)
            if segment is not None and not segment.future.done():
                transcript = event.get("transcript")
                segment.future.set_result(
                    (transcript if isinstance(transcript, str) else segment.text).strip()
                )
        elif kind == "conversation.item.input_audio_transcription.failed":
            segment = self.items.pop(str(event.get("item_id")), None)
            error = _from_event(event.get("error"))
            logger.warning("speech_to_text_segment_failed", reason=str(error))
            if segment is not None and not segment.future.done():
                segment.future.set_exception(error)
        elif kind == "error":
            self._on_error_event(event.get("error"))

    def _on_error_event(self, detail: Any) -> None:
        error = _from_event(detail)
        logger.warning(
            "speech_to_text_error_event",
            code=detail.get("code") if isinstance(detail, dict) else None,
            reason=str(error),
            retryable=error.retryable,
        )
        event_id = detail.get("event_id") if isinstance(detail, dict) else None
        for segment in list(self.awaiting_commit):
            if event_id and segment.event_id == event_id:  # this commit was refused
                self.awaiting_commit.remove(segment)
                if not segment.future.done():
                    segment.future.set_exception(error)
                return
        if self.ready is not None and not self.ready.done():
            if not error.retryable:
                self.failure = error
            self.ready.set_exception(error)
        elif not error.retryable:
            self._fail(error)

    def _fail(self, error: SpeechProviderError) -> None:
        """A final error (a key, quota): every waiting and later segment raises it."""
        self.failure = self.failure or error
        for segment in [*self.awaiting_commit, *self.items.values()]:
            if not segment.future.done():
                segment.future.set_exception(_error(self.failure))
        self.awaiting_commit.clear()
        self.items.clear()

    async def _lost(self, error: SpeechProviderError) -> None:
        """The socket is gone: carry on over HTTP if that may help, else fail."""
        if self.gone:
            return
        self.gone = True
        if self.closed:
            return
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(error)
            return
        if self.failure is not None or not error.retryable:
            self._fail(self.failure or error)
            return
        self._use_http(error, during="call")
        # Segments committed but not transcribed go again, whole, over HTTP.
        for segment in [*self.awaiting_commit, *self.items.values()]:
            if not segment.future.done():
                segment.fallback = asyncio.create_task(self._transcribe_over_http(segment))
        self.awaiting_commit.clear()
        self.items.clear()

    async def _transcribe_over_http(self, segment: _Segment) -> None:
        assert self.http is not None
        try:
            text = await self.http.transcribe(segment.pcm)
        except SpeechProviderError as error:
            if not segment.future.done():
                segment.future.set_exception(error)
        else:
            if not segment.future.done():
                segment.future.set_result(text)

    async def _send(self, event: dict[str, Any]) -> None:
        """Send one event; a socket that is gone (or stalls) hands over to `_lost`."""
        ws = self.ws
        if ws is None or self.gone:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await ws.send(json.dumps(event))
        except ConnectionClosed:
            await self._lost(_from_close(ws.close_code, ws.close_reason))
        except TimeoutError:
            await self._lost(_lost_error())
            await self._close_socket()

    def _check(self) -> None:
        if self.closed:
            raise SpeechProviderError("This speech recognition stream is closed.")
        if self.failure is not None:
            raise _error(self.failure)

    # TranscriptionStream

    async def send_audio(self, pcm: bytes) -> None:
        self._check()
        if not pcm:
            return
        self.segment += pcm
        if self.http is not None:
            return  # the whole segment goes over HTTP at its end
        audio = self.resampler.process(pcm)
        if audio:
            await self._send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
            )
        self._check()

    async def finish_segment(self) -> str:
        self._check()
        pcm, self.segment = bytes(self.segment), bytearray()
        self.resampler.reset()
        if not pcm:
            return ""
        if self.http is not None:
            return await self.http.transcribe(pcm)
        if len(pcm) < _MIN_SEGMENT_BYTES:
            await self._send({"type": "input_audio_buffer.clear"})
            self._check()
            return ""
        segment = _Segment(
            pcm=pcm,
            event_id=f"commit_{uuid.uuid4().hex}",
            future=asyncio.get_running_loop().create_future(),
        )
        self.awaiting_commit.append(segment)
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(
                    {"type": "input_audio_buffer.commit", "event_id": segment.event_id}
                )
                if self.http is not None and segment.fallback is None and not segment.future.done():
                    # The socket went before the commit was sent: nothing else will do it.
                    segment.fallback = asyncio.create_task(self._transcribe_over_http(segment))
                return await segment.future
        except TimeoutError:
            if segment.fallback is not None:
                segment.fallback.cancel()
            if not segment.future.done():
                segment.future.cancel()  # a late transcript for it is ignored
            raise _timeout_error() from None

    async def _close_socket(self) -> None:
        ws = self.ws
        self.gone = True
        if ws is not None:
            try:
                async with asyncio.timeout(2):
                    await ws.close()
            except Exception:  # closing is best effort
                logger.debug("speech_to_text_close_failed", exc_info=True)
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.segment.clear()
        await self._close_socket()
        for segment in [*self.awaiting_commit, *self.items.values()]:
            if segment.fallback is not None:
                segment.fallback.cancel()
            if not segment.future.done():
                segment.future.cancel()
        self.awaiting_commit.clear()
        self.items.clear()
        if self.http is not None:
            await self.http.close()
