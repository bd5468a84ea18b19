"""`make run`: one worker per queue, and two launchers sharing one data folder.

The second test starts real launchers (`python -m avatar_adam.launcher run`) on a fresh
data folder: the embedded PostgreSQL and Redis outlive the first launcher to exit and
are stopped by the last one.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from avatar_adam import embedded, launcher
from avatar_adam.redis_urls import celery_broker_url, redis_url_with_db

ROOT = Path(__file__).resolve().parents[2]
# Servers of the suite itself (CI may set them) must not leak into a launcher's stack.
NOT_INHERITED = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DATABASE_REPLICA_URLS"}


def test_make_run_starts_a_worker_for_every_queue_and_only_those():
    assert set(launcher.WORKERS) == set(settings.TASK_QUEUE_NAMES)
    assert all(concurrency >= 1 for concurrency in launcher.WORKERS.values())


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_using(var_dir):
    """Live processes started for this data folder (the launchers' children and servers):
    its path in their environment, or in their command line (Redis's process title
    overwrites its environment)."""
    marker = f"AVATAR_ADAM_VAR_DIR={var_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        uses = marker in environment or f"{var_dir}/".encode() in command_line
        if uses and embedded._process_alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _server_pids(var_dir):
    postmaster = embedded.postgres_dir(var_dir) / "postmaster.pid"
    redis_pid = embedded.redis_dir(var_dir) / "redis.pid"
    return int(postmaster.read_text().splitlines()[0]), int(redis_pid.read_text())


class Launcher:
    """One `python -m avatar_adam.launcher run` on a port, its output kept in a log file."""

    def __init__(self, var_dir, port):
        self.port = port
        self.log = var_dir.parent / f"{var_dir.name}-launcher-{port}.log"
        env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
        env.update(AVATAR_ADAM_VAR_DIR=str(var_dir), DEBUG="true", PYTHONUNBUFFERED="1")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "avatar_adam.launcher", "run",
                 "--port", str(port), "--no-demo"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self):
        return self.log.read_text(errors="replace")[-4000:]

    def readyz(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def wait_until_ready(self, seconds=180):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the launcher exited:\n{self.output()}"
            if self.readyz() == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"/readyz never answered 200 on {self.port}:\n{self.output()}")

    def stop(self, seconds=60):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(seconds)


def _queues_by_worker(var_dir, expected, seconds=60):
    """Ask the running workers (remote control over the broker) which queues they consume."""
    broker = celery_broker_url(redis_url_with_db(f"unix://{embedded.redis_socket(var_dir)}", 0))
    app = Celery(broker=broker)
    try:
        deadline = time.monotonic() + seconds
        while True:
            replies = app.control.inspect(timeout=2).active_queues() or {}
            queues = {
                node.split("@")[0]: sorted(queue["name"] for queue in consumed)
                for node, consumed in replies.items()
            }
            if queues == expected or time.monotonic() > deadline:
                return queues
    finally:
        app.close()


@pytest.fixture
def var_dir():
    path = Path(tempfile.mkdtemp(prefix="aa-launchers-")).resolve()
    launchers = []
    yield path, launchers
    for started in launchers:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGTERM)
            try:
                started.process.wait(60)
            except subprocess.TimeoutExpired:
                started.process.kill()
    for pid in _processes_using(path):  # only what this test started, should it fail midway
        os.kill(pid, signal.SIGKILL)
    embedded.stop_all(path)
    for started in launchers:
        started.log.unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_two_launchers_share_the_servers_and_the_last_to_exit_stops_them(var_dir):
    path, launchers = var_dir
    first = Launcher(path, _free_port())
    launchers.append(first)
    first.wait_until_ready()
    # Started once the first has migrated: two `migrate` runs at once would race.
    second = Launcher(path, _free_port())
    launchers.append(second)
    second.wait_until_ready()
    postgres_pid, redis_pid = _server_pids(path)
    assert {postgres_pid, redis_pid} <= set(_processes_using(path))
    expected = {
        f"{queue}-{started.port}": [queue]
        for started in (first, second)
        for queue in settings.TASK_QUEUE_NAMES
    }
    assert _queues_by_worker(path, expected) == expected

    assert first.stop() == 0, first.output()

    assert second.readyz() == 200, second.output()
    assert "keep running for another launcher" in first.output()
    assert _server_pids(path) == (postgres_pid, redis_pid)
    assert embedded._process_alive(postgres_pid)
    assert embedded._process_alive(redis_pid)

    assert second.stop() == 0, second.output()

    assert "Data is kept under" in second.output()
    assert not embedded._process_alive(postgres_pid)
    assert not embedded._process_alive(redis_pid)
    deadline = time.monotonic() + 15
    while _processes_using(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(path) == []
