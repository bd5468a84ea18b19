"""pytest plugin (loaded with `-p`): the test session's own throwaway embedded servers.

Imported before Django's settings, it points AVATAR_ADAM_VAR_DIR at a fresh temporary
folder, so `make test` never touches var/ and starts its own PostgreSQL and Redis
(unless DATABASE_URL / REDIS_URL name real ones). They stop, and the folder is removed,
when the session ends.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

_OWNED_VAR_DIR: Path | None = None

if "AVATAR_ADAM_VAR_DIR" not in os.environ:
    _OWNED_VAR_DIR = Path(tempfile.mkdtemp(prefix="avatar-adam-test-"))
    os.environ["AVATAR_ADAM_VAR_DIR"] = str(_OWNED_VAR_DIR)
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("JWT_SIGNING_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
# The test client and the browser tests talk plain HTTP on localhost.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("LOG_FORMAT", "console")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("LLM_STAND_IN_TOKEN_DELAY_MS", "0")
# Servers started by tests load voice models only when a call needs them.
os.environ.setdefault("VOICE_PRELOAD", "false")
os.environ.setdefault("LLM_PROVIDER", "offline")


def _stop_owned_servers() -> None:
    if _OWNED_VAR_DIR is None or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if not _OWNED_VAR_DIR.exists():
        return
    from avatar_adam import embedded

    embedded.stop_all(_OWNED_VAR_DIR)
    shutil.rmtree(_OWNED_VAR_DIR, ignore_errors=True)


# Also at exit: a session that dies while starting (e.g. an import error in settings)
# never reaches pytest_unconfigure, and must not leave servers running.
atexit.register(_stop_owned_servers)


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, beside the servers the slow tests start; nothing deselects them.
    config.addinivalue_line(
        "markers", "slow: starts whole stacks as processes (tens of seconds); runs in CI too"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    _stop_owned_servers()
