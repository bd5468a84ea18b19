"""Many voice calls at once through one Daphne process, with instant speech providers.

    .venv/bin/python bench/voice_sessions.py [--sessions 20] [--minutes 3]
    .venv/bin/python bench/voice_sessions.py --soak-minutes 30 --sessions 5

Uses the benchmark servers under var/bench (PostgreSQL, Redis: the real channel layer)
and starts Daphne from bench/voice_daphne.py with the instant fake providers of
bench/voice_fakes.py: a transcript the moment a segment ends, 600 ms of tone per clause
at once. Everything else is real: the consumer, Silero VAD on every frame, the smart-turn
end-of-turn model, the turn stored and answered by the offline stand-in (no token delay),
clause splitting, pacing. Each call is a `websockets` client (bench/voice_client.py)
sending 20 ms frames in real time and talking in a loop: a Piper sentence, then silence
while the reply plays, a pause, again (a new session when the persona ends one).

Prints, for the calls together: reply audio on time (inter-frame gaps > 120 ms, the
client's player running dry), the server's overhead per turn from `turn.metrics` (what
it means: bench/RESULTS-voice.md), Daphne's CPU and RSS per session, and with
`--soak-minutes` RSS every 30 s to show memory stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

from bench_setup import BASE_DIR, pct

os.environ["LLM_PROVIDER"] = "offline"
os.environ["LLM_STAND_IN_TOKEN_DELAY_MS"] = "0"
os.environ["MESSAGE_RATE_PER_MINUTE"] = "100000"


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {statistics.median(values):.1f}, p95 {pct(values, 0.95):.1f}, max {max(values):.1f}"
    )


async def drive(daphne, calls, seconds: float, sample_every: float, samples: list) -> float:
    """Run the calls for `seconds`; sample Daphne's RSS and CPU meanwhile. Returns the
    measuring window's CPU seconds."""
    import psutil
    from voice_client import LagMonitor

    lag = LagMonitor()
    lag.start()
    me = psutil.Process()
    client_cpu = sum(me.cpu_times()[:2])
    started = time.monotonic()
    until = started + seconds
    cpu_start = daphne.cpu_seconds()
    tasks = []
    for call in calls:
        await asyncio.sleep(0.15)  # staggered, as learners would be
        tasks.append(asyncio.ensure_future(call.run(until)))

    async def sampler() -> None:
        while True:
            samples.append((time.monotonic() - started, daphne.rss_mb(), daphne.cpu_seconds()))
            await asyncio.sleep(sample_every)

    sampling = asyncio.ensure_future(sampler())
    results = await asyncio.gather(*tasks, return_exceptions=True)
    sampling.cancel()
    samples.append((time.monotonic() - started, daphne.rss_mb(), daphne.cpu_seconds()))
    lag.stop()
    for call, result in zip(calls, results, strict=True):
        if isinstance(result, BaseException):
            print(f"  {call.name} failed: {result!r}", flush=True)
    drive.lag = lag.lags_ms  # type: ignore[attr-defined]
    drive.client_cpu = sum(me.cpu_times()[:2]) - client_cpu  # type: ignore[attr-defined]
    return daphne.cpu_seconds() - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--tone-ms-per-clause", type=int, default=600)
    parser.add_argument("--profile", help="cProfile Daphne's event loop into this file")
    parser.add_argument(
        "--skip-frame-cleanup", action="store_true",
        help="diagnostic: audio frames skip Channels' per-message close_old_connections hop",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ["BENCH_TONE_MS_PER_CLAUSE"] = str(args.tone_ms_per_clause)
    import voice_client

    voice_client.setup()
    from django.conf import settings

    soak = args.soak_minutes > 0
    minutes = args.soak_minutes if soak else args.minutes
    scenario_id, users = voice_client.learners("bench-voice", args.sessions + 1)
    utterances = voice_client.speech()
    load_start = os.getloadavg()
    print(
        f"cores {os.cpu_count()}, load average {load_start[0]:.2f} {load_start[1]:.2f} "
        f"{load_start[2]:.2f}; {args.sessions} calls for {minutes:g} min "
        f"({'soak' if soak else 'load'}), {args.tone_ms_per_clause} ms of tone per clause; "
        f"code {voice_client.code_version()}; VAD stop {settings.VOICE_VAD_STOP_MS} ms, "
        f"confirm silence {settings.VOICE_CONFIRM_SILENCE_MS} ms, fallback "
        f"{settings.VOICE_SILENCE_FALLBACK_MS} ms",
        flush=True,
    )
    extra = {"BENCH_PROFILE": os.path.abspath(args.profile)} if args.profile else {}
    if args.skip_frame_cleanup:
        extra["BENCH_SKIP_FRAME_CLEANUP"] = "1"
        print("  DIAGNOSTIC: audio frames skip close_old_connections (not the pipeline as is)")
    daphne = voice_client.Daphne("instant", LLM_STAND_IN_TOKEN_DELAY_MS="0", **extra)
    try:
        # Warm-up: one call of three turns loads the VAD and end-of-turn models.
        warm = voice_client.Call("warm-up", daphne.url, users[-1], scenario_id, utterances, seed=0)
        asyncio.run(warm.run(time.monotonic() + 60, turns=3))
        time.sleep(2)
        idle_rss, idle_cpu = daphne.rss_mb(), daphne.cpu_seconds()
        time.sleep(5)
        idle_cpu_rate = (daphne.cpu_seconds() - idle_cpu) / 5
        print(f"  after warm-up ({len(warm.metrics)} turns): Daphne RSS {idle_rss:.1f} MB, "
              f"idle CPU {idle_cpu_rate * 100:.1f} % of a core", flush=True)  # fmt: skip

        calls = [
            voice_client.Call(f"call-{n}", daphne.url, users[n], scenario_id, utterances,
                              seed=n + 1)
            for n in range(args.sessions)
        ]  # fmt: skip
        samples: list[tuple[float, float, float]] = []
        wall_started, wall_clock = time.monotonic(), time.time()
        cpu = asyncio.run(drive(daphne, calls, minutes * 60, 30.0 if soak else 10.0, samples))
        wall = time.monotonic() - wall_started
        lags = drive.lag  # type: ignore[attr-defined]
        client_cpu = drive.client_cpu  # type: ignore[attr-defined]
        server_lag = daphne.loop_lag(wall_clock, time.time())
    finally:
        daphne.stop()
        voice_client.end_sessions(users)
    load_end = os.getloadavg()

    metrics = [m for call in calls for m in call.metrics]
    raw = BASE_DIR / "var" / "bench" / f"voice_sessions_{'soak' if soak else 'load'}.json"
    raw.write_text(json.dumps({
        "metrics": metrics, "samples": samples, "server_lag": server_lag,
        "replies": [vars(r) for call in calls for r in call.replies],
        "client_v2v_ms": [v for call in calls for v in call.client_v2v_ms],
        "timeline": [t for call in calls for t in call.timeline],
        "pings_ms": [p for call in calls for p in call.pings_ms],
    }))  # fmt: skip
    odd = [m for m in metrics if any(stage not in m for stage in voice_client.STAGES)]
    if odd:
        print(f"  {len(odd)} turns without every stage, e.g. {odd[:2]}")
    replies = [r for call in calls for r in call.replies if r.frames]
    overheads = [o for m in metrics if (o := voice_client.overhead_ms(m, settings)) is not None]
    after_decision = [o for m in metrics if (o := voice_client.after_decision_ms(m)) is not None]
    decision_excess = [
        o for m in metrics if (o := voice_client.decision_excess_ms(m, settings)) is not None
    ]
    fallbacks = sum(1 for m in metrics if m.get("bench_end_of_turn_probability", 1) < 0.5)
    gaps = [g for r in replies for g in r.gaps_ms]
    replies_with_gaps = sum(1 for r in replies if r.gaps_ms)
    underruns = sum(r.underruns for r in replies)
    replies_dry = sum(1 for r in replies if r.underruns)
    turns = sum(call.turns for call in calls)
    errors: dict[str, int] = {}
    for call in calls:
        for code, count in call.errors.items():
            errors[code] = errors.get(code, 0) + count
    closes: dict[str, int] = {}
    for call in calls:
        for code in call.closes:
            closes[str(code)] = closes.get(str(code), 0) + 1

    print(f"\n{args.sessions} calls, {wall:.0f} s: {turns} turns answered "
          f"({sum(c.turns_without_reply for c in calls)} without a reply within 60 s), "
          f"{len(replies)} replies with audio, {sum(c.sessions for c in calls)} sessions; "
          f"load average {load_start[0]:.2f} -> {load_end[0]:.2f}")  # fmt: skip
    normal = errors.pop("closed_1000", 0)  # the event that precedes a normal close
    print(f"  errors from the server: {errors or 'none'} (besides {normal} closed_1000 at "
          f"normal ends); sockets closed with {closes}")  # fmt: skip
    print(f"  the client process (all {args.sessions} calls) used {client_cpu / wall * 100:.0f} % "
          f"of a core")  # fmt: skip
    print(f"  client event loop lag (ms): {summary(lags)}; microphone frames sent > 40 ms "
          f"late: {sum(c.late_frames for c in calls)}")  # fmt: skip
    if server_lag:
        print(f"  Daphne event loop wake-up lateness (ms): median of 5 s windows "
              f"{server_lag['p50']:.1f}, worst window p99 {server_lag['p99']:.1f}, max "
              f"{server_lag['max']:.1f}; {server_lag['over_50']:.0f} wake-ups > 50 ms and "
              f"{server_lag['over_100']:.0f} > 100 ms of {server_lag['wakeups']:.0f}")  # fmt: skip
    print("\n| measure | value |")
    print("| --- | --- |")
    print(f"| reply audio: frames / replies | {sum(r.frames for r in replies)} / {len(replies)} |")
    print(f"| inter-frame gaps > 120 ms | {len(gaps)} in {replies_with_gaps} replies "
          f"({summary(gaps)} ms) |")  # fmt: skip
    print(f"| player ran dry | {underruns} times in {replies_dry} replies, "
          f"{sum(r.dry_ms for r in replies):.0f} ms in all |")  # fmt: skip
    print(f"| server overhead per turn (ms) | {summary(overheads)} (n {len(overheads)}) |")
    print(f"| of which after the decision (ms) | {summary(after_decision)} |")
    print(
        f"| of which the decision beyond its hold / the model (ms) | {summary(decision_excess)} |"
    )
    model = [m["bench_end_of_turn_model_ms"] for m in metrics if "bench_end_of_turn_model_ms" in m]
    print(f"| end-of-turn model inference (ms, not overhead) | {summary(model)}; "
          f"{fallbacks} turns waited for the silence fallback |")  # fmt: skip
    for stage in voice_client.STAGES:
        print(f"| stage {stage} (ms) | {summary([m[stage] for m in metrics if stage in m])} |")
    for step in voice_client.STEPS:
        values = [m[f"bench_{step}_ms"] for m in metrics if f"bench_{step}_ms" in m]
        print(f"| step {step} (ms) | {summary(values)} |")
    connections = [
        m["bench_new_db_connections"] for m in metrics if "bench_new_db_connections" in m
    ]
    if connections:
        print(f"| new database connections per turn (draft prompt, turn stored, prepare) | mean "
              f"{statistics.mean(connections):.2f} |")  # fmt: skip
    client_v2v = [v for call in calls for v in call.client_v2v_ms]
    label = "client: end of speech (VAD) sent -> first reply frame received (ms)"
    print(f"| {label} | {summary(client_v2v)} |")
    hidden = [client - server for call in calls for _, client, server in call.timeline]
    print(f"| client minus server voice_to_voice, same turn (ms) | {summary(hidden)} |")
    pings = [p for call in calls for p in call.pings_ms]
    print(f"| ping -> pong through the call's socket, once a second (ms) | {summary(pings)} |")
    rss = [s[1] for s in samples]
    steady = [s for s in samples if s[0] >= 30] or samples  # calls all talking
    steady_cpu = (steady[-1][2] - steady[0][2]) / max(1.0, steady[-1][0] - steady[0][0])
    print(f"| Daphne CPU | {cpu:.1f} s in {wall:.0f} s: {cpu / wall * 100:.0f} % of a core "
          f"(steady {steady_cpu * 100:.0f} %); {cpu / wall / args.sessions * 60:.2f} CPU s "
          f"per session-minute |")  # fmt: skip
    mean_rss = statistics.mean(s[1] for s in steady)
    print(f"| Daphne RSS | idle {idle_rss:.1f} MB, during {min(rss):.1f}-{max(rss):.1f} MB "
          f"(steady mean {mean_rss:.1f}); {(mean_rss - idle_rss) / args.sessions:.2f} MB "
          f"per session |")  # fmt: skip

    print("\ntargets:")
    p95 = pct(overheads, 0.95) if overheads else float("nan")
    print(f"  server overhead p95 < 30 ms: {p95:.1f} ms -> {'met' if p95 < 30 else 'MISSED'}")
    clean = not gaps and not underruns
    print(f"  no playback gaps: {len(gaps)} gaps > 120 ms, {underruns} dry -> "
          f"{'met' if clean else 'MISSED'}")  # fmt: skip
    if soak:
        print("\nRSS every 30 s (t s: MB):")
        print("  " + ", ".join(f"{t:.0f}: {mb:.1f}" for t, mb, _ in samples))
        baseline = next((mb for t, mb, _ in samples if t >= 60), samples[0][1])
        after = [mb for t, mb, _ in samples if t >= 60]
        growth = (max(after) - baseline) / baseline * 100 if after else 0.0
        hours = (samples[-1][0] - 60) / 3600
        slope = (after[-1] - baseline) / hours if after and hours > 0 else 0.0
        print(f"  from the 1-minute sample ({baseline:.1f} MB): max +{growth:.1f} %, last "
              f"{after[-1]:.1f} MB ({slope:+.1f} MB/h)")  # fmt: skip
        print(f"  memory flat within 10 %: {'met' if growth <= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
