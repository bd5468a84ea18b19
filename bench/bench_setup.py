"""Shared start of the benchmark scripts: the project on sys.path, the benchmark servers
under var/bench (kept between runs), quiet logs."""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("AVATAR_ADAM_VAR_DIR", str(BASE_DIR / "var" / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avatar_adam.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,testserver")


def pct(values: list[float], fraction: float) -> float:
    """The `fraction` percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
