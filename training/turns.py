"""A reply is a turn: generated in the web process as an asyncio task, never queued.

`stream_reply(reply_id)` is the turn generator. It yields the reply's text as the model
streams it, appends every event to the reply's Redis stream (for the chat page and API
readers on any node), and saves the reply when it ends, whichever way it ends:

- finished: status complete (an END_MARKER ends the session);
- the provider failed, or took longer than REPLY_TIMEOUT_SECONDS: status incomplete, with
  what streamed and a sentence telling the learner to send the message again;
- closed early (`aclose()`) or its task cancelled: what was produced is kept, marked
  interrupted. Voice barge-in calls exactly this.

`launch(reply_id)` starts a turn from synchronous code (a view, after commit) on this
process's turn loop, a background thread running an event loop, so a reply never waits
behind ingestion, grading or another organization's work in a queue. A turn lost with its
process is finished by `finish_abandoned_replies` (beat, and `post_message` on demand).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Q

from core.provider_billing import is_out_of_credit
from training import billing, streaming
from training.engine import build_prompt
from training.llm import END_MARKER, ChatModel, LLMError, Prompt, TextDelta, Usage, get_chat_model
from training.models import Message, MessageRole, MessageStatus, SessionStatus, TrainingSession
from training.rendering import message_html

logger = structlog.get_logger(__name__)

RETRY = "Your message is saved; send it again to retry."
SHUTDOWN = "server-shutdown"  # the cancel message of turns stopped by a process exit
ABANDONED = f"This reply was cut off: the server writing it stopped. {RETRY}"


# Where a turn's database work runs. By default, thread-sensitively: on the thread of the
# caller that awaits the turn (a request's, a consumer's, a test's). Turns started by
# `launch` use a few long-lived threads instead, whose connections stay open between
# turns (a connection per turn cost ~15 ms of each reply's first token).
_turn_database: contextvars.ContextVar[concurrent.futures.ThreadPoolExecutor | None] = (
    contextvars.ContextVar("turn_database", default=None)
)


def _checked_connection() -> None:
    if connection.connection is not None and not connection.is_usable():
        connection.close()  # the server restarted or dropped it: reconnect on next use


_DATABASE_THREADS = 4
_turn_loop_database = [
    concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"turn-db-{n}")
    for n in range(_DATABASE_THREADS)
]
# Turns in flight per thread: a new turn takes the least busy one, so a turn waiting on a
# slow provider call (its prompt's retrieval, bounded by that call's timeout) holds up as
# few others as possible.
_database_thread_load = [0] * _DATABASE_THREADS


def close_database_connections() -> None:
    """Close the turn threads' database connections (tests, before the database goes)."""
    for executor in [*_turn_loop_database, _call_database]:
        executor.submit(connections.close_all).result(timeout=10)


