"""The hosted avatar: HeyGen's LiveAvatar in LITE mode, driven by our own speech.

LiveAvatar only renders the face: we keep our STT → LLM → TTS and send the reply's audio.
A session is started in two calls, then driven over a command WebSocket:

1. `POST /v1/sessions/token` with `X-API-KEY` and `{"mode": "LITE", "avatar_id",
   "video_settings", "is_sandbox"}` → `session_id`, `session_token`;
2. `POST /v1/sessions/start` with `Authorization: Bearer <session_token>` →
   `livekit_url`, `livekit_client_token` (the browser joins the room with these),
   `livekit_agent_token`, `ws_url` (commands) and `max_session_duration`;
3. on `ws_url`: wait for `session.state_updated` `connected`, then `agent.speak` (base64
   PCM 16-bit 24 kHz, ~1 s a packet, at most 1 MB), `agent.speak_end`, `agent.interrupt`
   and `session.keep_alive`; `agent.speak_started` / `agent.speak_ended` come back with
   the `event_id` of the utterance's `agent.speak` commands;
4. `POST /v1/sessions/stop` (Bearer session token, or the key with a `session_id`);
   `POST /v1/sessions/keep-alive` and `GET /v1/sessions?type=active` for housekeeping.

All of an utterance's `agent.speak` packets and its `agent.speak_end` share one
`event_id` (as Pipecat does), so the provider's speak events name our utterance. Audio is
never held back to fill a packet: it goes out as soon as the socket is free, and only
audio that arrives while an earlier packet is still being sent is gathered into the
waiting packet (up to the recommended second). A clause's first audio therefore leaves
within a send's time, and a fast synthesizer's small pieces still travel as few packets.

Any failure is an AvatarError and the call goes on with voice only; a session whose
socket is lost is stopped at the provider at once (it would otherwise bill until its idle
timeout). The key is sent only as the `X-API-KEY` header, redirects are never followed,
and neither the key nor any token is logged or put in a message.

Docs followed (read 2026):
- LITE mode lifecycle: https://docs.liveavatar.com/docs/lite-mode/lifecycle
- LITE mode events: https://docs.liveavatar.com/docs/lite-mode/events
- Create session token:
  https://docs.liveavatar.com/api-reference/sessions/create-session-token
- Start session: https://docs.liveavatar.com/api-reference/sessions/start-session
- Stop session (`reason` defaults to USER_CLOSED):
  https://docs.liveavatar.com/api-reference/sessions/stop-session
- Keep session alive: https://docs.liveavatar.com/api-reference/sessions/keep-session-alive
- List sessions (`type` = active | historic, `page`, `page_size` ≤ 100):
  https://docs.liveavatar.com/api-reference/sessions/list-sessions
- Second source: Pipecat's client, `src/pipecat/services/heygen/api_liveavatar.py` and
  `client.py` (field names, one event_id per utterance, keep-alive every 150 s).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from core.breaker import CircuitBreaker
from voice.avatar.base import (
    AVATAR_SAMPLE_RATE,
    AvatarAuthError,
    AvatarConfigurationError,
    AvatarConnectionLost,
    AvatarError,
    AvatarEvent,
    AvatarEventCallback,
    AvatarEventKind,
    AvatarQuotaError,
    AvatarTimeoutError,
    AvatarUnavailableError,
)

logger = structlog.get_logger(__name__)

BYTES_PER_SECOND = AVATAR_SAMPLE_RATE * 2  # 16-bit mono
# The docs' recommended ~1 s: the most gathered in one packet (64 KB as base64, well under
# the docs' 1 MB limit for a message).
PACKET_BYTES = BYTES_PER_SECOND
# Sessions end after 5 idle minutes; Pipecat sends a keep-alive every 150 s.
KEEPALIVE_SECONDS = 120.0
_INBOUND_MAX_BYTES = 1024 * 1024
_DETAIL_CHARS = 200
_NAME = "The avatar service (LiveAvatar)"
# websockets logs the handshake's request line (the ws_url's token) at DEBUG.
_socket_logger = logging.getLogger("voice.avatar.liveavatar.socket")
_socket_logger.setLevel(logging.INFO)


# --- Errors a person can read -----------------------------------------------------------


def _auth_error() -> AvatarError:
    return AvatarAuthError(
        f"{_NAME} rejected its API key; an administrator must check the avatar key."
    )


def _timeout_error() -> AvatarError:
    return AvatarTimeoutError(f"{_NAME} did not answer in time.", retryable=True)


def _unreachable_error() -> AvatarError:
    return AvatarUnavailableError(f"{_NAME} could not be reached.", retryable=True)


def _lost_error() -> AvatarError:
    return AvatarConnectionLost("The connection to the avatar was lost.", retryable=True)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _message_of(body: bytes) -> str:
    """The human part of an error body: `{"message"}`, `{"detail"}` or `{"error"}`."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")[:_DETAIL_CHARS]
    if isinstance(payload, dict):
        for name in ("message", "detail", "error"):
            value = payload.get(name)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg") or json.dumps(value)
            if isinstance(value, list):  # a validation error list
                value = "; ".join(
                    str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                    for item in value
                )
            if value:
                return str(value)
    return ""


