"""Our own added time from a reply clause's audio to the `agent.speak` that carries it to
the hosted face (issue 17: target p95 < 20 ms).

    .venv/bin/python bench/avatar_latency.py [--calls 20] [--replies 6] [--before COMMIT]

Every call is the real LiveAvatar client (`voice/avatar/liveavatar.py`) on its own local
server speaking LiveAvatar's command socket (`voice/tests/avatar_server.py`, which notes
when each packet arrives); all calls share one event loop, as they share a Daphne
process. A reply is four clauses of Piper's audio (rendered once before the run), each
streamed as a synthesizer gives it: 100 ms pieces, five times faster than real time. The
figure, per clause (and for the first clause of each reply, the one the face waits
for): when the packet holding the clause's first byte arrived, minus when
the synthesizer gave that byte.

Two feeds, in the same run:

- `now`: the pipeline as committed: each synthesized piece goes to the face at once
  (`Conversation._avatar_speaks`), and the client sends audio whenever its socket is free.
- `before`: the code at `--before` (default: the commit before this feed landed): the
  face got the reply's audio from the socket sender's paced 20 ms frames (in real time,
  VOICE_PLAYBACK_LEAD_MS ahead of the player), and the client gathered it into a half
  second first packet, then one-second packets, holding what was short for 0.25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import time

import bench_setup
from bench_setup import pct

PIECE_BYTES = 4800  # 100 ms of 24 kHz 16-bit mono
PIECE_EVERY_S = 0.02  # five times faster than real time
FRAME_BYTES = 960  # the socket sender's 20 ms frames
CLAUSES = [
    "Fair enough, but your price is still thirty percent higher",
    "than what we pay today,",
    "and honestly I do not see what we would get for the extra money.",
    "Tell me why we should even consider it.",
]


def _old_client(commit: str):
    """voice/avatar/liveavatar.py as it was at `commit`, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{commit}:voice/avatar/liveavatar.py"],
        cwd=bench_setup.BASE_DIR, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = bench_setup.BASE_DIR / "var" / "bench" / "liveavatar_before.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("liveavatar_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["liveavatar_before"] = module
    spec.loader.exec_module(module)
    return module


async def _synthesized(clause_pcm: bytes):
    """A clause's audio as a streaming synthesizer hands it over."""
    for start in range(0, len(clause_pcm), PIECE_BYTES):
        await asyncio.sleep(PIECE_EVERY_S)
        yield clause_pcm[start : start + PIECE_BYTES]


async def _reply_audio(clauses: list[bytes], starts: list[tuple[int, float]]):
    """The reply's pieces, clause after clause; notes where and when each clause began."""
    offset = 0
    for clause in clauses:
        starts.append((offset, -1.0))
        async for piece in _synthesized(clause):
            if starts[-1][1] < 0:
                starts[-1] = (offset, time.monotonic())
            yield piece
            offset += len(piece)


async def _reply_now(avatar, clauses: list[bytes], starts: list[tuple[int, float]]) -> None:
    async for piece in _reply_audio(clauses, starts):
        await avatar.speak(piece)  # what Conversation._avatar_speaks does
    await avatar.speak_end()


async def _reply_before(avatar, clauses: list[bytes], starts, lead_s: float) -> None:
    """The old path: synthesis fills a buffer; the socket sender takes 20 ms frames from
    it, paced to the player, and hands each to the face."""
    buffer = bytearray()
    done = asyncio.Event()
    more = asyncio.Event()

    async def synthesize() -> None:
        async for piece in _reply_audio(clauses, starts):
            buffer.extend(piece)
            more.set()
        done.set()
        more.set()

    async def send() -> None:
        play_end = 0.0
        while True:
            if len(buffer) >= FRAME_BYTES or (done.is_set() and buffer):
                frame = bytes(buffer[:FRAME_BYTES])
                del buffer[:FRAME_BYTES]
                now = time.monotonic()
                if play_end - now > lead_s:
                    await asyncio.sleep(play_end - now - lead_s)
                    now = time.monotonic()
                await avatar.speak(frame)
                play_end = max(play_end, now) + len(frame) / 48_000
            elif done.is_set():
                break
            else:
                more.clear()
                await more.wait()
        await avatar.speak_end()

    await asyncio.gather(synthesize(), send())


