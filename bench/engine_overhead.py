"""Conversation engine timings on the real path (Django view -> Celery worker -> Redis stream).

    .venv/bin/python bench/engine_overhead.py [--turns 40] [--learners 20]

Uses the benchmark servers under var/bench and starts a Celery worker (solo pool) on them.
With the offline stand-in (no token delay) the provider's own time to first token is
~0, so everything between the request arriving and the first token reaching the reply's
Redis stream is engine overhead: the view, the database writes, the Celery hop, prompt
assembly (history, memory) and the first publish. Also measured: the chat page's server
time with 20 learners requesting it at once, and the debrief (grading) task time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

from bench_setup import BASE_DIR, pct

os.environ["LLM_PROVIDER"] = "offline"
os.environ["LLM_STAND_IN_TOKEN_DELAY_MS"] = "0"
os.environ["MESSAGE_RATE_PER_MINUTE"] = "100000"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--learners", type=int, default=20)
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.test import Client

    from accounts.models import Organization, Role, User
    from training import debriefs, sessions, streaming
    from training.models import RubricItem, Scenario

    organization, _ = Organization.objects.get_or_create(slug="bench-engine")
    objections = "\n".join(f"Objection number {i} about price and support." for i in range(500))
    scenario, _ = Scenario.objects.get_or_create(
        organization=organization, title="Bench renewal", defaults={
            "published": True, "persona_name": "Dana", "persona_objections": objections,
            "persona_opening_line": "Convince me.",
        },
    )  # fmt: skip
    if not scenario.rubric_items.exists():
        RubricItem.objects.create(
            scenario=scenario, name="Next step", weight=1,
            good_looks_like="Proposes a review call with a date.",
        )  # fmt: skip
    learners = []
    for number in range(args.learners):
        user, _ = User.objects.get_or_create(
            email=f"learner{number}@bench-engine.local",
            defaults={"organization": organization, "role": Role.LEARNER},
        )
        learners.append(user)

    from django.conf import settings

    # One worker serving every queue (`make run` starts one per queue).
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "avatar_adam", "worker", "--pool", "solo",
         "-Q", ",".join(settings.TASK_QUEUE_NAMES),
         "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "WARNING"],
        cwd=BASE_DIR, env=dict(os.environ),
    )  # fmt: skip
    try:
        time.sleep(4)
        learner = learners[0]
        session = sessions.start_session(actor=learner, scenario_id=scenario.pk)
        client = Client()
        client.force_login(learner)
        url = f"/sessions/{session.pk}/messages/"
        overheads, ttfts = [], []
        for turn in range(args.turns + 3):
            started = time.perf_counter()
            response = client.post(url, {"text": f"Turn {turn}: what would change your mind?"})
            assert response.status_code == 200, response.status_code
            reply = session.messages.order_by("-pk").first()
            for kind, _data in streaming.read(reply.pk, timeout_seconds=30):
                if kind == "token":
                    first = time.perf_counter()
                    break
            for kind, _data in streaming.read(reply.pk, timeout_seconds=30):
                if kind in ("done", "failed"):
                    break
            reply.refresh_from_db()
            if turn >= 3:  # warm-up turns excluded
                overheads.append((first - started) * 1000)
                ttfts.append(reply.time_to_first_token_ms or 0)
        print(f"engine overhead per turn ({args.turns} turns, stand-in provider TTFT ~0):")
        print(f"  request received -> first token on the stream: p50 "
              f"{statistics.median(overheads):.1f} ms, p95 {pct(overheads, 0.95):.1f} ms "
              f"(target p95 < 30 ms)")  # fmt: skip
        print(f"  of which in the worker (prompt + first token): p50 "
              f"{statistics.median(ttfts):.0f} ms, p95 {pct(ttfts, 0.95):.0f} ms")  # fmt: skip

        page_times: list[float] = []
        lock = threading.Lock()
        started_sessions = [
            sessions.start_session(actor=u, scenario_id=scenario.pk) for u in learners
        ]

        def learner_loop(user: User, session_id: int) -> None:
            own = Client()
            own.force_login(user)
            for _ in range(10):
                started = time.perf_counter()
                assert own.get(f"/sessions/{session_id}/").status_code == 200
                with lock:
                    page_times.append((time.perf_counter() - started) * 1000)

        threads = [threading.Thread(target=learner_loop, args=(u, s.pk))
                   for u, s in zip(learners, started_sessions, strict=True)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        p50, p95 = statistics.median(page_times), pct(page_times, 0.95)
        label = f"{len(learners)} learners at once ({len(page_times)} requests, in-process)"
        print(f"chat page server time, {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")

        sessions.end_session(actor=learner, session_id=session.pk)
        started = time.perf_counter()
        debriefs.grade_session(session.pk)
        print(f"debrief of a {session.messages.count()}-message session (stand-in grading): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(20)


if __name__ == "__main__":
    main()
