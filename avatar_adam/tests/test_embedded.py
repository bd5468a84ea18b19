"""The embedded-services launcher: concurrent starts share one server; crashes leave no block."""

import os
import shutil
import signal
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
