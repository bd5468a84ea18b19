"""Replies and uploads of one organization while another ingests a thousand documents.

    .venv/bin/python bench/replies_under_load.py [--documents 1000] [--learners 4]
        [--messages 8] [--runners process,celery]

Uses the benchmark servers under var/bench and starts what `make run` starts: Daphne,
one Celery worker per queue kind (ingestion with 2 processes), so the figures include the
CPU contention of real ingestion on this machine. Organization B's learners post messages
over HTTP and read the reply's server-sent events, timing message sent -> first token
received (the stand-in's 20 ms token delay included); B's manager uploads one document,
timed upload -> ready. First with organization A idle, then while A's backlog ingests, in
one run; with `--runners process,celery` also with replies on the `interactive` queue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from bench_setup import BASE_DIR, free_port, pct

os.environ["LLM_PROVIDER"] = "offline"
os.environ["MESSAGE_RATE_PER_MINUTE"] = "100000"


def manual_page(number: int) -> bytes:
    """An HTML page of a product manual (~600 words), different on every page."""
    sections = "".join(
        f"<h2>Step {number}.{step}</h2><p>"
        + " ".join(
            f"Set dial {number}-{step}-{word} before the valve {word % 7} opens fully."
            for word in range(12)
        )
        + "</p>"
        for step in range(5)
    )
    return f"<html><head><title>Manual page {number}</title></head><body><h1>Page {number}</h1>{sections}</body></html>".encode()  # noqa: E501


class Stack:
    def __init__(self, runner: str) -> None:
        self.port = free_port()
        env = dict(os.environ, REPLY_RUNNER=runner, ALLOWED_HOSTS="127.0.0.1,localhost")
        celery = [sys.executable, "-m", "celery", "-A", "avatar_adam", "worker", "-l", "WARNING",
                  "--without-heartbeat", "--without-mingle", "--without-gossip"]  # fmt: skip
        quiet = {"cwd": BASE_DIR, "env": env, "stdout": subprocess.DEVNULL,
                 "stderr": subprocess.DEVNULL}  # fmt: skip
        self.processes = [
            subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p",
                              str(self.port), "avatar_adam.asgi:application"], **quiet),
            subprocess.Popen([*celery, "-Q", "ingestion", "-c", "2", "-n", "ingestion@%h"],
                             **quiet),
            subprocess.Popen([*celery, "-Q", "interactive", "-c", "1", "--pool", "solo",
                              "-n", "interactive@%h"], **quiet),
            subprocess.Popen([*celery, "-Q", "grading,maintenance", "-c", "1", "--pool", "solo",
                              "-n", "other@%h"], **quiet),
        ]  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(5)  # workers connect to the broker
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


class Learner:
    """A signed-in browser: session cookie, CSRF token, and the chat page's requests."""

    def __init__(self, base: str, user: object, session_id: int) -> None:
        from django.test import Client

        client = Client()
        client.force_login(user)
        self.cookie = client.cookies["sessionid"].value
        self.base, self.session_id = base, session_id
        page = self._open(f"/sessions/{session_id}/")
        self.csrf = re.search(r"csrftoken=([^;]+)", page.headers.get("Set-Cookie", "")).group(1)
        page.read()

    def _open(self, path: str, data: bytes | None = None, **headers: str) -> object:
        cookie = f"sessionid={self.cookie}"
        if getattr(self, "csrf", None):
            cookie += f"; csrftoken={self.csrf}"
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Cookie": cookie, **headers}
        )
        return urllib.request.urlopen(request, timeout=120)

    def say(self, text: str) -> float:
        """Send a message; milliseconds until the reply's first token arrives."""
        started = time.perf_counter()
        body = urllib.parse.urlencode({"text": text}).encode()
        with self._open(
            f"/sessions/{self.session_id}/messages/", body, **{
                "X-CSRFToken": self.csrf, "Referer": self.base + "/",
                "Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true",
            },
        ) as response:  # fmt: skip
            fragment = response.read().decode()
        stream_url = re.search(r'data-stream-url="([^"]+)"', fragment).group(1)
        first = None
        with self._open(stream_url, Accept="text/event-stream") as events:
            kind = ""
            for raw in events:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "token" and first is None:
                    first = time.perf_counter()
                elif line.startswith("data: ") and kind in ("done", "failed"):
                    assert kind == "done", json.loads(line[6:])
                    break
        return (first - started) * 1000


