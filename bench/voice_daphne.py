"""Daphne for the voice benchmarks: the project's ASGI app with the benchmark's providers.

    .venv/bin/python bench/voice_daphne.py -b 127.0.0.1 -p 8001

`BENCH_VOICE_PROVIDERS` (instant, simulated or real) chooses the speech providers
(bench/voice_fakes.py); they are installed before the ASGI application is imported, then
Daphne's own command line runs `avatar_adam.asgi:application` with the arguments given.
With `BENCH_GC_FILE` set, garbage collections of 10 ms or more are appended there. With
`BENCH_LAG_FILE` set, how late Daphne's event loop wakes is written there; with
`BENCH_PROFILE` set, the event loop's thread is profiled (cProfile) and its statistics
written to that path when Daphne stops.
"""

from __future__ import annotations

import os
import sys

import bench_setup  # noqa: F401  (project on sys.path, benchmark servers, settings module)
import daphne.server  # first: it installs Twisted's asyncio reactor


def main() -> None:
    import django

    django.setup()
    import voice_fakes

    voice_fakes.install(os.environ.get("BENCH_VOICE_PROVIDERS", "instant"))
    if os.environ.get("BENCH_GC_FILE"):
        watch_garbage_collection(os.environ["BENCH_GC_FILE"])
    if os.environ.get("BENCH_LAG_FILE"):
        voice_fakes.watch_event_loop(daphne.server.twisted_loop, os.environ["BENCH_LAG_FILE"])
    from daphne.cli import CommandLineInterface

    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    CommandLineInterface().run([*sys.argv[1:], "avatar_adam.asgi:application"])
    if profile:
        profiler.disable()
        profiler.dump_stats(profile)


def watch_garbage_collection(path: str) -> None:
    """Append each garbage collection that took 10 ms or more (generation, ms) to `path`."""
    import gc
    import time

    started: list[float] = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            took = (time.perf_counter() - started[0]) * 1000
            if took >= 10:
                with open(path, "a") as out:
                    out.write(f"{time.time():.3f} gen{info['generation']} {took:.1f}\n")

    gc.callbacks.append(callback)


if __name__ == "__main__":
    main()
