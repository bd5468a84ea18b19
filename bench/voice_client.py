"""What the voice benchmarks share: the learners and their sessions, the Daphne process
(bench/voice_daphne.py) and a voice client that talks to it over a real WebSocket.

The client (`Call`) is what a browser does: a microphone task sends 20 ms frames of
16 kHz PCM on a fixed real-time clock (speech when the learner talks, silence otherwise),
and every reply's audio goes into a simulated player that starts at the first frame and
plays in real time; `playback` is reported every 250 ms while it plays, as PROTOCOL.md
asks. Per reply it records gaps between audio frames and the player running dry.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bench_setup import BASE_DIR, free_port

FRAME_BYTES = 640  # 20 ms at 16 kHz
FRAME_S = 0.02
OUT_BYTES_PER_MS = 48  # 24 kHz 16-bit mono
GAP_S = 0.120

SENTENCES = [  # each is one VAD segment in the offline voice (checked by `speech()`)
    "Hello Dana, I wanted to ask about the price of your support plan.",
    "What would it take for you to renew with us this year?",
    "We can offer a discount if you sign for two years instead of one.",
    "Tell me more about the incidents your team had last quarter.",
    "Our customers usually save about twenty percent after the first year.",
]

OBJECTIONS = [
    "Your price is thirty percent higher than what we pay today, and honestly I do not see "
    "what we would get for the extra money.",
    "Your support was slow the last time we had an outage, and my team noticed.",
    "We signed with you three years ago, but the features we were promised never arrived.",
    "Our finance team wants a shorter contract, because nobody knows next year's budget.",
    "A competitor offered us a free migration, and they answer the phone at night.",
]


def code_version() -> str:
    """The commit, and the pipeline's files changed since it (others edit as we run)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "voice", "training"],
        cwd=BASE_DIR, capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    changed = [line[3:] for line in dirty if line.strip() and "tests/" not in line]
    return head + (f" (+ uncommitted: {', '.join(changed)})" if changed else "")


def setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def learners(slug: str, count: int, *, objections: int = 40) -> tuple[int, list[Any]]:
    """The benchmark organization's voice scenario and `count` learners (one call each:
    VOICE_MAX_CALLS_PER_USER is 1). Calls left open by an earlier run are closed."""
    from django.utils import timezone

    from accounts.models import Organization, Role, User
    from training.models import Scenario
    from voice.models import VoiceCall

    organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug})
    lines = "\n".join(
        f"{OBJECTIONS[n % len(OBJECTIONS)]} That is point {n + 1} for me."
        for n in range(objections)
    )
    scenario, _ = Scenario.objects.update_or_create(
        organization=organization, title="Bench voice renewal", is_current=True,
        defaults={
            "published": True, "persona_name": "Dana", "persona_role": "CTO",
            "persona_objections": lines, "persona_opening_line": "Convince me.",
            "time_limit_minutes": 240,
        },
    )  # fmt: skip
    users = [
        User.objects.get_or_create(
            email=f"voice{n}@{slug}.local",
            defaults={"organization": organization, "role": Role.LEARNER},
        )[0]
        for n in range(count)
    ]
    VoiceCall.objects.filter(learner__in=users, ended_at__isnull=True).update(
        ended_at=timezone.now(), ended_reason="benchmark restart"
    )
    return scenario.pk, users


def open_session(user: Any, scenario_id: int) -> tuple[int, str]:
    """A new voice session of `user` and a ticket for its socket (blocking)."""
    from training import sessions
    from voice.tickets import issue_ticket

    session = sessions.start_session(actor=user, scenario_id=scenario_id, channel="voice")
    return session.pk, issue_ticket(actor=user, session_id=session.pk).value


def end_sessions(users: list[Any]) -> None:
    from training.models import SessionStatus, TrainingSession

    TrainingSession.objects.filter(learner__in=users, status=SessionStatus.ACTIVE).update(
        status=SessionStatus.ENDED, ended_reason="benchmark_done"
    )


@dataclass
class Utterance:
    text: str
    frames: list[bytes]
    end_frame: int  # the frame in which the VAD puts the end of speech
    end_offset_ms: float  # where in that frame