def _delays(stub, starts: list[tuple[int, float]]) -> list[float]:
    """Per clause: arrival of the packet holding its first byte minus when it was made."""
    ends, total = [], 0
    for packet in stub.packets:
        total += len(packet)
        ends.append(total)
    delays = []
    for offset, made in starts:
        index = next(i for i, end in enumerate(ends) if end > offset)
        delays.append((stub.packet_times[index] - made) * 1000)
    return delays


async def _call(client_module, feed: str, clauses, replies: int, lead_s: float) -> list[float]:
    from voice.tests.avatar_server import AVATAR_ID, LIVEAVATAR_KEY, LiveAvatarStub
    from voice.tests.speech_servers import running

    delays: list[tuple[int, float]] = []  # (clause index in its reply, ms)
    async with running(LiveAvatarStub()) as stub:
        provider = client_module.LiveAvatar(
            api_key=LIVEAVATAR_KEY, base_url=stub.base_url, avatar_id=AVATAR_ID
        )
        avatar = await provider.open(1)
        for _ in range(replies):
            stub.packets.clear()
            stub.packet_times.clear()
            starts: list[tuple[int, float]] = []
            if feed == "now":
                await _reply_now(avatar, clauses, starts)
            else:
                await _reply_before(avatar, clauses, starts, lead_s)
            total = sum(len(c) for c in clauses)
            deadline = time.monotonic() + 15
            while sum(len(p) for p in stub.packets) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            delays += list(enumerate(_delays(stub, starts)))
            await asyncio.sleep(0.3)  # the learner's turn
        await avatar.close()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--replies", type=int, default=6)
    parser.add_argument("--before", default="0a4c6a9")
    args = parser.parse_args()
    os.environ["PROVIDER_ENDPOINTS_ALLOW_PRIVATE"] = "true"
    import django

    django.setup()
    from django.conf import settings

    from voice.audio import resample  # noqa: F401  (the project's audio helpers load)
    from voice.avatar import liveavatar
    from voice.tts.local import PiperSpeech

    settings.PROVIDER_ENDPOINTS_ALLOW_PRIVATE = True
    clauses = [PiperSpeech.shared().render(text) for text in CLAUSES]
    reply_s = sum(len(c) for c in clauses) / 48_000
    lead_s = settings.VOICE_PLAYBACK_LEAD_MS / 1000
    before = _old_client(args.before)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=bench_setup.BASE_DIR,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(
        f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"code {head}, before = {args.before}; {args.calls} calls at once, {args.replies} "
        f"replies each of {len(CLAUSES)} clauses ({reply_s:.1f} s of audio)"
    )
    print("| feed | clauses | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for feed, module in (("before", before), ("now", liveavatar)):

        async def everyone(feed=feed, module=module):
            results = await asyncio.gather(
                *(_call(module, feed, clauses, args.replies, lead_s) for _ in range(args.calls))
            )
            return [d for r in results for d in r]

        measured = asyncio.run(everyone())
        delays = [ms for _, ms in measured]
        firsts = [ms for index, ms in measured if index == 0]
        for label, values in (
            (f"{feed}, every clause", delays),
            (f"{feed}, first clause of a reply", firsts),
        ):
            print(
                f"| {label} | {len(values)} | {pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} | "
                f"{max(values):.1f} |"
            )
        if feed == "now":
            p95 = pct(delays, 0.95)
            print(f"target p95 < 20 ms: {p95:.1f} ms -> {'met' if p95 < 20 else 'MISSED'}")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
