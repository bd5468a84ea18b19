"""`make run`: embedded services, migrations, demo content, then Daphne, Celery and beat.

    python -m avatar_adam.launcher run      # serve at http://127.0.0.1:8000 until Ctrl-C
    python -m avatar_adam.launcher run --port 8001 --no-demo   # a second one, no seeding
    python -m avatar_adam.launcher stop     # stop embedded servers left running

It starts one Celery worker per queue (`WORKERS`), Celery beat and Daphne. Ctrl-C (or
SIGTERM) stops every process this started, then the embedded PostgreSQL and Redis,
keeping their data under var/ for the next run - unless another launcher on the same
data folder still runs: the last one to exit stops them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from avatar_adam import embedded

BASE_DIR = Path(__file__).resolve().parent.parent

# One Celery worker per queue of settings.CELERY_TASK_ROUTES, with its processes sized
# for a 2-core laptop, so a burst of uploads never delays a reply, a debrief or a sweeper.
# The names match settings.TASK_QUEUE_NAMES (a test checks it; importing settings here
# would start the embedded servers before this process registers as their user).
WORKERS: dict[str, int] = {
    "interactive": 1,  # replies when REPLY_RUNNER=celery: short and latency-bound
    "grading": 1,  # debriefs: a model call per ended session
    "ingestion": 2,  # parsing and embedding uploaded documents: the CPU-heavy bulk work
    "maintenance": 1,  # the default queue: beat's sweepers and anything not routed
}


def _var_dir() -> Path:
    return Path(os.environ.get("AVATAR_ADAM_VAR_DIR", BASE_DIR / "var")).resolve()


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True, cwd=BASE_DIR)


def worker_command(queue: str, concurrency: int, port: int) -> list[str]:
    """The Celery worker serving one queue; its node name says the queue and the launcher."""
    return [
        sys.executable, "-m", "celery", "-A", "avatar_adam", "worker",
        "-Q", queue, "-n", f"{queue}-{port}@%h",
        "--concurrency", str(concurrency), "--loglevel", "INFO",
    ]  # fmt: skip


def _terminate(processes: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.wait(remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(host: str, port: int, *, demo: bool = True) -> int:
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatar_adam.settings")
    var_dir = _var_dir()
    os.environ["AVATAR_ADAM_VAR_DIR"] = str(var_dir)
    embedded_postgres = not os.environ.get("DATABASE_URL")
    embedded_redis = not os.environ.get("REDIS_URL")
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    processes: list[subprocess.Popen[bytes]] = []
    if embedded_postgres or embedded_redis:
        # Before any start: a launcher exiting meanwhile then leaves the servers to us.
        embedded.add_user(var_dir)
    try:
        if embedded_postgres:
            print(
                f"Embedded PostgreSQL (pgvector) under {embedded.postgres_dir(var_dir)}", flush=True
            )
            embedded.ensure_postgres(var_dir)
        if embedded_redis:
            print(f"Embedded Redis under {embedded.redis_dir(var_dir)}", flush=True)
            embedded.ensure_redis(var_dir)
        _manage("migrate", "--noinput", "-v", "0")
        if not os.environ.get("FIELD_ENCRYPTION_KEYS"):
            print(
                "Stored secrets are encrypted with a development key kept in "
                f"{var_dir / 'field_encryption_key'} (set FIELD_ENCRYPTION_KEYS in production).",
                flush=True,
            )
        _manage("check_encryption_keys", "-v", "0")
        if demo:
            _manage("seed_demo")
        # Children ignore the terminal's Ctrl-C: this process stops them in order.
        child_options = {"cwd": BASE_DIR, "start_new_session": True}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
                 "avatar_adam.asgi:application"],
                **child_options,
            )
        )  # fmt: skip
        for queue, concurrency in WORKERS.items():
            processes.append(
                subprocess.Popen(worker_command(queue, concurrency, port), **child_options)
            )
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "avatar_adam", "beat", "--loglevel", "INFO"],
                **child_options,
            )
        )
        print(
            f"\n  AvatarAdam is running at http://{host}:{port}/  (Ctrl-C stops it)\n", flush=True
        )
        while not stopping:
            if any(process.poll() is not None for process in processes):
                print("A server process exited; stopping the others.", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        print("\nStopping…", flush=True)
        _terminate(processes)
        if not (embedded_postgres or embedded_redis):
            print("Stopped.", flush=True)
        elif embedded.release_user(var_dir, postgres=embedded_postgres, redis=embedded_redis):
            print(f"Stopped. Data is kept under {var_dir}.", flush=True)
        else:
            print(
                "Stopped. The embedded servers keep running for another launcher using "
                f"{var_dir}; the last one to exit stops them.",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m avatar_adam.launcher")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="serve the app with demo content")
    run_parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run_parser.add_argument(
        "--no-demo", action="store_true", help="skip loading the demo content (seed_demo)"
    )
    commands.add_parser("stop", help="stop the embedded PostgreSQL and Redis, used or not")
    args = parser.parse_args()
    if args.command == "run":
        return run(args.host, args.port, demo=not args.no_demo)
    embedded.stop_all(_var_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