def classify_http_error(status: int, body: bytes, secrets: tuple[str, ...] = ()) -> AvatarError:
    """LiveAvatar's HTTP error as our error. A bad key, no credits or a setting to fix
    is never retryable; a concurrency limit, rate limit or server error is."""
    detail = _scrub(_message_of(body), secrets)
    text = detail.lower()
    if status in (401, 403):
        return _auth_error()
    if status == 402 or any(word in text for word in ("credit", "quota", "payment", "billing")):
        return AvatarQuotaError(
            f"{_NAME} has no credits left; an administrator must check the LiveAvatar plan."
        )
    if status == 429:
        if "concurren" in text or "session" in text:
            return AvatarQuotaError(
                f"{_NAME} is already running as many sessions as the plan allows; "
                "try again when another call has ended.",
                retryable=True,
            )
        return AvatarUnavailableError(
            f"{_NAME} is busy; please try again in a moment.", retryable=True
        )
    if status >= 500:
        return AvatarUnavailableError(f"{_NAME} had a problem; please try again.", retryable=True)
    if status in (400, 404, 422):
        return AvatarConfigurationError(
            f"{_NAME} refused the session's settings ({detail or f'HTTP {status}'}); an "
            "administrator must check the avatar id and settings."
        )
    return AvatarError(f"{_NAME} refused the request ({detail or f'HTTP {status}'}).")


# --- The HTTP API -----------------------------------------------------------------------


@dataclass(frozen=True)
class SessionToken:
    session_id: str
    session_token: str = field(repr=False)


@dataclass(frozen=True)
class StartedSession:
    session_id: str
    livekit_url: str
    livekit_client_token: str = field(repr=False)
    livekit_agent_token: str = field(repr=False)
    ws_url: str = field(repr=False)  # may carry a credential in its query
    max_session_duration: int | None = None


@dataclass(frozen=True)
class ListedSession:
    """One session as the list endpoint reports it (for a sweeper of stale sessions)."""

    session_id: str
    status: str
    created_at: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class AvatarChoice:
    """An avatar a session may show: the account's own or a public one."""

    avatar_id: str
    name: str
    public: bool


