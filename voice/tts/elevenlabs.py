"""Hosted text-to-speech: ElevenLabs, one multi-context WebSocket per call.

Each clause is its own context on the call's socket: the context is opened (a single
space with the voice settings), given the clause with `flush`, and closed at once, since
ElevenLabs sends a context's `isFinal` only when the context is closed; a close lets text
already flushed finish. Audio comes back as base64 PCM (24 kHz, 16-bit mono) tagged with
its `contextId`. A clause abandoned early (barge-in) has its context closed if that was
not yet sent, and whatever audio of it still arrives is dropped, never handed to the next
clause. The socket is kept warm with `{"text": ""}` well inside the idle timeout.

If the socket cannot open, or drops, with an error that may pass, the rest of the call
uses the HTTP stream endpoint through the `elevenlabs` SDK. A clause that had already
played some audio when the socket dropped is not said again (the learner would hear it
twice): it fails with a retryable error and the next clause goes over HTTP.

Docs followed (read 2026):
- Multi-context WebSocket reference:
  https://elevenlabs.io/docs/api-reference/text-to-speech/v-1-text-to-speech-voice-id-multi-stream-input
  (`/v1/text-to-speech/{voice_id}/multi-stream-input`, query `model_id`, `output_format`,
  `inactivity_timeout` default 20 s, `auto_mode`; header `xi-api-key`; server messages
  `{"audio", "contextId"}` and `{"isFinal": true, "contextId"}`)
- Multi-context guide:
  https://elevenlabs.io/docs/eleven-api/guides/how-to/websockets/multi-context-web-socket
  (one socket per session, `flush` at the end of complete sentences, `close_context` on
  interruption, `{"text": ""}` to keep alive, `close_socket` at the end, 5 contexts at most)
- HTTP stream: https://elevenlabs.io/docs/api-reference/text-to-speech/stream
  (`POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_24000`, body
  `{"text", "model_id"}`; errors `{"detail": {"status": "quota_exceeded", "message"}}`)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import structlog
import websockets
from django.conf import settings
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from voice.errors import SpeechProviderError
from voice.tts import OUTPUT_SAMPLE_RATE, Voice

logger = structlog.get_logger(__name__)

OUTPUT_FORMAT = f"pcm_{OUTPUT_SAMPLE_RATE}"
# The socket closes after 20 s without input (`inactivity_timeout`'s default); a
# keep-alive goes out after this long without anything sent.
KEEPALIVE_SECONDS = 10.0
# The schema's defaults, sent explicitly so a voice's stored settings don't vary a call.
VOICE_SETTINGS = {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.0}
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_DETAIL_CHARS = 200

# Premade voices every account can use (ids from ElevenLabs' voice library; "Bella" is
# listed there today as "Sarah", same id).
VOICES = [
    Voice("21m00Tcm4TlvDq8ikWAM", "Rachel (US English, calm)"),
    Voice("pNInz6obpgDQGcFmaJgB", "Adam (US English, deep)"),
    Voice("ErXwobaYiN019PkySvjV", "Antoni (US English, warm)"),
    Voice("EXAVITQu4vr4xnSDxMaL", "Bella (US English, soft)"),
    Voice("TxGEqnHWrfWFTfGW9XjX", "Josh (US English, young)"),
]


# --- Errors a learner can read ----------------------------------------------------------


def _auth_error() -> SpeechProviderError:
    return SpeechProviderError(
        "The speech service (ElevenLabs) rejected its API key; an administrator must check "
        "the text-to-speech key."
    )


def _quota_error() -> SpeechProviderError:
    return SpeechProviderError(
        "The speech service (ElevenLabs) has used up its character quota; an administrator "
        "must check the text-to-speech plan.",
        out_of_credit=True,
    )


def _timeout_error() -> SpeechProviderError:
    return SpeechProviderError("The reply's voice took too long to arrive.", retryable=True)


def _lost_error() -> SpeechProviderError:
    return SpeechProviderError("The connection to the speech service was lost.", retryable=True)


def _detail(text: object) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _classify(status: int | None, label: str | None, message: str | None) -> SpeechProviderError:
    """ElevenLabs' error (an HTTP status and/or a `status`/`error` label) as the sentence
    and `retryable` flag the pipeline needs. Keys, quota and payment are never retried."""
    label = str(label or "").lower()
    text = str(message or "").lower()
    if "quota" in label or "quota" in text or label in {"payment_required", "insufficient_credits"}:
        return _quota_error()
    if status == 402:
        return _quota_error()
    if status in (401, 403) or label in {
        "invalid_api_key",
        "unauthorized",
        "needs_authorization",
        "missing_api_key",
        "auth_error",
    }:
        return _auth_error()
    if "api key" in text or "api_key" in text:
        return _auth_error()
    if status == 429 or label in {
        "too_many_concurrent_requests",
        "system_busy",
        "rate_limit_exceeded",
        "rate_limited",
    }:
        return SpeechProviderError(
            "The speech service (ElevenLabs) is busy; please try again in a moment.",
            retryable=True,
        )
    if label == "voice_not_found" or status == 404:
        return SpeechProviderError(
            "The scenario's voice is not available at ElevenLabs; an administrator must "
            "choose another voice."
        )
    if status is not None and status >= 500:
        return SpeechProviderError(
            "The speech service (ElevenLabs) had a problem; please try again.", retryable=True
        )
    detail = _detail(message) or label or (f"HTTP {status}" if status else "no reason given")
    return SpeechProviderError(f"The speech service (ElevenLabs) refused the request ({detail}).")


def _from_body(status: int | None, body: Any) -> SpeechProviderError:
    """An HTTP error body: `{"detail": {"status", "message"}}` (or a plain `detail`)."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            body = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return _classify(status, detail.get("status") or detail.get("code"), detail.get("message"))
    if isinstance(detail, list):  # a validation error list
        return _classify(status, None, json.dumps(detail)[:_DETAIL_CHARS])
    return _classify(status, None, detail if isinstance(detail, str) else None)