def measure(stack: Stack, learners: list[object], scenario_id: int, manager: object,
            messages: int, label: str) -> dict[str, float]:  # fmt: skip
    from knowledge import services as knowledge
    from knowledge.models import Document, DocumentStatus
    from training import sessions

    chatting = [
        Learner(stack.base, user, sessions.start_session(actor=user, scenario_id=scenario_id).pk)
        for user in learners
    ]
    first_tokens: list[float] = []
    lock = threading.Lock()

    def converse(learner: Learner) -> None:
        for turn in range(messages):
            elapsed = learner.say(f"Turn {turn}: what would change your mind?")
            with lock:
                first_tokens.append(elapsed)

    load_before = os.getloadavg()[0]
    threads = [threading.Thread(target=converse, args=(learner,)) for learner in chatting]
    for thread in threads:
        thread.start()
    # B's manager uploads one document meanwhile.
    from django.core.files.uploadedfile import SimpleUploadedFile

    marker = f"{label}-{time.time_ns()}"
    uploaded = time.perf_counter()
    document = knowledge.upload_document(
        actor=manager,
        uploaded_file=SimpleUploadedFile(f"{marker}.html", manual_page(10_000) + marker.encode()),
    ).document
    while True:
        status = Document.objects.filter(pk=document.pk).values_list("status", flat=True).get()
        if status in (DocumentStatus.READY, DocumentStatus.FAILED):
            break
        time.sleep(0.1)
    ready_s = time.perf_counter() - uploaded
    assert status == DocumentStatus.READY, status
    for thread in threads:
        thread.join()
    figures = {
        "p50": statistics.median(first_tokens),
        "p95": pct(first_tokens, 0.95),
        "n": len(first_tokens),
        "ready_s": ready_s,
        "load": (load_before + os.getloadavg()[0]) / 2,
    }
    print(f"  {label}: B's first token p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms "
          f"({figures['n']} messages from {len(learners)} learners at once); B's document "
          f"ready in {ready_s:.1f} s; load average {figures['load']:.1f}", flush=True)  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--learners", type=int, default=4)
    parser.add_argument("--messages", type=int, default=8)
    parser.add_argument("--runners", default="process")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import Organization, Role, User
    from knowledge import services as knowledge
    from knowledge.models import Document, DocumentStatus
    from training.models import Scenario

    def organization(slug: str) -> tuple[Organization, User]:
        org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug})
        Document.objects.filter(organization=org).delete()
        shutil.rmtree(settings.MEDIA_ROOT / "documents" / str(org.pk), ignore_errors=True)
        manager, _ = User.objects.get_or_create(
            email=f"manager@{slug}.local", defaults={"organization": org, "role": Role.MANAGER}
        )
        return org, manager

    org_a, manager_a = organization("bench-load-a")
    org_b, manager_b = organization("bench-load-b")
    objections = "\n".join(f"Objection number {i} about price and support." for i in range(500))
    scenario, _ = Scenario.objects.get_or_create(
        organization=org_b, title="Bench renewal", defaults={
            "published": True, "persona_name": "Dana", "persona_objections": objections,
            "persona_opening_line": "Convince me.",
        },
    )  # fmt: skip
    learners = [
        User.objects.get_or_create(
            email=f"learner{n}@bench-load-b.local",
            defaults={"organization": org_b, "role": Role.LEARNER},
        )[0]
        for n in range(args.learners)
    ]
    subprocess.run([sys.executable, "-m", "celery", "-A", "avatar_adam", "purge", "-f", "-Q",
                    ",".join(settings.TASK_QUEUE_NAMES)], cwd=BASE_DIR, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    print(
        f"cores {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}; "
        f"A backlog {args.documents} HTML manual pages (~600 words each)",
        flush=True,
    )
    results = {}
    for runner in args.runners.split(","):
        print(f"replies generated by: {runner}", flush=True)
        stack = Stack(runner)
        try:
            measure(stack, learners[:1], scenario.pk, manager_b, 3, "warm-up")
            results[(runner, "idle")] = measure(
                stack, learners, scenario.pk, manager_b, args.messages, "A idle"
            )
            started = time.perf_counter()
            for number in range(args.documents):
                knowledge.upload_document(
                    actor=manager_a,
                    uploaded_file=SimpleUploadedFile(f"page-{number}.html", manual_page(number)),
                )
            took = time.perf_counter() - started
            print(f"  A uploaded {args.documents} documents in {took:.0f} s", flush=True)
            results[(runner, "loaded")] = measure(
                stack, learners, scenario.pk, manager_b, args.messages, "A ingesting"
            )
            done = Document.objects.filter(
                organization=org_a, status__in=[DocumentStatus.READY, DocumentStatus.FAILED]
            ).count()
            print(f"  meanwhile A's documents finished: {done} of {args.documents}", flush=True)
        finally:
            stack.stop()
            purge = [sys.executable, "-m", "celery", "-A", "avatar_adam", "purge", "-f"]
            subprocess.run([*purge, "-Q", "ingestion"], cwd=BASE_DIR, stdout=subprocess.DEVNULL)
            Document.objects.filter(organization=org_a).delete()
            shutil.rmtree(settings.MEDIA_ROOT / "documents" / str(org_a.pk), ignore_errors=True)
    print("targets: B's first token p95 < 1000 ms with the stand-in; B's document ready < 120 s")
    for (runner, phase), figures in results.items():
        verdict = "met" if figures["p95"] < 1000 and figures["ready_s"] < 120 else "MISSED"
        p95, ready = figures["p95"], figures["ready_s"]
        print(f"  {runner:8} {phase:7} p95 {p95:.0f} ms, ready {ready:.1f} s: {verdict}")


if __name__ == "__main__":
    main()