class LiveAvatarApi:
    """LiveAvatar's session endpoints over one httpx client (use `async with`).

    Every call is bounded by `timeout` and raises AvatarError, never an httpx error."""

    def __init__(self, *, api_key: str, base_url: str, timeout: float) -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # No redirects: the key must not travel to wherever one points.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False)

    async def __aenter__(self) -> LiveAvatarApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        bearer: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        else:
            headers["X-API-KEY"] = self._api_key
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.request(
                    method,
                    f"{self.base_url}{path}",
                    json=json_body,
                    params=params,
                    headers=headers,
                )
        except (TimeoutError, httpx.TimeoutException):
            raise _timeout_error() from None
        except httpx.HTTPError:
            raise _unreachable_error() from None
        if response.status_code >= 300:
            error = classify_http_error(
                response.status_code, response.content, (self._api_key, bearer or "")
            )
            logger.warning(
                "avatar_http_failed",
                provider="liveavatar",
                path=path,
                status=response.status_code,
                code=error.code,
            )
            raise error
        try:
            payload = response.json()
        except ValueError:
            raise _unreadable() from None
        return payload.get("data") if isinstance(payload, dict) else None

    async def create_session_token(
        self, *, avatar_id: str, video_quality: str, is_sandbox: bool
    ) -> SessionToken:
        """A LITE-mode session for `avatar_id` (with the key): its id and its token."""
        data = await self._request(
            "POST",
            "/v1/sessions/token",
            json_body={
                "mode": "LITE",
                "avatar_id": avatar_id,
                "is_sandbox": is_sandbox,
                "video_settings": {"quality": video_quality, "encoding": "VP8"},
            },
        )
        try:
            return SessionToken(str(data["session_id"]), str(data["session_token"]))
        except (KeyError, TypeError):
            raise _unreadable() from None

    async def start_session(self, session_token: str) -> StartedSession:
        """Start the session (with its token): the room for the browser, the command
        socket for us."""
        data = await self._request("POST", "/v1/sessions/start", bearer=session_token)
        try:
            duration = data.get("max_session_duration")
            return StartedSession(
                session_id=str(data["session_id"]),
                livekit_url=str(data["livekit_url"]),
                livekit_client_token=str(data["livekit_client_token"]),
                livekit_agent_token=str(data.get("livekit_agent_token") or ""),
                ws_url=str(data["ws_url"]),
                max_session_duration=int(duration) if duration is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _unreadable() from None

    async def stop_session(
        self, session_id: str, *, session_token: str | None = None, reason: str = "USER_CLOSED"
    ) -> None:
        """Stop a session: with its own token, or with the key (a sweeper's way)."""
        await self._request(
            "POST",
            "/v1/sessions/stop",
            json_body={"session_id": session_id, "reason": reason},
            bearer=session_token,
        )

    async def keep_alive(self, session_id: str, *, session_token: str | None = None) -> None:
        """Reset the session's idle timeout over HTTP (the socket has its own command)."""
        await self._request(
            "POST",
            "/v1/sessions/keep-alive",
            json_body={"session_id": session_id},
            bearer=session_token,
        )

    async def list_sessions(
        self, kind: str = "active", *, page: int = 1, page_size: int = 100
    ) -> list[ListedSession]:
        """One page of the account's sessions (`kind` is "active" or "historic")."""
        data = await self._request(
            "GET", "/v1/sessions", params={"type": kind, "page": page, "page_size": page_size}
        )
        entries = data
        if isinstance(data, dict):  # a page object; its list's name is not documented
            entries = next(
                (data[k] for k in ("results", "sessions", "items", "data") if k in data), []
            )
        sessions = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and (entry.get("session_id") or entry.get("id")):
                sessions.append(
                    ListedSession(
                        session_id=str(entry.get("session_id") or entry.get("id")),
                        status=str(entry.get("status") or ""),
                        created_at=str(entry["created_at"]) if entry.get("created_at") else None,
                        raw=entry,
                    )
                )
        return sessions

    async def list_avatars(self, *, public: bool, page_size: int = 100) -> list[AvatarChoice]:
        """The first page of the account's avatars (`GET /v1/avatars`) or of the public
        ones (`GET /v1/avatars/public`); expired ones are left out.
        Docs: https://docs.liveavatar.com/api-reference/avatar/list-user-avatars and
        .../list-public-avatars (`{"data": {"results": [{"id", "name", "is_expired",
        ...}]}}`)."""
        path = "/v1/avatars/public" if public else "/v1/avatars"
        data = await self._request("GET", path, params={"page": 1, "page_size": page_size})
        entries = data.get("results") if isinstance(data, dict) else None
        choices = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not entry.get("id") or entry.get("is_expired"):
                continue
            name = str(entry.get("name") or entry["id"])[:80]
            choices.append(AvatarChoice(str(entry["id"]), name, public))
        return choices


def _unreadable() -> AvatarError:
    return AvatarUnavailableError(f"{_NAME} sent an answer we could not read.", retryable=True)


# --- The provider ------------------------------------------------------------------------


class LiveAvatar:
    """Opens LiveAvatar LITE sessions with one key (the platform's or an organization's)."""

    name = "liveavatar"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        avatar_id: str,
        video_quality: str = "high",
        is_sandbox: bool = False,
        breaker_scope: str = "",
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self.avatar_id = avatar_id
        self.video_quality = video_quality
        self.is_sandbox = is_sandbox
        self.timeout = settings.LIVEAVATAR_TIMEOUT_SECONDS
        self.connect_timeout = settings.LIVEAVATAR_CONNECT_TIMEOUT_SECONDS
        # An organization's own key gets its own circuit: its failures pause only it.
        name = f"{breaker_scope}-{base_url}" if breaker_scope else base_url
        self.breaker = CircuitBreaker("avatar-" + re.sub(r"[^a-z0-9]+", "-", name.lower()))

    def __repr__(self) -> str:
        return f"LiveAvatar(base_url={self.base_url!r}, avatar_id={self.avatar_id!r})"

    @property
    def key_hint(self) -> str:
        """A digest of the key (never the key): tells two keys' cached lists apart."""
        return hashlib.sha256(self._api_key.encode()).hexdigest()[:16]

    async def stop_session(self, session_id: str) -> None:
        """Stop a session by its id with the key (the sweeper's way). Raises AvatarError."""
        async with LiveAvatarApi(
            api_key=self._api_key, base_url=self.base_url, timeout=self.timeout
        ) as api:
            await api.stop_session(session_id)

    async def avatar_choices(self) -> list[AvatarChoice]:
        """The avatars this key may use: the account's own first, then the public ones.
        Raises AvatarError."""
        async with LiveAvatarApi(
            api_key=self._api_key, base_url=self.base_url, timeout=self.timeout
        ) as api:
            own = await api.list_avatars(public=False)
            public = await api.list_avatars(public=True)
        seen = {choice.avatar_id for choice in own}
        return own + [choice for choice in public if choice.avatar_id not in seen]

    async def active_session_ids(self) -> list[str]:
        """The ids of the sessions the provider lists as active for this key (first page:
        up to 100). Raises AvatarError."""
        async with LiveAvatarApi(
            api_key=self._api_key, base_url=self.base_url, timeout=self.timeout
        ) as api:
            return [listed.session_id for listed in await api.list_sessions("active")]

    async def open(
        self, training_session_id: int, on_event: AvatarEventCallback | None = None
    ) -> LiveAvatarSession:
        # The breaker's state is in the Redis cache (a blocking client): off the loop.
        off_loop = functools.partial(sync_to_async, thread_sensitive=False)
        if await off_loop(self.breaker.is_open)():
            raise AvatarUnavailableError(
                f"{_NAME} is failing right now, so the avatar is paused for a moment.",
                retryable=True,
            )
        api = LiveAvatarApi(api_key=self._api_key, base_url=self.base_url, timeout=self.timeout)
        session: LiveAvatarSession | None = None
        token: SessionToken | None = None
        try:
            token = await api.create_session_token(
                avatar_id=self.avatar_id,
                video_quality=self.video_quality,
                is_sandbox=self.is_sandbox,
            )
            try:
                started = await api.start_session(token.session_token)
            except AvatarError:
                # A token without a start still counts as a session somewhere: end it.
                with contextlib.suppress(AvatarError):
                    await api.stop_session(token.session_id, session_token=token.session_token)
                raise
            session = LiveAvatarSession(
                api,
                started,
                token.session_token,
                on_event=on_event,
                timeout=self.timeout,
            )
            await session.connect(self.connect_timeout)
        except AvatarError as error:
            if session is not None:
                await session.close()
            else:
                await api.aclose()
            if error.retryable and not isinstance(error, AvatarQuotaError):
                await off_loop(self.breaker.record_failure)()
            logger.warning(
                "avatar_open_failed",
                provider=self.name,
                training_session_id=training_session_id,
                code=error.code,
                reason=str(error),
            )
            raise
        except BaseException:
            if session is not None:
                await session.close()
            else:
                if token is not None:  # cancelled (the call went): stop what bills
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(
                            api.stop_session(token.session_id, session_token=token.session_token)
                        )
                await api.aclose()
            raise
        await off_loop(self.breaker.record_success)()
        logger.info(
            "avatar_opened",
            provider=self.name,
            training_session_id=training_session_id,
            avatar_session_id=started.session_id,
            max_session_duration=started.max_session_duration,
        )
        return session


@dataclass
class _Utterance:
    id: str
    sent_bytes: int = 0  # audio sent in agent.speak packets so far
    started: bool = False
    ended: bool = False  # the provider said speak_ended, or we interrupted it


class LiveAvatarSession:
    provider = "liveavatar"

    def __init__(
        self,
        api: LiveAvatarApi,
        started: StartedSession,
        session_token: str,
        *,
        on_event: AvatarEventCallback | None,
        timeout: float,
    ) -> None:
        self.api = api
        self.started = started
        self._session_token = session_token
        self.on_event = on_event
        self.timeout = timeout
        self.events: list[AvatarEvent] = []
        self.failure: AvatarError | None = None
        self.closed = False
        self._ws: ClientConnection | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = asyncio.Event()
        self._odd = b""  # a half sample left over from the last piece of audio
        self._current: _Utterance | None = None
        self._utterances: dict[str, _Utterance] = {}  # sent and not yet ended
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown_task: asyncio.Task[None] | None = None

    @property
    def session_id(self) -> str:
        return self.started.session_id

    def browser_info(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "livekit_url": self.started.livekit_url,
            "livekit_client_token": self.started.livekit_client_token,
            "max_session_seconds": self.started.max_session_duration,
        }

    # Opening

    async def connect(self, connect_timeout: float) -> None:
        """Open the command socket and wait until the avatar is connected."""
        ws_url = self.started.ws_url
        scheme = urlsplit(ws_url).scheme.lower()
        if scheme != "wss" and not (settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE and scheme == "ws"):
            raise AvatarUnavailableError(f"{_NAME} gave a command address we cannot use.")
        try:
            self._ws = await websockets.connect(
                ws_url,
                open_timeout=self.timeout,
                ping_interval=20,
                ping_timeout=self.timeout,
                close_timeout=2,
                max_size=_INBOUND_MAX_BYTES,
                logger=_socket_logger,
            )
        except InvalidStatus as exc:
            raise classify_http_error(
                exc.response.status_code, exc.response.body or b"", (self._session_token,)
            ) from None
        except TimeoutError:
            raise _timeout_error() from None
        except InvalidURI:
            raise AvatarUnavailableError(f"{_NAME} gave a command address we cannot use.") from None
        except (OSError, ConnectionClosed, InvalidHandshake):
            raise _unreachable_error() from None
        self._tasks = [
            asyncio.create_task(self._read(self._ws)),
            asyncio.create_task(self._send_loop(self._ws)),
            asyncio.create_task(self._keep_alive_loop()),
        ]
        try:
            async with asyncio.timeout(connect_timeout):
                await asyncio.shield(self._ready)
        except TimeoutError:
            raise AvatarTimeoutError(
                "The avatar did not join its room in time.", retryable=True
            ) from None

    # Events from the provider

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(message, dict):
                    await self._dispatch(message)
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave the session looking alive
            logger.exception("avatar_reader_failed", provider=self.provider)
        await self._lose(_lost_error())

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "session.state_updated":
            state = message.get("state")
            if state == "connected" and not self._ready.done():
                self._ready.set_result(None)
            elif state in ("closing", "closed"):
                await self._lose(
                    AvatarConnectionLost("The avatar session was ended by LiveAvatar.")
                )
        elif kind in ("agent.speak_started", "agent.speak_ended"):
            event_id = message.get("event_id")
            utterance = self._utterances.get(event_id) if isinstance(event_id, str) else None
            if utterance is None:
                return  # not ours, or already interrupted
            if kind == "agent.speak_started":
                utterance.started = True
                await self._report("speak_started", utterance)
            else:
                utterance.ended = True
                self._utterances.pop(utterance.id, None)
                await self._report("speak_ended", utterance)

    async def _report(
        self,
        kind: AvatarEventKind,
        utterance: _Utterance | None,
        error: AvatarError | None = None,
    ) -> None:
        event = AvatarEvent(
            kind,
            utterance.id if utterance else None,
            time.monotonic(),
            utterance.sent_bytes / BYTES_PER_SECOND if utterance else 0.0,
            error,
        )
        self.events.append(event)
        if self.on_event is not None:
            try:
                await self.on_event(event)
            except Exception:  # the listener's bug must not stop the avatar
                logger.exception("avatar_event_listener_failed", kind=kind)

    # Losing the session

    async def _lose(self, error: AvatarError) -> None:
        if self.failure is not None or self.closed:
            return
        self.failure = error
        logger.warning(
            "avatar_lost",
            provider=self.provider,
            avatar_session_id=self.session_id,
            code=error.code,
            reason=str(error),
        )
        opened = self._ready.done()
        if not opened:
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: connect() raises it
        self._outbox.clear()
        self._wake.set()
        if opened:  # while opening, open() raises the error instead
            await self._report("lost", None, error)
        # Stop it at the provider now: a session left running bills until its timeout.
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())

    def _check(self) -> None:
        if self.closed:
            raise AvatarConnectionLost("The avatar session has ended.")
        if self.failure is not None:
            raise type(self.failure)(str(self.failure), retryable=self.failure.retryable)

    # Commands

    def _queue(self, message: dict[str, Any]) -> None:
        self._outbox.append(message)
        self._wake.set()

    async def _send_loop(self, ws: ClientConnection) -> None:
        while self.failure is None and not self.closed:
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            message = self._outbox.popleft()
            if "pcm" in message:  # a packet still open to more audio: closed now
                audio = message.pop("pcm")
                message["audio"] = base64.b64encode(audio).decode("ascii")
                utterance = self._utterances.get(message["event_id"])
                if utterance is not None:
                    utterance.sent_bytes += len(audio)
            try:
                async with asyncio.timeout(self.timeout):
                    await ws.send(json.dumps(message))
            except TimeoutError:
                await self._lose(
                    AvatarTimeoutError("The avatar stopped taking audio.", retryable=True)
                )
            except ConnectionClosed:
                await self._lose(_lost_error())

    async def _keep_alive_loop(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            if self.failure is not None or self.closed:
                return
            self._queue({"type": "session.keep_alive", "event_id": uuid.uuid4().hex})

    def _add_audio(self, utterance: _Utterance, pcm: bytes) -> None:
        """Into the packet waiting to be sent, if there is one with room, else a new one."""
        last = self._outbox[-1] if self._outbox else None
        while pcm:
            if not (
                last is not None
                and last.get("event_id") == utterance.id
                and "pcm" in last
                and len(last["pcm"]) < PACKET_BYTES
            ):
                last = {"type": "agent.speak", "event_id": utterance.id, "pcm": bytearray()}
                self._outbox.append(last)
            room = PACKET_BYTES - len(last["pcm"])
            last["pcm"] += pcm[:room]
            pcm = pcm[room:]
        self._utterances[utterance.id] = utterance
        self._wake.set()

    @property
    def utterance_id(self) -> str | None:
        return self._current.id if self._current is not None else None

    async def speak(self, pcm: bytes) -> None:
        self._check()
        if not pcm:
            return
        if self._current is None:
            self._current = _Utterance(uuid.uuid4().hex)
        pcm = self._odd + pcm
        whole = len(pcm) - len(pcm) % 2
        self._odd = pcm[whole:]
        self._add_audio(self._current, pcm[:whole])

    async def speak_end(self) -> str | None:
        self._check()
        utterance, self._current = self._current, None
        if utterance is None:
            return None
        self._odd = b""  # an odd trailing byte is half a sample
        self._queue({"type": "agent.speak_end", "event_id": utterance.id})
        return utterance.id

    async def interrupt(self) -> None:
        self._check()
        self._odd = b""
        # Audio not yet sent is dropped here; what was sent, the interrupt clears there.
        kept = [m for m in self._outbox if m["type"] not in ("agent.speak", "agent.speak_end")]
        self._outbox.clear()
        self._outbox.extend(kept)
        cut = list(self._utterances.values())
        if self._current is not None and self._current not in cut:
            cut.append(self._current)
        self._current = None
        self._utterances.clear()
        self._queue({"type": "agent.interrupt", "event_id": uuid.uuid4().hex})
        for utterance in cut:
            utterance.ended = True
            await self._report("interrupted", utterance)

    async def keep_alive(self) -> None:
        self._check()
        self._queue({"type": "session.keep_alive", "event_id": uuid.uuid4().hex})

    # Closing

    async def _shutdown(self) -> None:
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._ws.close()
        try:
            await self.api.stop_session(self.session_id, session_token=self._session_token)
        except AvatarError as exc:
            logger.warning(
                "avatar_stop_failed",
                provider=self.provider,
                avatar_session_id=self.session_id,
                code=exc.code,
                reason=str(exc),
            )
        finally:
            await self.api.aclose()

    async def close(self) -> None:
        if self.closed:
            return
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        self.closed = True
        self._wake.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(self._shutdown_task)
        self._outbox.clear()
        self._utterances.clear()