def _from_message(message: dict[str, Any]) -> SpeechProviderError | None:
    """A socket message that reports an error instead of audio, if it is one."""
    error = message.get("error")
    if not error and message.get("message_type") not in {"error", "auth_error", "quota_exceeded"}:
        return None
    if isinstance(error, dict):
        return _classify(
            error.get("code") if isinstance(error.get("code"), int) else None,
            error.get("status") or error.get("type") or error.get("code"),
            error.get("message"),
        )
    return _classify(None, str(error or message.get("message_type")), message.get("message"))


def _from_close(code: int | None, reason: str | None) -> SpeechProviderError:
    """A closed socket. 1008 (policy) carries the reason: a key or quota is final; an idle
    timeout or anything else unexpected is a lost connection that HTTP may get past."""
    text = (reason or "").lower()
    if "quota" in text or "credits" in text:
        return _quota_error()
    if "api key" in text or "api_key" in text or "unauthori" in text:
        return _auth_error()
    if code == 1008 and "timeout" not in text:
        return _classify(None, None, reason or "policy violation")
    return _lost_error()


def _from_open_failure(exc: BaseException) -> SpeechProviderError:
    if isinstance(exc, SpeechProviderError):
        return exc
    if isinstance(exc, InvalidStatus):
        return _from_body(exc.response.status_code, exc.response.body or b"")
    if isinstance(exc, InvalidURI):
        return SpeechProviderError(
            "The text-to-speech base URL is not valid; an administrator must correct it."
        )
    if isinstance(exc, TimeoutError):
        return _timeout_error()
    if isinstance(exc, ConnectionClosed):
        received = exc.rcvd
        return _from_close(received.code if received else None, received.reason if received else "")
    return SpeechProviderError("The speech service could not be reached.", retryable=True)


class _Aligner:
    """Whole 16-bit samples only: a chunk that ends mid-sample keeps its odd byte."""

    def __init__(self) -> None:
        self.odd = b""

    def push(self, chunk: bytes) -> bytes:
        data = self.odd + chunk
        whole = len(data) - len(data) % 2
        self.odd = data[whole:]
        return data[:whole]


# --- The provider ------------------------------------------------------------------------


class ElevenLabsSpeech:
    def __init__(self, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.model_id = settings.VOICE_TTS_MODEL

    def voices(self) -> list[Voice]:
        return list(VOICES)

    def websocket_url(self, voice_id: str) -> str:
        parts = urlsplit(self.base_url)
        scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme.lower())
        if scheme is None or not parts.netloc:
            raise SpeechProviderError(
                "The text-to-speech base URL is not valid; an administrator must correct it."
            )
        path = (
            f"{parts.path.rstrip('/')}/v1/text-to-speech/{quote(voice_id, safe='')}"
            "/multi-stream-input"
        )
        query = urlencode(
            {
                "model_id": self.model_id,
                "output_format": OUTPUT_FORMAT,
                # Whole clauses arrive with `flush`: no need for the server to wait for more
                # text before it starts (the guide recommends it for full sentences).
                "auto_mode": "true",
            }
        )
        return urlunsplit((scheme, parts.netloc, path, query, ""))

    async def open(self, voice_id: str) -> _ElevenLabsSynthesis:
        synthesis = _ElevenLabsSynthesis(self, voice_id)
        await synthesis.connect()
        return synthesis


