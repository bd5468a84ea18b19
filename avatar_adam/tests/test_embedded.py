"""The embedded-services launcher: concurrent starts share one server; crashes leave no block."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis

from avatar_adam import embedded

START_BOTH = (
    "import sys; from pathlib import Path; from avatar_adam import embedded; "
    "d = Path(sys.argv[1]); print(embedded.ensure_postgres(d), embedded.ensure_redis(d))"
)


@pytest.fixture
def fresh_var_dir():
    path = Path(tempfile.mkdtemp(prefix="aa-launcher-"))
    yield path
    embedded.stop_all(path)
    shutil.rmtree(path, ignore_errors=True)


def test_two_processes_starting_at_once_share_one_postgres_and_one_redis(fresh_var_dir):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", START_BOTH, str(fresh_var_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]  # the same socket folder and Redis URL
    socket_dir, redis_url = outputs[0][0].split()
    with psycopg.connect(host=socket_dir, dbname="avatar_adam", user="postgres") as connection:
        extension = connection.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        assert extension is not None
    assert redis.Redis.from_url(redis_url).ping()


def test_a_crashed_redis_leaves_nothing_that_blocks_the_next_start(fresh_var_dir):
    url = embedded.ensure_redis(fresh_var_dir)
    client = redis.Redis.from_url(url)
    client.set("survives", "yes")
    client.execute_command("BGREWRITEAOF")
    time.sleep(0.5)
    pid = int((embedded.redis_dir(fresh_var_dir) / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    # The socket and pid file are still there, but nobody answers on them.
    assert embedded.redis_socket(fresh_var_dir).exists()

    again = embedded.ensure_redis(fresh_var_dir)

    assert again == url
    assert redis.Redis.from_url(again).get("survives") == b"yes"  # persistence is on


def test_a_killed_postgres_is_restarted_with_its_data(fresh_var_dir):
    socket_dir = embedded.ensure_postgres(fresh_var_dir)
    with psycopg.connect(
        host=socket_dir, dbname="avatar_adam", user="postgres", autocommit=True
    ) as connection:
        connection.execute("CREATE TABLE kept (value text)")
        connection.execute("INSERT INTO kept VALUES ('still here')")
    data_dir = embedded.postgres_dir(fresh_var_dir)
    pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while embedded._process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # let the backends notice the postmaster is gone

    socket_dir = embedded.ensure_postgres(fresh_var_dir)

    with psycopg.connect(host=socket_dir, dbname="avatar_adam", user="postgres") as connection:
        assert connection.execute("SELECT value FROM kept").fetchone() == ("still here",)


def test_stop_all_stops_both_servers(fresh_var_dir):
    embedded.ensure_postgres(fresh_var_dir)
    embedded.ensure_redis(fresh_var_dir)

    embedded.stop_all(fresh_var_dir)

    assert not embedded._redis_ping(embedded.redis_socket(fresh_var_dir))
    assert embedded._postgres_socket_dir(embedded.postgres_dir(fresh_var_dir)) is None


def test_the_servers_stay_up_while_another_user_lives_and_stop_with_the_last(fresh_var_dir):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        embedded.add_user(fresh_var_dir, pid=other.pid)
        embedded.add_user(fresh_var_dir)
        embedded.ensure_postgres(fresh_var_dir)
        embedded.ensure_redis(fresh_var_dir)

        assert embedded.release_user(fresh_var_dir) is False

        assert embedded._redis_ping(embedded.redis_socket(fresh_var_dir))
        assert embedded._postgres_socket_dir(embedded.postgres_dir(fresh_var_dir)) is not None

        assert embedded.release_user(fresh_var_dir, pid=other.pid) is True

        assert not embedded._redis_ping(embedded.redis_socket(fresh_var_dir))
        assert embedded._postgres_socket_dir(embedded.postgres_dir(fresh_var_dir)) is None
    finally:
        other.kill()
        other.wait()


def test_a_user_that_died_without_leaving_does_not_keep_the_servers_up(fresh_var_dir):
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])
    crashed.wait()
    embedded.add_user(fresh_var_dir, pid=crashed.pid)  # as if it registered, then was killed
    embedded.add_user(fresh_var_dir)
    embedded.ensure_redis(fresh_var_dir)

    assert embedded.release_user(fresh_var_dir, postgres=False) is True

    assert not embedded._redis_ping(embedded.redis_socket(fresh_var_dir))
    assert list(embedded.users_dir(fresh_var_dir).iterdir()) == []  # the stale entry is gone


IMPORT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DATABASES['default']['PORT'], settings.REDIS_URL, "
    "settings.EMBEDDED_POSTGRES, settings.EMBEDDED_REDIS)"
)


def _unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_settings_given_server_urls_start_no_embedded_server(fresh_var_dir):
    """Web nodes and workers in production import settings with DATABASE_URL / REDIS_URL:
    nothing is started, nothing is connected to, and the import is quick."""
    database_port, redis_port = _unused_port(), _unused_port()
    env = {**os.environ, "AVATAR_ADAM_VAR_DIR": str(fresh_var_dir), "DEBUG": "true"}
    env["DJANGO_SETTINGS_MODULE"] = "avatar_adam.settings"
    env.pop("CELERY_BROKER_URL", None)
    env.pop("DATABASE_REPLICA_URLS", None)
    env["DATABASE_URL"] = f"postgres://nobody@127.0.0.1:{database_port}/nothing"
    env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    started = time.monotonic()

    result = subprocess.run(
        [sys.executable, "-c", IMPORT_SETTINGS],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert result.stdout.split() == [
        str(database_port),
        f"redis://127.0.0.1:{redis_port}/0",
        "False",
        "False",
    ]
    assert not embedded.postgres_dir(fresh_var_dir).exists()
    assert not embedded.redis_dir(fresh_var_dir).exists()
    assert not (fresh_var_dir / ".services.lock").exists()  # ensure_* was never entered
    assert _processes_started_for(fresh_var_dir) == []  # no daemon left behind


def _processes_started_for(var_dir):
    """Processes with the data folder in their environment or command line (Redis's
    process title overwrites its environment)."""
    marker = f"AVATAR_ADAM_VAR_DIR={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and (
            marker in environment or str(var_dir).encode() in command_line
        ):
            found.append(int(entry.name))
    return found