def speech(texts: list[str] = SENTENCES) -> list[Utterance]:
    """The learner's sentences spoken by Piper (16 kHz), cut into 20 ms frames, with the
    end of speech where the server's VAD (same model, same settings) will put it, so the
    client's voice-to-voice starts where the server's does."""
    from django.conf import settings

    from voice.audio import INPUT_SAMPLE_RATE, resample
    from voice.tests.speech import silence
    from voice.tts import OUTPUT_SAMPLE_RATE
    from voice.tts.local import PiperSpeech
    from voice.vad import SpeechDetector

    utterances = []
    for text in texts:
        for _ in range(10):  # Piper varies its pauses: keep a rendering with none in it
            pcm = resample(PiperSpeech.shared().render(text), OUTPUT_SAMPLE_RATE, INPUT_SAMPLE_RATE)
            pcm += b"\0" * (-len(pcm) % FRAME_BYTES)
            detector = SpeechDetector(
                threshold=settings.VOICE_VAD_THRESHOLD,
                start_ms=settings.VOICE_VAD_START_MS,
                stop_ms=settings.VOICE_VAD_STOP_MS,
            )
            lead = 480  # ms of silence before: a multiple of the frame and the VAD window
            stops = [
                event.at_ms - lead
                for event in detector.feed(silence(lead) + pcm + silence(1500))
                if event.kind == "speech_stopped"
            ]
            if len(stops) == 1:
                break
        else:
            raise SystemExit(f"{text!r} keeps coming out as more than one VAD segment")
        frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        end = min(stops[0], len(frames) * 20 - 1)
        utterances.append(Utterance(text, frames, end // 20, end % 20))
    return utterances


class Daphne:
    """The launcher in its own process, as `make run` runs Daphne (one process)."""

    def __init__(self, providers: str, **env: str) -> None:
        import psutil

        self.port = free_port()
        environment = dict(
            os.environ, BENCH_VOICE_PROVIDERS=providers, ALLOWED_HOSTS="127.0.0.1,localhost",
            # With fake providers the offline speech models would load unused (VOICE_PRELOAD).
            VOICE_PRELOAD="true" if providers == "real" else "false",
        )  # fmt: skip
        environment.update(env)
        self.log_path = BASE_DIR / "var" / "bench" / "voice_daphne.log"
        self.lag_path = BASE_DIR / "var" / "bench" / "voice_daphne_lag.jsonl"
        self.lag_path.write_text("")
        environment["BENCH_LAG_FILE"] = str(self.lag_path)
        self.log = open(self.log_path, "ab")
        self.log.write(f"\n--- {time.ctime()} providers={providers} {env}\n".encode())
        self.log.flush()
        self.process = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "bench" / "voice_daphne.py"), "-b", "127.0.0.1",
             "-p", str(self.port)],
            cwd=BASE_DIR / "bench", env=environment, stdout=self.log, stderr=self.log,
        )  # fmt: skip
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"Daphne did not start; see {self.log_path}") from None
                time.sleep(0.2)
        self.url = f"ws://127.0.0.1:{self.port}"

    def drafts(self) -> dict[str, int]:
        """Replies drafted so far, by outcome (`used`, `discarded`), from Daphne's /metrics."""
        import re
        import urllib.request

        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        pattern = r'^voice_draft_replies_total\{outcome="(\w+)"\} ([0-9.e+]+)$'
        return {m[1]: int(float(m[2])) for m in re.finditer(pattern, text, re.MULTILINE)}

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 1e6

    def loop_lag(self, since: float, until: float) -> dict[str, float]:
        """Daphne's event loop wake-up lateness (ms) between two wall times (time.time())."""
        rows = [json.loads(line) for line in self.lag_path.read_text().splitlines() if line]
        rows = [row for row in rows if since <= row[0] <= until + 5]
        if not rows:
            return {}
        return {
            "p50": statistics.median(row[2] for row in rows),
            "p99": max(row[3] for row in rows),  # the worst 5-second window's p99
            "max": max(row[4] for row in rows),
            "over_50": sum(row[5] for row in rows),
            "over_100": sum(row[6] for row in rows),
            "wakeups": sum(row[1] for row in rows),
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@dataclass
class ReplyStats:
    reply_id: int
    frames: int = 0
    received_ms: float = 0.0
    first_at: float | None = None
    last_at: float | None = None
    play_end: float = 0.0
    gaps_ms: list[float] = field(default_factory=list)
    underruns: int = 0
    dry_ms: float = 0.0

    def frame(self, now: float, size: int) -> None:
        duration = size / OUT_BYTES_PER_MS / 1000
        if self.first_at is None:
            self.first_at, self.play_end = now, now + duration
        else:
            if now - self.last_at > GAP_S:
                self.gaps_ms.append((now - self.last_at) * 1000)
            if now > self.play_end:  # the player had nothing left to play
                self.underruns += 1
                self.dry_ms += (now - self.play_end) * 1000
            self.play_end = max(self.play_end, now) + duration
        self.last_at = now
        self.frames += 1
        self.received_ms += duration * 1000

    def played_ms(self, now: float) -> float:
        return max(0.0, self.received_ms - max(0.0, self.play_end - now) * 1000)


class LagMonitor:
    """How late this (client) process's event loop wakes: its own delays would show up
    as gaps that the server did not cause."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            self.lags_ms.append((time.monotonic() - started - 0.01) * 1000)

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


class Call:
    """One learner talking in a loop: a sentence, then silence while the reply plays and
    a short pause, again; a new session (and socket) when the persona ends one."""

    def __init__(
        self, name: str, url: str, user: Any, scenario_id: int, utterances: list[Utterance],
        *, seed: int, pause: tuple[float, float] = (0.4, 1.0),
    ) -> None:  # fmt: skip
        self.name, self.url, self.user, self.scenario_id = name, url, user, scenario_id
        self.utterances = utterances
        self.rng = random.Random(seed)
        self.pause = pause
        self.metrics: list[dict[str, Any]] = []  # turn.metrics timings_ms
        self.replies: list[ReplyStats] = []
        self.client_v2v_ms: list[float] = []  # end of speech (VAD) sent -> first reply frame
        self.client_v2v_by_reply: dict[int, float] = {}
        self.pings_ms: list[float] = []  # ping -> pong, queued behind the call's audio
        self.started = time.monotonic()
        self.timeline: list[tuple[float, float, float]] = []  # (t, client v2v, server v2v)
        self.errors: dict[str, int] = {}
        self.closes: list[int | None] = []
        self.turns_without_reply = 0
        self.sessions = 0
        self.turns = 0
        self.late_frames = 0  # microphone frames sent > 40 ms after their slot

    # --- one session ------------------------------------------------------------------

    async def run(self, until: float, *, turns: int | None = None) -> None:
        while time.monotonic() < until and (turns is None or self.turns < turns):
            session_id, ticket = await asyncio.to_thread(open_session, self.user, self.scenario_id)
            self.sessions += 1
            await self._session(session_id, ticket, until, turns)

    async def _session(self, session_id: int, ticket: str, until: float, turns: int | None) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url = f"{self.url}/ws/sessions/{session_id}/voice/?ticket={ticket}"
        self.outgoing: deque[tuple[bytes, float | None]] = deque()
        self.ready = asyncio.Event()
        self.reply_done = asyncio.Event()
        self.playing: ReplyStats | None = None
        self.speech_end_sent: float | None = None
        self.ended = False
        async with connect(url, compression=None, max_size=2**20, open_timeout=30) as ws:
            reader = asyncio.ensure_future(self._read(ws))
            microphone: asyncio.Task[None] | None = None
            try:
                await asyncio.wait_for(self.ready.wait(), 30)
                await ws.send(json.dumps({"type": "start"}))
                microphone = asyncio.ensure_future(self._microphone(ws))
                await asyncio.sleep(self.rng.uniform(*self.pause))
                while time.monotonic() < until and (turns is None or self.turns < turns):
                    utterance = self.rng.choice(self.utterances)
                    self.reply_done.clear()
                    self.speech_end_sent = None
                    for index, frame in enumerate(utterance.frames):
                        end = utterance.end_offset_ms if index == utterance.end_frame else None
                        self.outgoing.append((frame, end))
                    try:
                        await asyncio.wait_for(self.reply_done.wait(), 60)
                    except TimeoutError:
                        self.turns_without_reply += 1
                    if reader.done():
                        break  # the server closed (the persona ended the session)
                    self.turns += 1
                    await asyncio.sleep(self.rng.uniform(*self.pause))
                    if self.ended or reader.done():
                        break
                if not reader.done():
                    await ws.send(json.dumps({"type": "stop"}))
                    await asyncio.wait_for(reader, 10)
            except (ConnectionClosed, TimeoutError):
                pass
            finally:
                if microphone is not None:
                    microphone.cancel()
                reader.cancel()
                self._finish_reply()
                self.closes.append(ws.close_code)

    async def _microphone(self, ws: Any) -> None:
        silence = b"\0" * FRAME_BYTES
        started = time.monotonic()
        slot = 0
        next_report = started + 0.25
        next_ping = started + 1.0
        while True:
            slot += 1
            due = started + slot * FRAME_S
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.04:
                self.late_frames += 1
            frame, end = self.outgoing.popleft() if self.outgoing else (silence, None)
            await ws.send(frame)
            now = time.monotonic()
            if end is not None:  # the frame's audio ends now: speech ended `end` ms into it
                self.speech_end_sent = now - (FRAME_S - end / 1000)
            if now >= next_ping:  # answered after every frame sent before it
                next_ping = now + 1.0
                await ws.send(json.dumps({"type": "ping", "t": now}))
            if now >= next_report:
                next_report = now + 0.25
                playing = self.playing
                if playing is not None and playing.first_at is not None:
                    await ws.send(json.dumps({
                        "type": "playback", "reply_id": playing.reply_id,
                        "played_ms": round(playing.played_ms(now)),
                    }))  # fmt: skip

    async def _read(self, ws: Any) -> None:
        async for message in ws:
            now = time.monotonic()
            if isinstance(message, bytes):
                playing = self.playing
                if playing is not None:
                    if playing.first_at is None and self.speech_end_sent is not None:
                        self.client_v2v_ms.append((now - self.speech_end_sent) * 1000)
                        self.client_v2v_by_reply[playing.reply_id] = self.client_v2v_ms[-1]
                        self.speech_end_sent = None
                    playing.frame(now, len(message))
                continue
            event = json.loads(message)
            kind = event["type"]
            if kind == "session.ready":
                self.ready.set()
            elif kind == "reply.audio_started":
                self._finish_reply()
                self.playing = ReplyStats(event["reply_id"])
            elif kind in ("reply.audio_done", "reply.interrupted"):
                self._finish_reply()
            elif kind == "turn.metrics":
                self.metrics.append(event["timings_ms"])
                client = self.client_v2v_by_reply.get(event["reply_id"])
                if client is not None and "voice_to_voice" in event["timings_ms"]:
                    server = event["timings_ms"]["voice_to_voice"]
                    self.timeline.append((now - self.started, client, server))
            elif kind == "pong" and isinstance(event.get("t"), float):
                self.pings_ms.append((now - event["t"]) * 1000)
            elif kind == "reply.done":
                self.ended = self.ended or bool(event.get("session_ended"))
                self.reply_done.set()
            elif kind == "error":
                self.errors[event["code"]] = self.errors.get(event["code"], 0) + 1

    def _finish_reply(self) -> None:
        if self.playing is not None:
            self.replies.append(self.playing)
            self.playing = None


# --- figures ------------------------------------------------------------------------------

STAGES = (  # voice/pipeline.py's turn stages, in order (since commit b97e699)
    "end_of_speech_to_final_transcript",
    "final_transcript_to_decision",
    "decision_to_first_token",
    "first_token_to_first_audio",
    "first_audio_to_first_frame",
    "voice_to_voice",
)
AFTER_DECISION = STAGES[2:5]
STEPS = (  # bench/voice_fakes.py's instruments, in order
    "final_to_draft_prompt_start", "draft_prompt", "decided_to_turn_stored_start",
    "turn_stored", "stored_to_prepare_start", "prepare", "prepare_to_start_published",
    "start_published_to_first_token",
)  # fmt: skip


def waited_ms(timings: dict[str, Any], settings: Any) -> float:
    """What the decision is meant to take: the silence that confirms a turn the model
    judged complete (VOICE_CONFIRM_SILENCE_MS, from the end of speech) or the model's own
    inference after the VAD's stop window, whichever ends later; the silence fallback
    when the model said "not finished"."""
    if timings.get("bench_end_of_turn_probability", 1.0) < 0.5:
        return settings.VOICE_SILENCE_FALLBACK_MS
    model = timings.get("bench_end_of_turn_model_ms", 0.0)
    return max(settings.VOICE_CONFIRM_SILENCE_MS, settings.VOICE_VAD_STOP_MS + model)


def decision_excess_ms(timings: dict[str, Any], settings: Any) -> float | None:
    if not all(stage in timings for stage in STAGES[:2]):
        return None
    return timings[STAGES[0]] + timings[STAGES[1]] - waited_ms(timings, settings)


def after_decision_ms(timings: dict[str, Any]) -> float | None:
    if not all(stage in timings for stage in AFTER_DECISION):
        return None
    return sum(timings[stage] for stage in AFTER_DECISION)


def overhead_ms(timings: dict[str, Any], settings: Any) -> float | None:
    """The server's own time in a turn with instant providers (bench/RESULTS-voice.md):
    the decision stage beyond what it is meant to take, plus every stage after it."""
    excess, after = decision_excess_ms(timings, settings), after_decision_ms(timings)
    return None if excess is None or after is None else excess + after