_FINAL = object()  # a context's `isFinal`


@dataclass(frozen=True)
class _Dropped:
    """The socket went while this context waited."""

    error: SpeechProviderError


class _ElevenLabsSynthesis:
    def __init__(self, speech: ElevenLabsSpeech, voice_id: str) -> None:
        self.speech = speech
        self.voice_id = voice_id
        self.timeout = settings.VOICE_TTS_TIMEOUT_SECONDS
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.keepalive: asyncio.Task[None] | None = None
        self.contexts: dict[str, asyncio.Queue[Any]] = {}  # live clauses, by context id
        self.http: AsyncElevenLabs | None = None  # set once the socket is given up
        self.http_client: httpx.AsyncClient | None = None
        self.failure: SpeechProviderError | None = None  # final: every later clause raises it
        self.last_sent = 0.0
        self.gone = False
        self.closed = False

    @property
    def transport(self) -> str:
        return "http" if self.http is not None else "websocket"

    # Opening

    async def connect(self) -> None:
        try:
            url = self.speech.websocket_url(self.voice_id)
            self.ws = await websockets.connect(
                url,
                additional_headers={"xi-api-key": self.speech.api_key},
                open_timeout=self.timeout,
                ping_interval=20,
                ping_timeout=self.timeout,
                close_timeout=2,
                max_size=_MAX_MESSAGE_BYTES,
            )
        except Exception as exc:
            error = _from_open_failure(exc)
            if not error.retryable:
                raise error from None
            self.gone = True
            self._use_http(error, during="open")
            return
        self.last_sent = asyncio.get_running_loop().time()
        self.reader = asyncio.create_task(self._read(self.ws))
        self.keepalive = asyncio.create_task(self._keep_alive())

    def _use_http(self, error: SpeechProviderError, during: str) -> None:
        if self.http is None:
            logger.warning(
                "text_to_speech_fallback",
                provider="elevenlabs-websocket",
                fallback="elevenlabs-http",
                during=during,
                reason=str(error),
                model=self.speech.model_id,
            )
            # Our own httpx client, so the call's close releases it; no redirects followed
            # (the key must not travel to wherever one points).
            self.http_client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), follow_redirects=False
            )
            self.http = AsyncElevenLabs(
                api_key=self.speech.api_key,
                base_url=self.speech.base_url.rstrip("/"),
                timeout=self.timeout,
                httpx_client=self.http_client,
            )

    # The socket

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave clauses waiting for nothing
            logger.exception("text_to_speech_reader_failed")
        self._lost(_from_close(ws.close_code, ws.close_reason))

    def _dispatch(self, message: dict[str, Any]) -> None:
        context_id = message.get("contextId") or message.get("context_id")
        queue = self.contexts.get(context_id) if isinstance(context_id, str) else None
        error = _from_message(message)
        if error is not None:
            logger.warning(
                "text_to_speech_error_message", reason=str(error), retryable=error.retryable
            )
            if not error.retryable:
                self._fail(error)
            elif queue is not None:
                queue.put_nowait(error)
            return
        if queue is None:
            return  # a closed clause (barge-in) or no context: its audio is not wanted
        audio = message.get("audio")
        if isinstance(audio, str) and audio:
            try:
                queue.put_nowait(base64.b64decode(audio))
            except ValueError:
                logger.warning("text_to_speech_bad_audio", context_id=context_id)
        if message.get("isFinal") is True or message.get("is_final") is True:
            queue.put_nowait(_FINAL)

    def _fail(self, error: SpeechProviderError) -> None:
        self.failure = self.failure or error
        for queue in self.contexts.values():
            queue.put_nowait(self.failure)

    def _lost(self, error: SpeechProviderError) -> None:
        if self.gone:
            return
        self.gone = True
        if self.keepalive is not None:
            self.keepalive.cancel()
        if self.closed:
            return
        if self.failure is not None or not error.retryable:
            self._fail(self.failure or error)
            return
        self._use_http(error, during="call")
        for queue in self.contexts.values():
            queue.put_nowait(_Dropped(error))

    async def _send(self, message: dict[str, Any]) -> bool:
        """Send one message; False if the socket is gone (or stalled, then it is closed)."""
        ws = self.ws
        if ws is None or self.gone:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await ws.send(json.dumps(message))
        except ConnectionClosed:
            self._lost(_from_close(ws.close_code, ws.close_reason))
            return False
        except TimeoutError:
            self._lost(_lost_error())
            await self._close_socket()
            return False
        self.last_sent = asyncio.get_running_loop().time()
        return True

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.gone:
            await asyncio.sleep(max(0.0, self.last_sent + KEEPALIVE_SECONDS - loop.time()))
            if loop.time() - self.last_sent >= KEEPALIVE_SECONDS:
                # Context-less: a keep-alive naming a context not yet opened would open it
                # without its voice settings.
                await self._send({"text": ""})

    def _check(self) -> None:
        if self.closed:
            raise SpeechProviderError("This speech synthesis is closed.")
        if self.failure is not None:
            raise self.failure.again()

    # SpeechSynthesis

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        text = " ".join(text.split())
        if not text:
            return
        self._check()
        if self.http is None:
            played = False
            async with contextlib.aclosing(self._over_websocket(text)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, _Dropped):
                        if played:  # said in part already: never say it twice
                            raise piece.error.again(retryable=True)
                        break
                    played = True
                    yield piece
                else:
                    return
        async with contextlib.aclosing(self._over_http(text)) as pieces:
            async for piece in pieces:
                yield piece

    async def _over_websocket(self, text: str) -> AsyncIterator[bytes | _Dropped]:
        context_id = uuid.uuid4().hex
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.contexts[context_id] = queue
        closed = finished = False
        aligner = _Aligner()
        try:
            sent = (
                await self._send(
                    {"text": " ", "context_id": context_id, "voice_settings": VOICE_SETTINGS}
                )
                and await self._send({"text": f"{text} ", "context_id": context_id, "flush": True})
                and await self._send({"context_id": context_id, "close_context": True})
            )
            closed = sent
            if not sent:
                self._check()  # a final error (key, quota) raises here
                yield _Dropped(_lost_error())
                return
            while True:
                try:
                    async with asyncio.timeout(self.timeout):
                        item = await queue.get()
                except TimeoutError:
                    raise _timeout_error() from None
                if item is _FINAL:
                    finished = True
                    return
                if isinstance(item, SpeechProviderError):
                    raise item.again()
                if isinstance(item, _Dropped):
                    yield item
                    return
                audio = aligner.push(item)
                if audio:
                    yield audio
        finally:
            self.contexts.pop(context_id, None)  # late audio of this context is dropped
            if not finished and not closed and not self.gone:
                with contextlib.suppress(Exception):
                    await self._send({"context_id": context_id, "close_context": True})

    async def _over_http(self, text: str) -> AsyncIterator[bytes]:
        assert self.http is not None
        stream = self.http.text_to_speech.stream(
            voice_id=self.voice_id,
            text=text,
            model_id=self.speech.model_id,
            output_format=OUTPUT_FORMAT,
            request_options={"max_retries": 0, "timeout_in_seconds": self.timeout},
        )
        aligner = _Aligner()
        try:
            async with contextlib.aclosing(stream):
                while True:
                    try:
                        async with asyncio.timeout(self.timeout):
                            chunk = await anext(stream)
                    except StopAsyncIteration:
                        return
                    audio = aligner.push(chunk)
                    if audio:
                        yield audio
        except ApiError as exc:
            error = _from_body(exc.status_code, exc.body)
            logger.warning("text_to_speech_http_failed", status=exc.status_code, reason=str(error))
            if not error.retryable:
                self.failure = self.failure or error
            raise error from None
        except (TimeoutError, httpx.TimeoutException):
            raise _timeout_error() from None
        except httpx.HTTPError as exc:
            logger.warning("text_to_speech_http_failed", error=str(exc))
            raise SpeechProviderError(
                "The speech service could not be reached.", retryable=True
            ) from None

    async def _close_socket(self) -> None:
        ws = self.ws
        self.gone = True
        for task in (self.keepalive, self.reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await ws.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.ws is not None and not self.gone:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self.ws.send(json.dumps({"close_socket": True}))
        await self._close_socket()
        self.contexts.clear()
        if self.http_client is not None:
            await self.http_client.aclose()