def _db(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    executor = _turn_database.get()
    if executor is None:
        return sync_to_async(function)
    return on_database_thread(executor, function)


# Voice calls' database steps: one thread for all of them, as Channels' own database
# thread is, but its connection stays open (`database_sync_to_async` opens and closes one
# per step with CONN_MAX_AGE=0). One, not several: measured with 20 calls, more threads
# contending for the GIL delayed the event loop that paces every call's audio.
_call_database = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-db")


def database_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The long-lived database thread for callers that run many short database steps (a
    voice call): its connection stays open between steps."""
    return _call_database


def on_database_thread(
    executor: concurrent.futures.ThreadPoolExecutor, function: Callable[..., Any]
) -> Callable[..., Awaitable[Any]]:
    """`function` as a coroutine function running on `executor` (from `database_thread`),
    reconnecting first if the server dropped the thread's connection."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        _checked_connection()
        return function(*args, **kwargs)

    return sync_to_async(checked, thread_sensitive=False, executor=executor)


@contextlib.contextmanager
def turns_on(executor: concurrent.futures.ThreadPoolExecutor) -> Iterator[None]:
    """Within this block (this task's context), turns and drafts started here do their
    database work on `executor`."""
    token = _turn_database.set(executor)
    try:
        yield
    finally:
        _turn_database.reset(token)


@dataclass
class _Prepared:
    reply: Message
    model: ChatModel
    prompt: Prompt
    citations: list[dict[str, object]]


@dataclass
class _Progress:
    started: float = field(default_factory=time.perf_counter)
    parts: list[str] = field(default_factory=list)
    first_token_ms: int | None = None
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    error: str = ""
    out_of_credit: bool = False  # the provider's account has run out of credit
    interrupted: bool = False

    def add(self, text: str) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = self.elapsed_ms()
        self.parts.append(text)

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


def _prepare(reply_id: int, draft: DraftReply | None = None) -> _Prepared | None:
    # From the primary: the reply was committed a moment ago (a replica may lag).
    primary = Message.objects.using("default")
    reply = primary.select_related("session__scenario").filter(pk=reply_id).first()
    if reply is None or reply.status != MessageStatus.STREAMING:
        return None  # finished already (another delivery, or the reconciler)
    if draft is not None and draft.model is not None and draft.prompt is not None:
        return _Prepared(reply, draft.model, draft.prompt, draft.citations)  # built already
    session = reply.session
    learner_message = (
        session.messages.filter(role=MessageRole.LEARNER, pk__lt=reply.pk).order_by("-pk").first()
    )
    model = get_chat_model(session.scenario.llm_model, session.scenario.organization_id)
    built = build_prompt(session, learner_message, reply, model)
    return _Prepared(reply, model, built.prompt, built.citations)


def _prepare_draft(
    session_id: int, text: str
) -> tuple[ChatModel, Prompt, list[dict[str, object]], tuple[int, int]]:
    session = TrainingSession.objects.using("default").select_related("scenario").get(pk=session_id)
    learner_message = Message(session=session, role=MessageRole.LEARNER, text=text)
    reply = Message(session=session, role=MessageRole.PERSONA, status=MessageStatus.STREAMING)
    model = get_chat_model(session.scenario.llm_model, session.scenario.organization_id)
    built = build_prompt(session, learner_message, reply, model)
    return model, built.prompt, built.citations, _reserve_message_ids()


def _reserve_message_ids() -> tuple[int, int]:
    """Two message ids, in order, taken from the table's sequence without storing a row
    (the turn and its reply, if the turn is confirmed; a discarded draft leaves a gap)."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, 2)",
            [Message._meta.db_table],
        )
        first, second = sorted(row[0] for row in cursor.fetchall())
    return first, second


class DraftReply:
    """A reply generated before its turn is confirmed (voice: at a probable end of turn).

    Nothing is stored or published: the model's events wait in memory. `discard()` throws
    it away (the learner went on); otherwise the turn is stored and `stream_reply(reply_id,
    draft=...)` goes on from these events, so the preparation and the model's first token
    are not waited for again. The prompt is the one the stored turn would build: the same
    history and the same words."""

    def __init__(self, session_id: int, text: str) -> None:
        self.session_id = session_id
        self.text = text
        self.model: ChatModel | None = None
        self.prompt: Prompt | None = None
        self.citations: list[dict[str, object]] = []
        # The ids the turn and its reply will be stored under (reserved by `start`): voice
        # names the reply to the learner's page before the rows are written.
        self.ids: tuple[int, int] | None = None
        self.events: asyncio.Queue[TextDelta | Usage | BaseException | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.deltas: list[str] = []  # the text so far, for a look ahead (`text_so_far`)
        self.grew = asyncio.Event()
        self.finished = False

    async def start(self) -> None:
        """Prepare the prompt and start the model. Raises what preparation raises."""
        self.model, self.prompt, self.citations, self.ids = await _db(_prepare_draft)(
            self.session_id, self.text
        )
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        assert self.model is not None
        assert self.prompt is not None
        try:
            async for event in self.model.astream(self.prompt):
                await self.events.put(event)
                if isinstance(event, TextDelta):
                    self.deltas.append(event.text)
                    self.grew.set()
        except Exception as exc:  # handed to the turn, which saves it as it would its own
            await self.events.put(exc)
        finally:
            await self.events.put(None)
            self.finished = True
            self.grew.set()

    async def text_so_far(self, start: int = 0) -> AsyncIterator[str]:
        """The draft's text deltas as they come (from the `start`th), without taking them
        from the turn (voice speaks them before the turn is stored). Ends with the model."""
        index = start
        while True:
            while index < len(self.deltas):
                index += 1
                yield self.deltas[index - 1]
            if self.finished:
                return
            self.grew.clear()
            await self.grew.wait()

    async def stream(self) -> AsyncIterator[TextDelta | Usage]:
        while (event := await self.events.get()) is not None:
            if isinstance(event, BaseException):
                raise event
            yield event

    async def discard(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def _finish(reply: Message, model: ChatModel | None, progress: _Progress) -> Message | None:
    """Save the reply once (a reply the reconciler already finished stays as it is)."""
    text = "".join(progress.parts)
    ends_conversation = END_MARKER in text and not (progress.error or progress.interrupted)
    usage = progress.usage
    fields: dict[str, Any] = {
        "text": text.replace(END_MARKER, "").strip(),
        "citations": reply.citations,
        "model": model.model_id if model else "",
        "prompt_tokens": usage.prompt_tokens or None,
        "completion_tokens": usage.completion_tokens or None,
        "cost_usd": model.cost(usage) if model and usage.completion_tokens else None,
        "time_to_first_token_ms": progress.first_token_ms,
        "total_time_ms": progress.elapsed_ms(),
        "interrupted": progress.interrupted,
        "status": MessageStatus.INCOMPLETE if progress.error else MessageStatus.COMPLETE,
        "error": f"{progress.error} {RETRY}"[:300] if progress.error else "",
    }
    with transaction.atomic():
        # Still streaming, or taken for lost by the reconciler while this turn was alive
        # (Redis blinked): what the turn produced replaces the "cut off" note.
        unfinished = Q(status=MessageStatus.STREAMING) | Q(
            status=MessageStatus.INCOMPLETE, error=ABANDONED[:300]
        )
        if not Message.objects.filter(unfinished, pk=reply.pk).update(**fields):
            return None
        waited = progress.first_token_ms or progress.elapsed_ms()
        if waited > settings.REPLY_SLOW_START_SECONDS * 1000:
            # Time spent waiting for a slow AI service is given back to the learner.
            TrainingSession.objects.filter(pk=reply.session_id, status=SessionStatus.ACTIVE).update(
                expires_at=F("expires_at") + timedelta(milliseconds=waited)
            )
    if ends_conversation:
        from training.sessions import end_session

        end_session(actor=None, session_id=reply.session_id, reason="persona_ended")
    return Message.objects.using("default").select_related("session__scenario").get(pk=reply.pk)


async def _watch(publisher: streaming.ReplyPublisher, progress: _Progress) -> None:
    """Tell the learner when the reply is slow to start, and keep the stream alive."""
    told = False
    while True:
        await asyncio.sleep(0.5)
        if not told and progress.first_token_ms is None:
            if progress.elapsed_ms() >= settings.REPLY_SLOW_START_SECONDS * 1000:
                told = True
                await publisher.send(
                    "status",
                    text="The AI service is slow to answer right now; still waiting. "
                    "Your message is saved.",
                )
        if time.monotonic() - publisher.last_sent >= settings.REPLY_HEARTBEAT_SECONDS:
            await publisher.send(streaming.ALIVE)


async def stream_reply(reply_id: int, draft: DraftReply | None = None) -> AsyncIterator[str]:
    """The turn generator: yields the reply's text deltas; see the module docstring.
    With a `draft` (voice), the model stream and prompt the draft started are the reply's:
    the caller promises the draft was written for this turn's stored words."""
    progress = _Progress()
    publisher = streaming.ReplyPublisher(reply_id)
    watcher = asyncio.create_task(_watch(publisher, progress))
    prepared: _Prepared | None = None
    reply: Message | None = None
    try:
        prepared = await _db(_prepare)(reply_id, draft)
        if prepared is None:
            return
        reply = prepared.reply
        reply.citations = prepared.citations
        await publisher.send("start", citations=prepared.citations, model=prepared.model.model_id)
        events = draft.stream() if draft is not None else prepared.model.astream(prepared.prompt)
        async with asyncio.timeout(settings.REPLY_TIMEOUT_SECONDS):
            async for event in events:
                if isinstance(event, TextDelta):
                    progress.add(event.text)
                    await publisher.send("token", text=event.text)
                    yield event.text
                else:
                    progress.usage = event
    except LLMError as exc:
        progress.error = str(exc)
        progress.out_of_credit = is_out_of_credit(exc)
    except TimeoutError:
        progress.error = "The AI service took too long to finish the reply."
    except asyncio.CancelledError as exc:
        # (A cancel landing inside sync_to_async loses its message: the flag decides.)
        if turn_loop.shutting_down or (exc.args and exc.args[0] == SHUTDOWN):
            progress.error = "The server restarted while writing this reply."
        else:
            progress.interrupted = True
        raise
    except GeneratorExit:
        progress.interrupted = True
        raise
    except Exception:
        logger.exception("reply_failed", message_id=reply_id)
        progress.error = "Something went wrong while writing the reply."
    finally:
        watcher.cancel()
        if draft is not None:
            await draft.discard()
        if reply is None and (progress.error or progress.interrupted):
            # Stopped while preparing (prompt, retrieval, credentials): the reply still ends.
            reply = await _db(Message.objects.using("default").filter(pk=reply_id).first)()
        if reply is not None:
            await asyncio.shield(_conclude(reply, prepared, progress, publisher))


async def _conclude(
    reply: Message,
    prepared: _Prepared | None,
    progress: _Progress,
    publisher: streaming.ReplyPublisher,
) -> None:
    saved = await _db(_finish)(reply, prepared.model if prepared else None, progress)
    if saved is None:
        return
    html = await _db(message_html)(saved)
    ended = saved.session.status == SessionStatus.ENDED
    kind = "failed" if progress.error else "done"
    await publisher.send(kind, html=html, ended=ended, interrupted=progress.interrupted)
    if progress.out_of_credit:  # after the learner has their answer: it may send email
        try:
            await _db(billing.tell_admins_llm_out_of_credit)(saved.session.organization_id)
        except Exception:
            logger.exception("out_of_credit_notice_failed", message_id=saved.pk)
    logger.info(
        "reply_generated",
        message_id=saved.pk,
        ttft_ms=progress.first_token_ms,
        total_ms=progress.elapsed_ms(),
        error=bool(progress.error),
        interrupted=progress.interrupted,
        streamed=publisher.available,
    )


async def conclude_unread(reply_id: int) -> None:
    """End a stored reply that was stopped before anything read it (voice: the learner
    talked over it while its turn was being stored): interrupted, with nothing said."""
    reply = await _db(Message.objects.using("default").filter(pk=reply_id).first)()
    if reply is not None:
        progress = _Progress()
        progress.interrupted = True
        await _conclude(reply, None, progress, streaming.ReplyPublisher(reply_id))


async def run_to_end(reply_id: int) -> None:
    """Generate a reply with nobody iterating it (the text chat: readers follow Redis)."""
    async for _ in stream_reply(reply_id):
        pass


def record_spoken(reply_id: int, *, spoken_text: str | None, voice: dict[str, Any]) -> None:
    """Voice: store the reply's audio figures and, for a reply the learner talked over,
    keep only what they heard (`spoken_text`), marked interrupted, so the next prompt and
    the debrief see the turn as it happened. Call it after the turn has been saved."""
    fields: dict[str, Any] = {"voice": voice}
    if spoken_text is not None:
        fields.update(text=spoken_text.strip(), interrupted=True)
    Message.objects.filter(pk=reply_id).exclude(status=MessageStatus.STREAMING).update(**fields)


async def _run_on_turn_loop(reply_id: int) -> None:
    index = min(range(_DATABASE_THREADS), key=_database_thread_load.__getitem__)
    _database_thread_load[index] += 1  # only this loop's thread changes these counts
    try:
        with turns_on(_turn_loop_database[index]):
            await run_to_end(reply_id)
    finally:
        _database_thread_load[index] -= 1


def generate_reply(reply_id: int) -> None:
    """Generate a reply to the end from synchronous code (the `interactive` Celery task);
    its database work runs on the caller's thread and connection."""
    async_to_sync(run_to_end)(reply_id)


# --- the turn loop of this process ------------------------------------------------------


class _TurnLoop:
    """A daemon thread running an event loop that runs this process's turns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.shutting_down = False

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="turns", daemon=True)
                thread.start()
                if self._loop is None:
                    # Before the interpreter shuts thread pools down (its own atexit comes
                    # too late: the turns' final saves need the database threads).
                    try:
                        threading._register_atexit(self.shutdown)  # type: ignore[attr-defined]
                    except (AttributeError, RuntimeError):
                        atexit.register(self.shutdown)
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        # A fresh context: the caller's (a request's) holds asgiref's executor of a thread
        # that is gone once the request ends. Its log fields are carried over explicitly.
        log_fields = structlog.contextvars.get_contextvars()
        future = contextvars.Context().run(
            asyncio.run_coroutine_threadsafe,
            self._tracked(coroutine, log_fields),
            self._ensure(),
        )
        future.add_done_callback(_log_failure)
        return future

    async def _tracked(
        self, coroutine: Coroutine[Any, Any, None], log_fields: dict[str, Any]
    ) -> None:
        structlog.contextvars.bind_contextvars(**log_fields)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await coroutine
        finally:
            self._tasks.discard(task)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop running turns so each saves what it produced (as incomplete, retry)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        self.shutting_down = True

        async def cancel_all() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel(SHUTDOWN)
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("turns_not_saved_at_shutdown", running=len(self._tasks))


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("turn_crashed", exc_info=future.exception())


turn_loop = _TurnLoop()


def launch(reply_id: int) -> None:
    """Start generating a reply now: on this process's turn loop (REPLY_RUNNER=process,
    the default) or on the reserved `interactive` Celery queue (REPLY_RUNNER=celery)."""
    if settings.REPLY_RUNNER == "celery":
        from training.tasks import generate_reply_task

        generate_reply_task.delay(reply_id)
        return
    turn_loop.submit(_run_on_turn_loop(reply_id))


# --- every reply ends ---------------------------------------------------------------------


def _is_abandoned(reply: Message, now: float) -> bool:
    age = now - reply.created_at.timestamp()
    if age > settings.REPLY_TIMEOUT_SECONDS + settings.REPLY_STALL_SECONDS:
        return True  # a live turn has timed itself out long before this
    if age < settings.REPLY_STALL_SECONDS:
        return False
    try:
        quiet = streaming.last_event_age(reply.pk)
    except Exception:  # Redis unreachable: only the age bound above can decide
        return False
    if quiet is None:
        # A wiped Redis has no stream; with REPLY_RUNNER=celery neither has a reply still
        # waiting in the interactive queue, which only the age bound above may judge.
        return settings.REPLY_RUNNER != "celery"
    return quiet > settings.REPLY_STALL_SECONDS  # a live turn writes every few seconds


def finish_abandoned_replies(session_id: int | None = None) -> int:
    """Finish replies left "streaming" by a lost task, a crashed process or a wiped Redis:
    incomplete, with what was saved and a retry message. Returns how many."""
    candidates = Message.objects.using("default").filter(status=MessageStatus.STREAMING)
    if session_id is not None:
        candidates = candidates.filter(session_id=session_id)
    now = time.time()
    count = 0
    for reply in candidates.select_related("session__scenario"):
        if not _is_abandoned(reply, now):
            continue
        finished = Message.objects.filter(pk=reply.pk, status=MessageStatus.STREAMING).update(
            status=MessageStatus.INCOMPLETE, error=ABANDONED[:300]
        )
        if not finished:
            continue
        count += 1
        transaction.on_commit(functools.partial(_announce_abandoned, reply.pk))
        logger.warning("abandoned_reply_finished", message_id=reply.pk, session_id=reply.session_id)
    return count


def _announce_abandoned(message_id: int) -> None:
    """Tell readers (after the commit: a rolled-back finish must not be announced)."""
    reply = Message.objects.using("default").select_related("session__scenario").get(pk=message_id)
    try:
        streaming.publish(reply.pk, "failed", html=message_html(reply), ended=False)
    except Exception:  # readers fall back on the database (see streaming.follow)
        logger.warning("abandoned_reply_not_announced", message_id=reply.pk)
