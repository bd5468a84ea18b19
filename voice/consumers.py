"""The voice socket: `/ws/sessions/<id>/voice/` (protocol: voice/PROTOCOL.md).

Protocol in, protocol out: who may connect (voice.calls), what a message means
(validated here), and the work delegated to the call's pipeline (voice.pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from typing import Any
from urllib.parse import parse_qs

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import User
from core.errors import as_refused
from training import turns
from voice import billing, calls, metrics
from voice.audio import INPUT_SAMPLE_RATE, duration_ms
from voice.avatar import get_avatar_provider, usage
from voice.avatar.base import AvatarError, AvatarEvent, AvatarSession
from voice.errors import SpeechProviderError, VoiceRefused
from voice.pipeline import Conversation
from voice.stt import get_speech_to_text
from voice.tickets import redeem_ticket
from voice.tts import OUTPUT_SAMPLE_RATE, get_text_to_speech

logger = structlog.get_logger(__name__)

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MIN_FRAME_BYTES = 2  # one sample; 10-60 ms (320-1,920 bytes) is what clients should send
MAX_FRAME_BYTES = 1920
MAX_ERRORS = 20
CONTROL_TYPES = {
    "start",
    "stop",
    "interrupt",
    "ptt_down",
    "ptt_up",
    "playback",
    "ping",
    "avatar_stop",
}


def group_name(session_id: int) -> str:
    return f"voice-session-{session_id}"


class VoiceConsumer(AsyncWebsocketConsumer):
    rejects_anonymous = True  # checked by avatar_adam/tests/test_authentication_required.py

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections on its database thread before every
        # message: for 50 audio frames a second per call, a hop that queued behind real
        # database work (and starved the event loop at 20 calls). Our database steps run
        # through on_database_thread / database_sync_to_async, which check their own.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        self.opened: calls.OpenedCall | None = None
        self.conversation: Conversation | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.connected_at = time.monotonic()
        self.last_received = time.monotonic()
        self.errors = 0
        self.closing = False
        self.audio_clock_start = time.monotonic()
        self.audio_received_ms = 0.0
        self.audio_dropped_ms = 0.0
        self.too_fast_told_at = 0.0
        self.database = turns.database_thread()
        self.avatar_task: asyncio.Task[None] | None = None
        self.avatar: AvatarSession | None = None
        self.avatar_record: int | None = None
        self.avatar_opened_at = 0.0
        self.avatar_cleanup: set[asyncio.Task[None]] = set()
        await self.accept()  # then close with a code: a refused handshake carries none
        try:
            user = await self._authenticate()
            session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
            self.opened = await database_sync_to_async(calls.open_call)(
                user=user, session_id=session_id
            )
            stt, tts = await database_sync_to_async(self._providers)(self.opened.organization_id)
        except Exception as exc:
            await self._refuse(exc)
            return
        metrics.CALLS.inc()
        self.user = user
        self.group = group_name(self.opened.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        if self.opened.replaced:
            await self.channel_layer.group_send(
                self.group, {"type": "voice.replaced", "call_ids": self.opened.replaced}
            )
        self.conversation = Conversation(
            user=user,
            session_id=self.opened.session_id,
            stt=stt,
            tts=tts,
            voice_id=self.opened.voice_id,
            send_json=self._send_event,
            send_bytes=self._send_audio,
            on_session_ended=self._session_ended,
            database=self.database,
        )
        self.conversation.on_out_of_credit = self._tell_out_of_credit
        self.audio_received_ms = 0.0
        await self._send_event(
            {
                "type": "session.ready",
                "protocol": PROTOCOL_VERSION,
                "session_id": self.opened.session_id,
                "mode": self.opened.scenario_mode,
                "input_sample_rate": INPUT_SAMPLE_RATE,
                "output_sample_rate": OUTPUT_SAMPLE_RATE,
                "messages": self.opened.messages,
                "expires_at": self.opened.expires_at,
            }
        )
        self.watchdog = asyncio.ensure_future(self._watch())
        logger.info("voice_call_opened", call_id=self.opened.call_id, session_id=session_id)

    async def _authenticate(self) -> User:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        ticket = (query.get("ticket") or [""])[0]
        session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        if ticket:
            redeemed = await database_sync_to_async(redeem_ticket)(ticket)
            if redeemed is None or redeemed.session_id != session_id:
                raise VoiceRefused("This voice ticket is unknown, used or expired.", status=401)
            user = await database_sync_to_async(
                User.objects.filter(pk=redeemed.user_id, is_active=True).first
            )()
            if user is None:
                raise VoiceRefused("Your account is not active.", status=401)
            return user
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            raise VoiceRefused("Sign in to talk in a session.", status=401)
        if not self.scope.get("origin_present"):
            # A cookie without an Origin: not a page of ours. API clients use a ticket.
            raise VoiceRefused("Connect from the session page, or with a voice ticket.", status=403)
        return user

    @staticmethod
    def _providers(organization_id: int) -> tuple[Any, Any]:
        return get_speech_to_text(organization_id), get_text_to_speech(organization_id)

    async def _refuse(self, exc: BaseException) -> None:
        refused = as_refused(exc)
        if isinstance(exc, SpeechProviderError):
            refused = VoiceRefused(f"Voice is unavailable right now: {exc}", status=503)
        if refused is None:
            logger.exception("voice_connect_failed", exc_info=exc)
            refused = VoiceRefused("The voice service failed; try again in a moment.", status=500)
        await self._close_with(refused.close_code, refused.message)

    async def _close_with(self, code: int, message: str) -> None:
        if self.closing:
            return
        self.closing = True
        await self._send_event(
            {"type": "error", "code": f"closed_{code}", "message": message, "fatal": True}
        )
        await self.close(code=code)

    async def _send_event(self, event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the socket is gone: the pipeline winds down
            await self.send(text_data=json.dumps(event))

    async def _send_audio(self, pcm: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.send(bytes_data=pcm)

    # --- while it lives ------------------------------------------------------------

    async def _watch(self) -> None:
        """Re-check the call every few seconds; close it when it may not go on."""
        assert self.opened is not None
        while True:
            await asyncio.sleep(settings.VOICE_RECHECK_SECONDS)
            idle = time.monotonic() - self.last_received
            if idle >= settings.VOICE_IDLE_SECONDS:
                await self._close_with(4408, "Nothing was received for a while; the call closed.")
                return
            try:
                await self._record_avatar()
                await turns.on_database_thread(self.database, calls.check_call)(
                    self.opened, seconds=time.monotonic() - self.connected_at
                )
            except VoiceRefused as exc:
                conversation = self.conversation
                if (
                    exc.code == "session_ended"
                    and conversation
                    and not conversation.reply_finished()
                ):
                    continue  # the persona's goodbye plays out first (then close_after_reply)
                await self._close_with(exc.close_code, exc.message)
                return
            except Exception:
                logger.exception("voice_check_failed", call_id=self.opened.call_id)

    # --- the hosted face ------------------------------------------------------------

    async def _open_avatar(self) -> None:
        """Open the hosted face this client can show (it asked with `start`): within the
        organization's avatar sessions and minutes; else, or when the provider fails, the
        call goes on with voice and the page's own face (`avatar.unavailable`)."""
        try:
            await self._open_avatar_within_limits()
        except (asyncio.CancelledError, AvatarError):
            raise
        except Exception:
            logger.exception("avatar_open_failed_unexpectedly")
            await self._avatar_unavailable("avatar_failed", "The video avatar could not start.")

    async def _open_avatar_within_limits(self) -> None:
        assert self.opened is not None
        assert self.conversation is not None
        on_database = functools.partial(turns.on_database_thread, self.database)
        chosen = self.opened.avatar  # the scenario's author chose (ScenarioAvatar)
        if chosen.startswith("drawn:"):
            await self._send_event({"type": "avatar.ready", "provider": "local"})
            return  # the drawn face: no hosted one is opened or billed
        if chosen == "none":
            await self._avatar_unavailable("avatar_not_chosen", "This scenario shows no face.")
            return
        try:
            provider = await on_database(get_avatar_provider)(
                self.opened.organization_id,
                hosted=chosen == "hosted",
                avatar_id=self.opened.avatar_id,
            )
        except AvatarError as exc:
            await self._avatar_unavailable(exc.code, str(exc))
            return
        if provider.name == "local":
            await self._send_event({"type": "avatar.ready", "provider": "local"})
            return
        reserved = await on_database(usage.reserve)(self.opened.call_id, provider.name)
        if isinstance(reserved, usage.AvatarRefusal):
            await self._avatar_unavailable("avatar_limit", reserved.message)
            return
        opened_at = time.monotonic()
        try:
            avatar = await provider.open(self.opened.session_id, on_event=self._avatar_event)
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, AvatarError) else "the call ended"
            await asyncio.shield(on_database(usage.end)(reserved.pk, seconds=0, reason=reason))
            if isinstance(exc, AvatarError):
                await self._avatar_unavailable(exc.code, str(exc))
                return
            raise
        self.avatar, self.avatar_record, self.avatar_opened_at = avatar, reserved.pk, opened_at
        await on_database(usage.opened)(reserved.pk, getattr(avatar, "session_id", ""))
        self.conversation.attach_avatar(avatar, self._avatar_lost)
        await self._send_event({"type": "avatar.ready", **avatar.browser_info()})

    async def _avatar_event(self, event: AvatarEvent) -> None:
        if event.kind != "lost" and self.conversation is not None:
            self.conversation.avatar_event(event)
        if event.kind == "lost" and event.error is not None:
            # Not awaited here: the provider's own reader reports it, and closing the
            # session cancels that reader.
            task = asyncio.ensure_future(self._avatar_lost(event.error))
            self.avatar_cleanup.add(task)
            task.add_done_callback(self.avatar_cleanup.discard)

    async def _avatar_lost(self, error: AvatarError) -> None:
        if self.avatar is None:
            return
        await self._drop_avatar(str(error))
        await self._avatar_unavailable(error.code, f"The video avatar stopped: {error}")

    async def _tell_out_of_credit(self, service: str) -> None:
        """A provider said the organization's account is out of credit: its admins are
        told (a notice, at most one email a day); the call goes on as it can."""
        if self.opened is None:
            return
        try:
            await turns.on_database_thread(self.database, billing.tell_admins_out_of_credit)(
                self.opened.organization_id, service
            )
        except Exception:  # telling must never break the call
            logger.exception("out_of_credit_notice_failed", service=service)

    async def _avatar_unavailable(self, code: str, message: str) -> None:
        logger.info("avatar_unavailable", code=code, reason=message)
        if code == "avatar_quota":
            await self._tell_out_of_credit("avatar")
        await self._send_event(
            {
                "type": "avatar.unavailable",
                "code": code,
                "message": f"{message} The call goes on with voice.",
            }
        )

    async def _record_avatar(self) -> None:
        """Count the face's minutes; past the month's budget it stops (the call goes on)."""
        if self.avatar is None or self.avatar_record is None:
            return
        seconds = time.monotonic() - self.avatar_opened_at
        refusal = await turns.on_database_thread(self.database, usage.record)(
            self.avatar_record, seconds=seconds
        )
        if refusal is not None:
            await self._drop_avatar("the month's avatar minutes were used")
            await self._avatar_unavailable("avatar_limit", refusal.message)

    async def _drop_avatar(self, reason: str) -> None:
        avatar, record = self.avatar, self.avatar_record
        self.avatar = self.avatar_record = None
        if self.conversation is not None and self.conversation.avatar is avatar:
            self.conversation.avatar = None
        seconds = time.monotonic() - self.avatar_opened_at
        try:
            if avatar is not None:
                await avatar.close()
        finally:
            if record is not None:
                try:
                    await asyncio.shield(
                        turns.on_database_thread(self.database, usage.end)(
                            record, seconds=seconds, reason=reason
                        )
                    )
                except Exception:
                    logger.exception("avatar_end_not_recorded", avatar_id=record)

    async def _session_ended(self) -> None:
        await self._close_with(1000, "The conversation has ended; your debrief is being prepared.")

    async def voice_replaced(self, event: dict[str, Any]) -> None:
        if self.opened is not None and self.opened.call_id in event["call_ids"]:
            await self._close_with(4409, "This call continued in another window.")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None or self.closing:
            return
        self.last_received = time.monotonic()
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > MAX_MESSAGE_BYTES:
            await self._close_with(4413, "That message was too large (the limit is 64 KiB).")
            return
        if bytes_data is not None:
            await self._receive_audio(bytes_data)
        else:
            await self._receive_control(text_data or "")

    async def _complain(self, code: str, message: str) -> None:
        self.errors += 1
        if self.errors > MAX_ERRORS:
            await self._close_with(4400, "Too many malformed messages; the call closed.")
            return
        await self._send_event({"type": "error", "code": code, "message": message, "fatal": False})

    async def _receive_audio(self, pcm: bytes) -> None:
        assert self.conversation is not None
        if not self.conversation.listening:
            return  # audio before "start" is ignored (PROTOCOL.md)
        if len(pcm) % 2 or not MIN_FRAME_BYTES <= len(pcm) <= MAX_FRAME_BYTES:
            await self._complain(
                "bad_audio",
                f"Audio frames are 16-bit mono PCM at 16 kHz, 10-60 ms (an even number of "
                f"bytes up to {MAX_FRAME_BYTES}); this one had {len(pcm)} bytes.",
            )
            return
        self.audio_received_ms += duration_ms(pcm, INPUT_SAMPLE_RATE)
        ahead = self.audio_received_ms - (time.monotonic() - self.audio_clock_start) * 1000
        if ahead > settings.VOICE_MAX_AUDIO_AHEAD_MS:
            # Dropped, told at most once a second; persistently far ahead: closed.
            self.audio_received_ms -= duration_ms(pcm, INPUT_SAMPLE_RATE)
            self.audio_dropped_ms += duration_ms(pcm, INPUT_SAMPLE_RATE)
            if self.audio_dropped_ms > 3 * settings.VOICE_MAX_AUDIO_AHEAD_MS:
                await self._close_with(4429, "Audio arrived much faster than real time.")
            elif time.monotonic() - self.too_fast_told_at >= 1:
                self.too_fast_told_at = time.monotonic()
                await self._send_event(
                    {
                        "type": "error",
                        "code": "too_fast",
                        "fatal": False,
                        "message": "Audio is arriving faster than real time and "
                        "was dropped; send it as it is recorded.",
                    }
                )
            return
        await self.conversation.feed_audio(pcm)

    async def _receive_control(self, text: str) -> None:
        assert self.conversation is not None
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            await self._complain("bad_message", "That was not valid JSON.")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in CONTROL_TYPES:
            await self._complain(
                "bad_message",
                f"Unknown message type {str(kind)[:40]!r}; expected one of "
                f"{', '.join(sorted(CONTROL_TYPES))}.",
            )
            return
        conversation = self.conversation
        if kind == "ping":
            await self._send_event({"type": "pong", "t": message.get("t")})
        elif kind == "start":
            mode = message.get("mode", "hands_free")
            if mode not in ("hands_free", "push_to_talk"):
                await self._complain("bad_message", 'mode is "hands_free" or "push_to_talk".')
                return
            faces = message.get("avatar", [])
            if not isinstance(faces, list) or not all(isinstance(f, str) for f in faces):
                await self._complain("bad_message", 'avatar is a list of faces, e.g. ["livekit"].')
                return
            try:
                await conversation.start(mode)
            except SpeechProviderError as exc:
                if exc.out_of_credit:
                    await self._tell_out_of_credit("speech_to_text")
                await self._close_with(4503, f"Voice is unavailable right now: {exc}")
                return
            if "livekit" in faces and self.avatar_task is None:
                self.avatar_task = asyncio.ensure_future(self._open_avatar())
            self.audio_clock_start = time.monotonic()
            self.audio_received_ms = 0.0
        elif not conversation.listening:
            await self._complain("bad_message", 'Send "start" first.')
        elif kind == "stop":
            await self._close_with(1000, "Call ended.")
        elif kind == "interrupt":
            await conversation.interrupt()
        elif kind == "ptt_down":
            await conversation.ptt_down()
        elif kind == "ptt_up":
            await conversation.ptt_up()
        elif kind == "avatar_stop":
            # The page could not join the hosted avatar's room, or it dropped: nobody sees
            # the face, so it is closed (and no longer billed); the call goes on.
            reason = message.get("reason")
            reason = reason[:200] if isinstance(reason, str) else "no reason given"
            if self.avatar is not None:
                logger.info("avatar_stopped_by_client", reason=reason)
                await self._drop_avatar(f"the page: {reason}")
        elif kind == "playback":
            reply_id, played = message.get("reply_id"), message.get("played_ms")
            if not isinstance(reply_id, int) or not isinstance(played, int | float) or played < 0:
                await self._complain(
                    "bad_message",
                    "playback needs reply_id (an integer) and played_ms (a number ≥ 0).",
                )
                return
            conversation.playback(
                reply_id, float(played), via_avatar=message.get("via") == "avatar"
            )

    async def disconnect(self, code: int) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.avatar_task is not None and not self.avatar_task.done():
            self.avatar_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.avatar_task
        if self.opened is None:
            return
        metrics.CALLS.dec()
        await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.conversation is not None:
            await self.conversation.close()
        with contextlib.suppress(Exception):
            await self._drop_avatar("the call ended")
        reason = "closed by the client" if not self.closing else f"closed with {code}"
        await database_sync_to_async(calls.close_call)(
            self.opened.call_id,
            seconds=time.monotonic() - self.connected_at,
            close_code=code,
            reason=reason,
        )
        logger.info("voice_call_closed", call_id=self.opened.call_id, code=code)
