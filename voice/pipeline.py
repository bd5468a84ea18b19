"""The voice pipeline of one call: audio in → turn-taking → the training turn → speech out.

Everything runs as asyncio tasks on the ASGI process's event loop; the consumer only
translates the wire protocol (voice/PROTOCOL.md) into calls on `Conversation`. Per audio
frame the work is the VAD window (~0.2 ms) and appending to buffers: no database, no
queue. CPU-heavy steps (speech recognition, the end-of-turn model, synthesis) run on
thread pools. The reply is the same turn the text chat runs (`training.turns
.stream_reply`), so the transcript, debrief and API see a voice turn like any other.

A reply is three tasks: the reader (model text, cut into clauses), the speaker (clauses
to audio) and the sender (audio paced to the client). Barge-in cancels the speaker and
sender at once and flushes the client; the reader is cancelled, and the reply stored with
only what was heard, once the interruption is confirmed; a false one resumes the speech.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings

from accounts.models import User
from core.errors import as_refused
from training import sessions as training_sessions
from training import turns
from training.models import Message, MessageStatus
from voice import metrics
from voice.audio import INPUT_SAMPLE_RATE, duration_ms
from voice.avatar.base import AvatarError, AvatarEvent, AvatarSession
from voice.clauses import ClauseSplitter
from voice.echo import ECHO_CORRELATION, EchoReference
from voice.end_of_turn import completion_probability, turn_is_complete
from voice.errors import SpeechProviderError
from voice.stt import SpeechToText, TranscriptionStream
from voice.tts import OUTPUT_SAMPLE_RATE, SpeechSynthesis, TextToSpeech
from voice.vad import SpeechDetector

logger = structlog.get_logger(__name__)

SendJson = Callable[[dict[str, Any]], Awaitable[None]]
SendBytes = Callable[[bytes], Awaitable[None]]

FRAME_MS = 40
FRAME_BYTES = OUTPUT_SAMPLE_RATE * 2 * FRAME_MS // 1000
PREROLL_MS = 320  # audio kept from before the VAD's speech start (its decision lags)
_background: set[asyncio.Task[Any]] = set()  # replies finishing after their socket went


def _keep(task: asyncio.Task[Any]) -> None:
    _background.add(task)
    task.add_done_callback(_background.discard)


async def finish_background_work(timeout: float = 30.0) -> None:
    """Wait for replies and turns still being stored after their sockets went (process
    shutdown, tests)."""
    pending = [task for task in _background if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


@dataclass
class _Segment:
    """One stretch of speech between pauses, transcribed at its pause."""

    started_ms: int
    during_reply: _Reply | None
    audio_ms: float = 0.0
    ended_ms: int = 0  # where it stopped in the call's audio (set at its end)
    voiced_ms: int = 0  # how much of it was clearly speech (set at its end)
    task: asyncio.Task[str] | None = None


@dataclass
class _Span:
    start_ms: float
    end_ms: float
    text: str


@dataclass
class _Reply:
    reply_id: int
    timings: dict[str, float]
    clauses: list[str] = field(default_factory=list)
    clauses_done: bool = False
    next_clause: int = 0
    new_clause: asyncio.Event = field(default_factory=asyncio.Event)
    audio: bytearray = field(default_factory=bytearray)
    new_audio: asyncio.Event = field(default_factory=asyncio.Event)
    synthesis_done: bool = False
    spans: list[_Span] = field(default_factory=list)  # clause audio on the reply's timeline
    queued_ms: float = 0.0  # reply audio synthesized so far (timeline position)
    sent_ms: float = 0.0  # reply audio sent so far (timeline position)
    play_end: float = 0.0  # when the client will have played all it was sent
    audio_started: float | None = None  # when the first frame went out
    client_report: tuple[float, float] | None = None  # (played_ms, when) from the client
    frozen_played_ms: float | None = None  # where the audio stopped, until the client says
    heard: list[str] = field(default_factory=list)  # text heard before a pause
    overheard: list[_Segment] = field(default_factory=list)  # spoken over it, not a turn (yet)
    # A hosted avatar speaking this reply: the client hears the avatar's audio (its
    # `playback` reports say so), which starts when the avatar says `speak_started` for the
    # utterance carrying it; the reply position that utterance starts at (after a resume).
    avatar_voice: bool = False
    avatar_utterance: str | None = None
    avatar_started_at: float | None = None
    avatar_from_ms: float = 0.0
    text: str = ""
    paused: bool = False
    cancelled: bool = False  # stopped for good (paused stays set)
    paused_at_audio_ms: float = 0.0  # the call's learner-audio position when it stopped
    reader: asyncio.Task[None] | None = None
    speaker: asyncio.Task[None] | None = None
    sender: asyncio.Task[None] | None = None
    generator: Any = None
    presynthesis: _Presynthesis | None = None  # the first clause, synthesized from the draft
    # Spoken while its turn is being stored (from its draft's text, in memory): the turn's
    # words, the store, and the clauses cut from the draft's text so far (how many deltas).
    turn_text: str = ""
    stored: asyncio.Future[Any] | None = None
    draft_clauses: ClauseSplitter | None = None
    draft_deltas_read: int = 0

    @property
    def audible(self) -> bool:
        return self.audio_started is not None and not self.paused

    def played_ms(self, now: float) -> float:
        """Audio of this reply the learner has heard: the client's report, else the
        server's own clock of what a real-time player has played; when the learner hears
        a hosted avatar, no more than the avatar has spoken since its `speak_started`."""
        if self.client_report is not None:
            value, at = self.client_report
            if not self.paused:
                value += (now - at) * 1000  # still playing since that report
            played = max(0.0, min(value, self.sent_ms))
        elif self.paused and self.frozen_played_ms is not None:
            return self.frozen_played_ms
        else:
            played = max(0.0, self.sent_ms - max(0.0, self.play_end - now) * 1000)
        if self.avatar_voice:
            if self.paused:
                if self.frozen_played_ms is not None:
                    played = min(played, self.frozen_played_ms)
            else:
                spoken = self.avatar_from_ms
                if self.avatar_started_at is not None:
                    spoken += (now - self.avatar_started_at) * 1000
                played = min(played, spoken)
        return played

    def heard_text(self, played_ms: float) -> tuple[str, int, int]:
        """The text heard up to `played_ms`, and where speech stopped: (text, clause index
        in `spans`, words of that clause heard)."""
        words: list[str] = list(self.heard)
        for index, span in enumerate(self.spans):
            if played_ms >= span.end_ms:
                words.append(span.text)
                continue
            if played_ms <= span.start_ms:
                return " ".join(words).strip(), index, 0
            clause_words = span.text.split()
            share = (played_ms - span.start_ms) / max(1.0, span.end_ms - span.start_ms)
            count = int(len(clause_words) * share)
            words.extend(clause_words[:count])
            return " ".join(words).strip(), index, count
        return " ".join(words).strip(), len(self.spans), 0


@dataclass
class _Presynthesis:
    """A draft reply's first clause, synthesized while the turn is being confirmed (kept
    in memory: nothing is sent before the turn is stored)."""

    clause: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)
    clause_known: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    failure: SpeechProviderError | None = None
    task: asyncio.Task[None] | None = None

    async def of(self, clause: str) -> bool:
        """Whether this is `clause`'s audio (else it is dropped)."""
        await self.clause_known.wait()
        if self.clause == clause:
            return True
        self.cancel()
        return False

    async def audio(self) -> AsyncIterator[bytes]:
        index = 0
        while True:
            while index < len(self.chunks):
                index += 1
                yield self.chunks[index - 1]
            if self.failure is not None:
                raise self.failure
            if self.done:
                return
            self.grew.clear()
            await self.grew.wait()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.done = True
        self.clause_known.set()
        self.grew.set()


