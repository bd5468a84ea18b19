"""Chat page under load through the real ASGI server (Daphne), not the test client.

    .venv/bin/python bench/chat_page_load.py [--learners 20] [--requests 10]

Uses the benchmark servers under var/bench, starts Daphne on them (one process, as
`make run` does), signs the learners in (real sessions in the session store) and has
them all request their chat page at once over HTTP; prints client-side response times
next to a one-learner-at-a-time baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from bench_setup import BASE_DIR, free_port, pct


def fetch(url: str, cookie: str) -> float:
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={cookie}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        assert response.status == 200, response.status
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.test import Client

    from accounts.models import Organization, Role, User
    from training import sessions
    from training.models import Message, MessageRole, Scenario

    organization, _ = Organization.objects.get_or_create(slug="bench-engine")
    scenario, _ = Scenario.objects.get_or_create(
        organization=organization, title="Bench renewal",
        defaults={"published": True, "persona_name": "Dana", "persona_opening_line": "Hi."},
    )  # fmt: skip
    pages = []
    for number in range(args.learners):
        user, _ = User.objects.get_or_create(
            email=f"learner{number}@bench-engine.local",
            defaults={"organization": organization, "role": Role.LEARNER},
        )
        session = sessions.start_session(actor=user, scenario_id=scenario.pk)
        for turn in range(10):  # a conversation of some length on the page
            Message.objects.create(session=session, role=MessageRole.LEARNER, text=f"Turn {turn}")
            Message.objects.create(
                session=session, role=MessageRole.PERSONA, text="An answer. " * 20
            )
        client = Client()
        client.force_login(user)
        pages.append((f"/sessions/{session.pk}/", client.cookies["sessionid"].value))

    port = free_port()
    env = dict(os.environ, LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1,localhost")
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "avatar_adam.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        for path, cookie in pages[:3]:  # warm-up
            fetch(base + path, cookie)

        alone = [fetch(base + pages[0][0], pages[0][1]) for _ in range(args.requests * 3)]
        together: list[float] = []
        lock = threading.Lock()

        def learner(path: str, cookie: str) -> None:
            for _ in range(args.requests):
                elapsed = fetch(base + path, cookie)
                with lock:
                    together.append(elapsed)

        threads = [threading.Thread(target=learner, args=page) for page in pages]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        daphne.terminate()
        daphne.wait(15)

    print(f"chat page through Daphne (one process, {len(pages)} learners, 20 messages each):")
    print(f"  one learner at a time: p50 {statistics.median(alone):.1f} ms, "
          f"p95 {pct(alone, 0.95):.1f} ms")  # fmt: skip
    print(f"  {len(pages)} learners at once ({len(together)} requests in {wall:.1f} s, "
          f"{len(together) / wall:.0f} pages/s): p50 {statistics.median(together):.1f} ms, "
          f"p95 {pct(together, 0.95):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