@dataclass
class _EarlyDraft:
    """A reply drafted on the recogniser's partial text at a pause, before the segment's
    final transcript: kept if the final has the same words."""

    draft: turns.DraftReply
    started: asyncio.Task[None]


def _spoken(clause: str) -> str:
    return clause.replace(turns.END_MARKER, "").strip()


def _words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]


def _is_echo(heard: str, reply_text: str) -> bool:
    """Whether what the microphone heard is the reply's own words coming back through the
    speakers (no echo canceller, a speakerphone): most of its words are the reply's."""
    heard_words, reply_words = _words(heard), set(_words(reply_text))
    if not heard_words or not reply_words:
        return False
    return sum(w in reply_words for w in heard_words) / len(heard_words) >= 0.8


def _leading_up_to(segments: list[_Segment], started_ms: int) -> list[_Segment]:
    """The stretches of `segments` that speech starting at `started_ms` follows closely:
    with it, one utterance ("Wait, ... stop." is two stretches)."""
    chain: list[_Segment] = []
    for earlier in reversed(segments):
        if started_ms - earlier.ended_ms > settings.VOICE_BARGE_IN_CONFIRM_MS:
            break
        chain.insert(0, earlier)
        started_ms = earlier.started_ms
    return chain


class Conversation:
    """One call's pipeline. Create, `await start()`, feed it, `await close()`."""

    def __init__(
        self,
        *,
        user: User,
        session_id: int,
        stt: SpeechToText,
        tts: TextToSpeech,
        voice_id: str,
        send_json: SendJson,
        send_bytes: SendBytes,
        on_session_ended: Callable[[], Awaitable[None]] | None = None,
        database: concurrent.futures.ThreadPoolExecutor | None = None,
    ) -> None:
        self.user = user
        self.session_id = session_id
        self.stt = stt
        self.tts = tts
        self.voice_id = voice_id
        self.send_json = send_json
        self.send_bytes = send_bytes
        self.on_session_ended = on_session_ended
        self.detector = SpeechDetector(
            threshold=settings.VOICE_VAD_THRESHOLD,
            start_ms=settings.VOICE_VAD_START_MS,
            stop_ms=settings.VOICE_VAD_STOP_MS,
            pause_ms=settings.VOICE_DRAFT_PAUSE_MS,
        )
        self.mode = "hands_free"
        self.listening = False
        self.closed = False
        self.transcription: TranscriptionStream | None = None
        self.synthesis: SpeechSynthesis | None = None
        self.preroll: deque[bytes] = deque()
        self.preroll_ms = 0.0
        self.audio_ms = 0.0  # learner audio received in this call
        self.segment: _Segment | None = None
        self.turn_segments: list[_Segment] = []
        self.turn_audio = bytearray()
        self.turn_speech_ms = 0.0
        self.speech_stopped_at: float | None = None
        self.ptt_held = False
        self.decision: asyncio.Task[None] | None = None
        self.turn_task: asyncio.Task[None] | None = None
        self.reply: _Reply | None = None
        self.barge_started_ms: int | None = None
        self.last_reply_audio_end: float | None = None
        self.echo = EchoReference()
        self.echo_checks = 0
        self.echo_verdict = False
        # The call's database steps share one long-lived connection (not one per step).
        self.database = database or turns.database_thread()
        self.partial = ""  # the recogniser's latest text of the current segment
        self.paused = False  # the current segment is in a pause (a probable end of turn)
        self.early: _EarlyDraft | None = None
        self.avatar: AvatarSession | None = None  # a hosted face, fed the reply's audio
        self.on_avatar_lost: Callable[[AvatarError], Awaitable[None]] | None = None
        # A speech provider said its account is out of credit: the service it was
        # ("speech_to_text" / "text_to_speech"), told once per call (voice/billing.py).
        self.on_out_of_credit: Callable[[str], Awaitable[None]] | None = None
        self.credit_told: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------

    async def start(self, mode: str) -> None:
        """Begin listening. Raises SpeechProviderError when a provider cannot open."""
        self.mode = mode
        if self.transcription is None:
            self.transcription = await self.stt.open(self._on_partial)
        if self.synthesis is None:
            self.synthesis = await self.tts.open(self.voice_id)
        self.listening = True
        await self._state("listening")

    async def close(self) -> None:
        """The socket went: stop listening and speaking. Nothing said is lost: a turn
        the learner finished is stored, and a reply still being written is finished and
        stored in the background, so the next connection shows both."""
        if self.segment is not None and self.segment.during_reply is None:
            await self._speech_stopped(int(self.audio_ms))  # cut off mid-sentence: keep it
        self.closed = True
        self.listening = False
        if self.decision is not None and not self.decision.done():
            self.decision.cancel()
        pending: asyncio.Future[None] | None = None
        if self.turn_task is not None and not self.turn_task.done():
            pending = self.turn_task
        elif self.turn_segments:
            segments, self.turn_segments = self.turn_segments, []
            pending = asyncio.ensure_future(
                self._take_unfinished_turn(segments, self.turn_speech_ms)
            )
        if self.reply is not None:
            self._stop_speech(self.reply)
        _keep(asyncio.ensure_future(self._discard_early_draft()))
        _keep(asyncio.ensure_future(self._wind_down(pending)))

    async def _wind_down(self, pending: asyncio.Future[None] | None) -> None:
        if pending is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        reply = self.reply
        if reply is not None and reply.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reply.reader
            await self._record(reply, spoken_text=None)
        with contextlib.suppress(Exception):
            if self.transcription is not None:
                await self.transcription.close()
            if self.synthesis is not None:
                await self.synthesis.close()

    async def _send(self, event: dict[str, Any]) -> None:
        if not self.closed:
            await self.send_json(event)

    async def _state(self, state: str) -> None:
        await self._send({"type": "state", "state": state})

    async def _error(self, code: str, message: str) -> None:
        await self._send({"type": "error", "code": code, "message": message, "fatal": False})

    async def _speech_error(self, service: str, exc: SpeechProviderError) -> None:
        """A speech provider failed: the learner is told; an account out of credit is
        also reported (once a call) for the organization's admins."""
        await self._error(f"{service}_failed", str(exc))
        if exc.out_of_credit and self.on_out_of_credit and service not in self.credit_told:
            self.credit_told.add(service)
            _keep(asyncio.ensure_future(self.on_out_of_credit(service)))

    # --- the face ------------------------------------------------------------------

    def attach_avatar(
        self, avatar: AvatarSession, on_lost: Callable[[AvatarError], Awaitable[None]]
    ) -> None:
        """From now on the reply's audio also goes to this hosted face (the learner's
        page plays the face's audio and video instead of ours while it has them)."""
        self.avatar, self.on_avatar_lost = avatar, on_lost

    def avatar_event(self, event: AvatarEvent) -> None:
        """The face began speaking an utterance: if it is the current reply's, the learner
        hearing the face has heard the reply from this moment (`_Reply.played_ms`)."""
        reply = self.reply
        if event.kind != "speak_started" or reply is None or reply.paused:
            return
        if reply.avatar_started_at is None and reply.avatar_utterance in (
            None,
            event.utterance_id,
        ):
            reply.avatar_utterance = event.utterance_id
            reply.avatar_started_at = event.at

    async def _to_avatar(self, command: Callable[[AvatarSession], Awaitable[Any]]) -> None:
        """A command to the face; a face that is lost is dropped, and the call goes on."""
        avatar = self.avatar
        if avatar is None:
            return
        try:
            await command(avatar)
        except AvatarError as exc:
            if not exc.session_lost:
                logger.warning("avatar_command_failed", code=exc.code, reason=str(exc))
            elif self.avatar is avatar:
                self.avatar = None
                if self.on_avatar_lost is not None:
                    _keep(asyncio.ensure_future(self.on_avatar_lost(exc)))

    # --- audio in ------------------------------------------------------------------

    async def feed_audio(self, pcm: bytes) -> None:
        """One frame of learner audio (16 kHz PCM, already validated)."""
        if not self.listening:
            return
        frame_ms = duration_ms(pcm, INPUT_SAMPLE_RATE)
        self.audio_ms += frame_ms
        if self.mode == "push_to_talk" and not self.ptt_held:
            return
        events = await self.detector.feed_off_loop(pcm)
        for event in events:
            if event.kind == "speech_started":
                await self._speech_started(event.at_ms)
            elif event.kind == "speech_paused":
                self.paused = True
                self._start_early_draft()
            elif event.kind == "speech_resumed":
                self.paused = False
                await self._discard_early_draft()
            else:
                await self._speech_stopped(event.at_ms)
        if self.segment is not None:
            self.segment.audio_ms += frame_ms
            await self._segment_audio(pcm)
            await self._check_barge_in()
        else:
            self.preroll.append(pcm)
            self.preroll_ms += frame_ms
            while self.preroll_ms > PREROLL_MS and self.preroll:
                self.preroll_ms -= duration_ms(self.preroll.popleft(), INPUT_SAMPLE_RATE)

    async def _segment_audio(self, pcm: bytes) -> None:
        self.turn_audio += pcm
        assert self.transcription is not None
        try:
            await self.transcription.send_audio(pcm)
        except SpeechProviderError as exc:
            await self._speech_error("speech_to_text", exc)

    async def _speech_started(self, at_ms: int) -> None:
        await self._send({"type": "vad.speech_started", "at_ms": at_ms})
        if self.decision is not None and not self.decision.done():
            self.decision.cancel()  # they went on: the turn is not over
        await self._discard_early_draft()
        self.partial, self.paused = "", False
        reply = self.reply if self.reply is not None and not self.reply_finished() else None
        self.segment = _Segment(started_ms=at_ms, during_reply=reply)
        self.echo_checks = 0
        self.speech_stopped_at = None
        if reply is not None:
            self.barge_started_ms = at_ms
        else:
            await self._state("user_speaking")
        preroll = b"".join(self.preroll)
        self.preroll.clear()
        self.preroll_ms = 0.0
        if preroll:
            await self._segment_audio(preroll)

    def reply_finished(self) -> bool:
        """No reply, or its text and audio are all out, or it was cancelled; a reply
        paused by speech over it is not: that speech decides whether it resumes."""
        reply = self.reply
        return reply is None or (
            reply.reader is not None
            and reply.reader.done()
            and (reply.sender is None or reply.sender.done())
            and (not reply.paused or reply.cancelled)
        )

    async def _speech_stopped(self, at_ms: int) -> None:
        await self._send({"type": "vad.speech_stopped", "at_ms": at_ms})
        segment, self.segment = self.segment, None
        self.paused = False
        if segment is None:
            return
        segment.ended_ms, segment.voiced_ms = at_ms, self.detector.voiced_ms
        self.speech_stopped_at = time.monotonic() - max(0, self.audio_ms - at_ms) / 1000
        self.turn_speech_ms += max(0, at_ms - segment.started_ms)
        assert self.transcription is not None
        segment.task = asyncio.ensure_future(self.transcription.finish_segment())
        if segment.during_reply is not None:
            _keep(asyncio.ensure_future(self._settle_barge_in(segment)))
            return
        self.turn_segments.append(segment)
        if self.mode == "hands_free":
            self.decision = asyncio.ensure_future(self._decide_end_of_turn())

    async def _segment_text(self, segment: _Segment) -> str:
        assert segment.task is not None
        try:
            return (await asyncio.shield(segment.task)).strip()
        except SpeechProviderError as exc:
            await self._speech_error("speech_to_text", exc)
            return ""

    # --- turn-taking ---------------------------------------------------------------

    async def _decide_end_of_turn(self) -> None:
        """At a pause: finish transcribing, start a draft reply (nothing is spoken or
        stored yet), then confirm the end of the turn: the end-of-turn model judges it
        complete and the silence reaches VOICE_CONFIRM_SILENCE_MS, or the silence reaches
        VOICE_SILENCE_FALLBACK_MS. Cancelled when the learner goes on: the draft is thrown
        away and the turn continues."""
        stopped = self.speech_stopped_at or time.monotonic()
        segments = list(self.turn_segments)
        judged: asyncio.Future[float] | None = None
        if settings.VOICE_END_OF_TURN_MODEL:
            audio = bytes(self.turn_audio[-8 * INPUT_SAMPLE_RATE * 2 :])
            judged = asyncio.ensure_future(asyncio.to_thread(completion_probability, audio))
        draft: turns.DraftReply | None = None
        presynthesis: _Presynthesis | None = None
        handed = False
        try:
            text = await self._turn_text(segments)
            final = time.monotonic()
            if not text:  # noise, or speech with no words: not a turn
                await self._discard_early_draft()
                self.turn_segments = [s for s in self.turn_segments if s not in segments]
                await self._state("listening")
                return
            draft = await self._take_early_draft(text)
            if draft is None and self.reply_finished():
                draft = turns.DraftReply(self.session_id, text)
                try:
                    with turns.turns_on(self.database):
                        await draft.start()
                except Exception:
                    logger.exception("voice_draft_failed", session_id=self.session_id)
                    draft = None
            if draft is not None:
                presynthesis = _Presynthesis()
                presynthesis.task = asyncio.ensure_future(self._presynthesize(draft, presynthesis))
            complete = judged is not None and turn_is_complete(await asyncio.shield(judged), text)
            silence = (
                settings.VOICE_CONFIRM_SILENCE_MS
                if complete
                else settings.VOICE_SILENCE_FALLBACK_MS
            )
            hold = silence / 1000 - (time.monotonic() - stopped)
            if hold > 0:
                await asyncio.sleep(hold)
            handed = True
            await self._end_turn(
                segments, text, draft, {"speech_ended": stopped, "final": final}, presynthesis
            )
        finally:
            if draft is not None:
                metrics.DRAFTS.labels(outcome="used" if handed else "discarded").inc()
            if not handed:
                if presynthesis is not None:
                    presynthesis.cancel()
                if draft is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(draft.discard())

    def _start_early_draft(self) -> None:
        """At a pause, when the recogniser's partial text (hosted streaming recognisers)
        ends a sentence: draft the reply now, before the VAD's stop and the final
        transcript."""
        segment = self.segment
        if (
            self.mode != "hands_free"
            or segment is None
            or segment.during_reply is not None
            or not self.partial.rstrip().endswith((".", "?", "!"))  # not a breath at a comma
            or not self.reply_finished()
            or (self.turn_task is not None and not self.turn_task.done())
        ):
            return
        earlier = []
        for previous in self.turn_segments:
            if previous.task is None or not previous.task.done() or previous.task.exception():
                return  # an earlier segment's words are not known yet
            earlier.append(previous.task.result().strip())
        text = " ".join(t for t in [*earlier, self.partial.strip()] if t)
        if self.early is not None and _words(self.early.draft.text) == _words(text):
            return
        draft = turns.DraftReply(self.session_id, text)
        replaced, self.early = (
            self.early,
            _EarlyDraft(draft, asyncio.ensure_future(self._start_draft(draft))),
        )
        if replaced is not None:
            _keep(asyncio.ensure_future(self._drop_early_draft(replaced)))

    async def _start_draft(self, draft: turns.DraftReply) -> None:
        with turns.turns_on(self.database):
            await draft.start()

    async def _discard_early_draft(self) -> None:
        early, self.early = self.early, None
        if early is not None:
            await self._drop_early_draft(early)

    @staticmethod
    async def _drop_early_draft(early: _EarlyDraft) -> None:
        metrics.DRAFTS.labels(outcome="discarded").inc()
        early.started.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await early.started
        with contextlib.suppress(Exception):
            await early.draft.discard()

    async def _take_early_draft(self, text: str) -> turns.DraftReply | None:
        """The early draft, if it was written for these words (the final transcript's)."""
        early = self.early
        if early is None:
            return None
        if _words(early.draft.text) != _words(text) or not self.reply_finished():
            await self._discard_early_draft()
            return None
        self.early = None
        try:
            await asyncio.shield(early.started)
        except asyncio.CancelledError:
            _keep(asyncio.ensure_future(self._drop_early_draft(early)))
            raise
        except Exception:
            logger.exception("voice_draft_failed", session_id=self.session_id)
            await early.draft.discard()
            return None
        early.draft.text = text  # the stored turn's own spelling of the same words
        return early.draft

    async def _presynthesize(self, draft: turns.DraftReply, presynthesis: _Presynthesis) -> None:
        """Synthesize the draft's first clause as soon as the model has written it."""
        assert self.synthesis is not None
        try:
            splitter = ClauseSplitter()
            clause = ""
            async for delta in draft.text_so_far():
                clause = next((c for c in map(_spoken, splitter.feed(delta)) if c), "")
                if clause:
                    break
            else:
                clause = next((c for c in map(_spoken, splitter.flush()) if c), "")
            presynthesis.clause = clause or None
            presynthesis.clause_known.set()
            if clause:
                async with contextlib.aclosing(self.synthesis.synthesize(clause)) as audio:
                    async for pcm in audio:
                        presynthesis.chunks.append(pcm)
                        presynthesis.grew.set()
        except SpeechProviderError as exc:
            presynthesis.failure = exc
        finally:
            presynthesis.done = True
            presynthesis.clause_known.set()
            presynthesis.grew.set()

    async def _turn_text(self, segments: list[_Segment]) -> str:
        texts = [await self._segment_text(segment) for segment in segments]
        return " ".join(t for t in texts if t).strip()

    async def _end_turn(
        self,
        segments: list[_Segment],
        text: str,
        draft: turns.DraftReply | None,
        timings: dict[str, float],
        presynthesis: _Presynthesis | None = None,
    ) -> None:
        timings["decided"] = time.monotonic()
        self.turn_segments = [s for s in self.turn_segments if s not in segments]
        speech_ms, self.turn_speech_ms = self.turn_speech_ms, 0.0
        self.turn_audio = bytearray()
        # Shielded: the learner's words are stored even if they start talking again now.
        self.turn_task = asyncio.ensure_future(
            self._take_turn(text, speech_ms, timings, draft, presynthesis)
        )
        await asyncio.shield(self.turn_task)

    async def _take_unfinished_turn(self, segments: list[_Segment], speech_ms: float) -> None:
        """The socket went after the learner spoke, before the turn was decided."""
        text = await self._turn_text(segments)
        now = time.monotonic()
        if text:
            timings = {"speech_ended": now, "final": now, "decided": now}
            await self._take_turn(text, speech_ms, timings, None)

    async def _take_turn(
        self,
        text: str,
        speech_ms: float,
        timings: dict[str, float],
        draft: turns.DraftReply | None,
        presynthesis: _Presynthesis | None = None,
    ) -> None:
        """Store the confirmed turn and answer it. With a draft that reserved the rows' ids
        (the usual case in hands-free), the reply is spoken from the draft's text while the
        turn is stored (the database is not on the way to the reply's audio); if the store
        is refused, the reply stops and the learner gets their words back."""
        previous = self.reply
        if previous is not None and previous.reader is not None and not previous.reader.done():
            await self._cancel_reply(previous, confirmed=True)
        stored: asyncio.Future[Any] | None = None
        if draft is not None and draft.ids is not None and presynthesis is not None:
            learner_id, reply_id = draft.ids
            stored = asyncio.ensure_future(self._post_turn(text, speech_ms, ids=draft.ids))
        else:
            try:
                posted = await self._post_turn(text, speech_ms)
            except Exception as exc:
                if presynthesis is not None:
                    presynthesis.cancel()
                if draft is not None:
                    await draft.discard()
                await self._turn_refused(exc, text)
                return
            learner_id, reply_id = posted.learner_message.pk, posted.reply.pk
        await self._send({"type": "transcript.final", "text": text, "message_id": learner_id})
        reply = _Reply(
            reply_id=reply_id,
            timings=timings,
            presynthesis=presynthesis,
            turn_text=text,
            stored=stored,
        )
        if stored is not None and draft is not None:
            # What the draft has written is spoken now, without a hop through a task.
            reply.draft_clauses = ClauseSplitter()
            self._cut_draft_text(reply, list(draft.deltas))
        self.reply = reply
        await self._state("thinking")
        reply.reader = asyncio.ensure_future(self._read_reply(reply, draft))
        if not self.closed:  # else the reply is only written and stored (see close)
            reply.speaker = asyncio.ensure_future(self._speak(reply))
            reply.sender = asyncio.ensure_future(self._send_audio(reply))

    async def _turn_refused(self, exc: Exception, text: str) -> None:
        """The turn could not be stored: the words go back to the learner."""
        refused = as_refused(exc)
        if refused is None:
            logger.exception("voice_turn_failed", session_id=self.session_id, exc_info=exc)
        message = refused.message if refused else "Your turn could not be saved."
        await self._send(
            {
                "type": "error",
                "code": "turn_refused",
                "fatal": False,
                "message": f"{message} You said: “{text}”",
            }
        )
        await self._state("listening")

    async def _post_turn(
        self, text: str, speech_ms: float, ids: tuple[int, int] | None = None
    ) -> training_sessions.PostedMessage:
        voice = {"speech_ms": round(speech_ms), "words": len(text.split())}
        for _ in range(50):  # a reply finishing from a dropped socket: wait for it (≤ 10 s)
            try:
                return await turns.on_database_thread(
                    self.database, training_sessions.post_voice_turn
                )(actor=self.user, session_id=self.session_id, text=text, voice=voice, ids=ids)
            except Exception as exc:
                refused = as_refused(exc)
                if (
                    refused is None
                    or refused.status != 409
                    or "Wait for the reply" not in refused.message
                ):
                    raise
                await asyncio.sleep(0.2)
        raise RuntimeError("a previous reply did not finish")

    async def on_partial(self, text: str) -> None:
        await self._on_partial(text)

    async def _on_partial(self, text: str) -> None:
        if self.segment is not None:
            self.partial = text
            if self.paused:
                self._start_early_draft()  # the recogniser caught up during the pause
        earlier = []
        for segment in self.turn_segments:
            if segment.task is not None and segment.task.done() and not segment.task.exception():
                earlier.append(segment.task.result())
        await self._send({"type": "transcript.partial", "text": " ".join([*earlier, text]).strip()})

    # --- push-to-talk and control --------------------------------------------------

    async def ptt_down(self) -> None:
        self.ptt_held = True
        if self.reply is not None and not self.reply_finished():
            await self.interrupt()

    async def ptt_up(self) -> None:
        self.ptt_held = False
        if self.segment is not None:
            await self._speech_stopped(int(self.audio_ms))
            self.detector.speaking = False
        if self.turn_segments:
            segments = list(self.turn_segments)
            ended = time.monotonic()
            text = await self._turn_text(segments)
            if text:
                timings = {"speech_ended": ended, "final": time.monotonic()}
                await self._end_turn(segments, text, None, timings)

    def playback(self, reply_id: int, played_ms: float, *, via_avatar: bool = False) -> None:
        if self.reply is not None and self.reply.reply_id == reply_id:
            self.reply.client_report = (max(0.0, played_ms), time.monotonic())
            self.reply.avatar_voice = via_avatar and self.avatar is not None

    async def interrupt(self) -> None:
        """The learner asked to stop the reply (a button): a confirmed interruption."""
        if self.reply is not None and not self.reply_finished():
            await self._cancel_reply(self.reply, confirmed=True)

    # --- barge-in ------------------------------------------------------------------

    async def _check_barge_in(self) -> None:
        segment, reply = self.segment, self.reply
        if segment is None or reply is None or segment.during_reply is not reply:
            return
        speech_ms = self.audio_ms - segment.started_ms
        if not reply.paused:
            if reply.audio_started is None:
                return  # nothing is playing yet: decided at the segment's end
            began = time.monotonic() - speech_ms / 1000
            in_grace = (began - reply.audio_started) * 1000 < settings.VOICE_BARGE_IN_GRACE_MS
            needed = (
                settings.VOICE_BARGE_IN_CONFIRM_MS
                if in_grace
                else settings.VOICE_BARGE_IN_MIN_SPEECH_MS
            )
            if speech_ms >= needed and not self._hears_echo():
                await self._pause(reply)
        # Confirmed by talking on after the reply stopped: its echo cannot do that.
        if (
            reply.paused
            and self.audio_ms - reply.paused_at_audio_ms >= settings.VOICE_BARGE_IN_CONFIRM_MS
        ):
            await self._confirm_barge_in(segment)

    def _hears_echo(self) -> bool:
        """The persona's own voice coming back (re-checked every third frame: ~1 ms)."""
        self.echo_checks += 1
        if self.echo_checks % 3 == 1:
            likeness = self.echo.likeness(bytes(self.turn_audio[-8192:]))
            self.echo_verdict = likeness >= ECHO_CORRELATION
        return self.echo_verdict

    async def _pause(self, reply: _Reply) -> None:
        """Stop the reply's audio at once; the model goes on until we know."""
        started = time.monotonic()
        played = reply.played_ms(started)
        reply.paused = True
        reply.paused_at_audio_ms = self.audio_ms
        reply.frozen_played_ms = played
        reply.client_report = None  # the client reports again after its flush
        self._stop_speech(reply)
        await self._to_avatar(lambda avatar: avatar.interrupt())
        await self._send(
            {
                "type": "reply.interrupted",
                "reply_id": reply.reply_id,
                "played_ms": round(played),
                "resumable": True,
            }
        )
        metrics.BARGE_IN.observe(time.monotonic() - started)
        await self._state("user_speaking")

    def _stop_speech(self, reply: _Reply) -> None:
        for task in (reply.speaker, reply.sender):
            if task is not None and not task.done():
                task.cancel()

    async def _confirm_barge_in(self, segment: _Segment) -> None:
        """Still talking over the reply: it was a real interruption. The segment goes on
        as the learner's next turn (its pause decides that turn's end as usual), after
        the stretches just before it ("Wait, ..." then talking on)."""
        reply = segment.during_reply
        segment.during_reply = None
        if reply is not None:
            earlier = _leading_up_to(reply.overheard, segment.started_ms)
            reply.overheard = [s for s in reply.overheard if s not in earlier]
            self.turn_segments.extend(earlier)
            await self._cancel_reply(reply, confirmed=True)

    async def _settle_barge_in(self, segment: _Segment) -> None:
        """A segment spoken over a reply ended before it was confirmed: a real
        interruption, or a cough, an "mm-hm", or the persona's own voice coming back
        through the speakers, which never stop the reply.

        Real takes enough words in enough clear speech to hold them (a speech model can
        hear "thank you" in a cough), counted over the stretches of speech that follow
        each other closely ("Wait, ... stop." is two)."""
        reply = segment.during_reply
        assert reply is not None
        utterance = [*_leading_up_to(reply.overheard, segment.started_ms), segment]
        reply.overheard.append(segment)
        text = " ".join(t for t in [await self._segment_text(s) for s in utterance] if t)
        if segment not in reply.overheard:
            return  # a later stretch of the same utterance already decided
        words = len(text.split())
        real = (
            reply.paused
            and words >= settings.VOICE_BARGE_IN_MIN_WORDS
            and sum(s.voiced_ms for s in utterance) >= settings.VOICE_BARGE_IN_MIN_VOICED_MS
            and not _is_echo(
                text, " ".join([*reply.heard, *reply.clauses, *(s.text for s in reply.spans)])
            )
        ) or (reply.audio_started is None and bool(text))  # spoke while it was still thinking
        if real:
            reply.overheard = [s for s in reply.overheard if s not in utterance]
            for stretch in utterance:
                stretch.during_reply = None
            self.turn_segments.extend(utterance)
            await self._cancel_reply(reply, confirmed=True)
            if self.mode == "hands_free" and self.segment is None:
                self.decision = asyncio.ensure_future(self._decide_end_of_turn())
        elif reply.paused and reply is self.reply and not self._talking_over(reply):
            await self._resume(reply)

    def _talking_over(self, reply: _Reply) -> bool:
        """The learner is speaking over `reply` right now (that stretch decides next)."""
        return self.segment is not None and self.segment.during_reply is reply

    async def _resume(self, reply: _Reply) -> None:
        """A false interruption: speak the rest of the reply from where it stopped."""
        played = reply.played_ms(time.monotonic())
        heard, index, words = reply.heard_text(played)
        reply.heard = [heard] if heard else []
        remaining = [span.text for span in reply.spans[index:]]
        if remaining and words:
            remaining[0] = " ".join(remaining[0].split()[words:])
        unsynthesized = reply.clauses[reply.next_clause :]
        reply.clauses = [c for c in remaining if c] + unsynthesized
        reply.next_clause = 0
        reply.spans = []
        reply.audio = bytearray()
        reply.queued_ms = reply.sent_ms = played
        # The face was told to stop at the pause: the rest is a new utterance of its own.
        reply.avatar_from_ms, reply.avatar_utterance, reply.avatar_started_at = played, None, None
        reply.synthesis_done = False
        reply.paused = False
        reply.client_report = (played, time.monotonic())
        reply.frozen_played_ms = None
        reply.play_end = time.monotonic()  # the client's queue was flushed
        await self._send({"type": "reply.resumed", "reply_id": reply.reply_id})
        await self._state("speaking")
        reply.speaker = asyncio.ensure_future(self._speak(reply))
        reply.sender = asyncio.ensure_future(self._send_audio(reply))

    async def _cancel_reply(self, reply: _Reply, *, confirmed: bool) -> None:
        """Stop the reply for good and keep only what was heard."""
        now = time.monotonic()
        reply.cancelled = True
        if not reply.paused:
            reply.frozen_played_ms = reply.played_ms(now)
            reply.client_report = None
            reply.paused = True
            self._stop_speech(reply)
            await self._to_avatar(lambda avatar: avatar.interrupt())
            await self._send(
                {
                    "type": "reply.interrupted",
                    "reply_id": reply.reply_id,
                    "played_ms": round(reply.played_ms(now)),
                    "resumable": False,
                }
            )
        heard, _, _ = reply.heard_text(reply.played_ms(now))
        if reply.reader is not None and not reply.reader.done():
            reply.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reply.reader
        await self._record(reply, spoken_text=heard, interrupted=True)

    # --- the reply -----------------------------------------------------------------

    async def _read_reply(self, reply: _Reply, draft: turns.DraftReply | None = None) -> None:
        """Read the stored reply's text (sent to the page as it comes) and cut it into
        clauses to speak; a reply spoken ahead of its stored turn takes its clauses from
        the draft's text instead, which is the same model stream, held in memory."""
        feeder = None
        if reply.draft_clauses is not None and draft is not None:
            feeder = asyncio.ensure_future(self._clauses_of_draft(reply, draft))
        try:
            if reply.stored is not None and not await self._turn_stored(reply):
                if draft is not None:
                    await draft.discard()
                return
            await self._stored_text(reply, draft, split=feeder is None)
            if feeder is not None:
                await feeder  # ends with the model, as the stored text just did
        finally:
            if feeder is not None and not feeder.done():
                feeder.cancel()
            reply.clauses_done = True
            reply.new_clause.set()

    async def _clauses_of_draft(self, reply: _Reply, draft: turns.DraftReply) -> None:
        async for delta in draft.text_so_far(start=reply.draft_deltas_read):
            self._cut_draft_text(reply, [delta])
        assert reply.draft_clauses is not None
        for clause in reply.draft_clauses.flush():
            self._add_clause(reply, clause)

    def _cut_draft_text(self, reply: _Reply, deltas: list[str]) -> None:
        assert reply.draft_clauses is not None
        if deltas:
            reply.timings.setdefault("first_token", time.monotonic())
        for delta in deltas:
            reply.draft_deltas_read += 1
            for clause in reply.draft_clauses.feed(delta):
                self._add_clause(reply, clause)

    async def _stored_text(
        self, reply: _Reply, draft: turns.DraftReply | None, *, split: bool
    ) -> None:
        splitter = ClauseSplitter()
        parts: list[str] = []
        with turns.turns_on(self.database):
            generator = turns.stream_reply(reply.reply_id, draft=draft)
            try:
                async for delta in generator:
                    if "first_token" not in reply.timings:
                        reply.timings["first_token"] = time.monotonic()
                    parts.append(delta)
                    await self._send(
                        {"type": "reply.text_delta", "reply_id": reply.reply_id, "text": delta}
                    )
                    if split:
                        for clause in splitter.feed(delta):
                            self._add_clause(reply, clause)
                if split:
                    for clause in splitter.flush():
                        self._add_clause(reply, clause)
            finally:
                await generator.aclose()
                reply.text = "".join(parts)

    async def _turn_stored(self, reply: _Reply) -> bool:
        """Wait for the turn a reply is spoken ahead of to be stored. Refused: the reply
        stops (the learner may have heard its start) and the words go back to the learner.
        Cancelled meanwhile (talked over at once): the turn is still stored, and its reply
        ends interrupted, with nothing said (what was heard is recorded after)."""
        assert reply.stored is not None
        try:
            await asyncio.shield(reply.stored)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(reply.stored)
                await asyncio.shield(turns.conclude_unread(reply.reply_id))
            raise
        except Exception as exc:
            reply.cancelled = reply.paused = True
            reply.clauses_done = True
            self._stop_speech(reply)
            if reply.audio_started is not None:
                await self._to_avatar(lambda avatar: avatar.interrupt())
                await self._send(
                    {
                        "type": "reply.interrupted",
                        "reply_id": reply.reply_id,
                        "played_ms": round(reply.played_ms(time.monotonic())),
                        "resumable": False,
                    }
                )
            await self._turn_refused(exc, reply.turn_text)
            return False
        return True

    @staticmethod
    def _add_clause(reply: _Reply, clause: str) -> None:
        clause = _spoken(clause)
        if clause:
            reply.clauses.append(clause)
            reply.new_clause.set()

    async def _speak(self, reply: _Reply) -> None:
        assert self.synthesis is not None
        try:
            while True:
                if reply.next_clause < len(reply.clauses):
                    clause = reply.clauses[reply.next_clause]
                    reply.next_clause += 1
                    start = reply.queued_ms
                    presynthesis, reply.presynthesis = reply.presynthesis, None
                    try:
                        if presynthesis is not None and await presynthesis.of(clause):
                            source = presynthesis.audio()
                        else:
                            source = self.synthesis.synthesize(clause)
                    except asyncio.CancelledError:
                        if presynthesis is not None:
                            presynthesis.cancel()
                        raise
                    async with contextlib.aclosing(source) as audio:
                        async for pcm in audio:
                            if "first_audio" not in reply.timings:
                                reply.timings["first_audio"] = time.monotonic()
                            reply.audio += pcm
                            reply.queued_ms += duration_ms(pcm, OUTPUT_SAMPLE_RATE)
                            reply.new_audio.set()
                            await self._avatar_speaks(reply, pcm)
                    reply.spans.append(_Span(start, reply.queued_ms, clause))
                elif reply.clauses_done:
                    break
                else:
                    reply.new_clause.clear()
                    await reply.new_clause.wait()
        except SpeechProviderError as exc:
            await self._speech_error("text_to_speech", exc)
        finally:
            if reply.presynthesis is not None:
                reply.presynthesis.cancel()
            reply.synthesis_done = True
            reply.new_audio.set()
        await self._to_avatar(lambda avatar: avatar.speak_end())

    async def _avatar_speaks(self, reply: _Reply, pcm: bytes) -> None:
        """The face gets the reply's audio as it is synthesized, not paced as the page's
        socket is: it schedules its own playback, and what it has in hand is what it can
        start moving its mouth to (an interruption clears it there)."""
        if self.avatar is None:
            return
        await self._to_avatar(lambda avatar: avatar.speak(pcm))
        if reply.avatar_utterance is None and self.avatar is not None:
            reply.avatar_utterance = self.avatar.utterance_id

    async def _send_audio(self, reply: _Reply) -> None:
        lead = settings.VOICE_PLAYBACK_LEAD_MS / 1000
        while True:
            if len(reply.audio) >= FRAME_BYTES or (reply.synthesis_done and reply.audio):
                frame = bytes(reply.audio[:FRAME_BYTES])
                del reply.audio[:FRAME_BYTES]
                now = time.monotonic()
                if reply.audio_started is None:
                    reply.audio_started = now
                    reply.timings.setdefault("first_frame", now)
                    await self._send(
                        {
                            "type": "reply.audio_started",
                            "reply_id": reply.reply_id,
                            "sample_rate": OUTPUT_SAMPLE_RATE,
                            "format": "pcm_s16le",
                        }
                    )
                    await self._state("speaking")
                ahead = reply.play_end - now
                if ahead > lead:
                    await asyncio.sleep(ahead - lead)
                    now = time.monotonic()
                if self.closed or reply.paused:
                    return
                await self.send_bytes(frame)
                self.echo.played(frame, OUTPUT_SAMPLE_RATE)
                frame_ms = duration_ms(frame, OUTPUT_SAMPLE_RATE)
                reply.sent_ms += frame_ms
                reply.play_end = max(reply.play_end, now) + frame_ms / 1000
            elif reply.synthesis_done:
                break
            else:
                reply.new_audio.clear()
                await reply.new_audio.wait()
        if reply.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(reply.reader)
        await self._send(
            {
                "type": "reply.audio_done",
                "reply_id": reply.reply_id,
                "audio_ms": round(reply.sent_ms),
            }
        )
        # Done when the client has played it: then the call listens again.
        await asyncio.sleep(max(0.0, reply.play_end - time.monotonic()))
        self.last_reply_audio_end = time.monotonic()
        await self._record(reply, spoken_text=None)
        await self._state("listening")

    async def _record(
        self, reply: _Reply, *, spoken_text: str | None, interrupted: bool = False
    ) -> None:
        if reply.timings.get("recorded"):
            return
        reply.timings["recorded"] = 1
        timings = self._timings(reply)
        voice = {
            "audio_ms": round(reply.sent_ms),
            "played_ms": round(reply.played_ms(time.monotonic())),
            "timings_ms": timings,
            "interrupted_by_learner": interrupted,
        }
        await turns.on_database_thread(self.database, turns.record_spoken)(
            reply.reply_id, spoken_text=spoken_text if interrupted else None, voice=voice
        )
        stored = await turns.on_database_thread(
            self.database,
            Message.objects.select_related("session").filter(pk=reply.reply_id).first,
        )()
        metrics.observe_turn(timings)
        await self._send(
            {"type": "turn.metrics", "reply_id": reply.reply_id, "timings_ms": timings}
        )
        if stored is not None:
            await self._send(
                {
                    "type": "reply.done",
                    "reply_id": reply.reply_id,
                    "text": stored.text,
                    "interrupted": stored.interrupted,
                    "status": stored.status,
                    "session_ended": stored.session.status != "active",
                }
            )
            if stored.status == MessageStatus.INCOMPLETE:
                await self._error("reply_failed", stored.error)
            if stored.session.status != "active" and self.on_session_ended and not self.closed:
                await self.on_session_ended()

    @staticmethod
    def _timings(reply: _Reply) -> dict[str, int]:
        t = reply.timings
        stages = [
            ("end_of_speech_to_final_transcript", "speech_ended", "final"),
            ("final_transcript_to_decision", "final", "decided"),
            ("decision_to_first_token", "decided", "first_token"),
            ("first_token_to_first_audio", "first_token", "first_audio"),
            ("first_audio_to_first_frame", "first_audio", "first_frame"),
            ("voice_to_voice", "speech_ended", "first_frame"),
        ]
        return {
            name: round((t[end] - t[start]) * 1000)
            for name, start, end in stages
            if start in t and end in t
        }
