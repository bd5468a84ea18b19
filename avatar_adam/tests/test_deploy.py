"""Production settings pass Django's deployment checklist and refuse unsafe configuration."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
TEST_ONLY = (
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "DEBUG",
    "SECRET_KEY",
    "JWT_SIGNING_KEY",
    "ALLOWED_HOSTS",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # set by the browser tests' fixture
)


def manage(*args, **env_overrides):
    env = {key: value for key, value in os.environ.items() if key not in TEST_ONLY}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "JWT_SIGNING_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "avatar.example.com",
}


def test_check_deploy_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY"),
        ({"JWT_SIGNING_KEY": PRODUCTION["SECRET_KEY"]}, "JWT_SIGNING_KEY must differ"),
    ],
    ids=["no-secret-key", "any-host", "no-jwt-key", "jwt-key-is-secret-key"],
)
def test_unsafe_production_settings_fail_at_start_naming_the_variable(overrides, named):
    result = manage("check", **{**PRODUCTION, **overrides})
    assert result.returncode != 0
    assert named in result.stderr


def test_the_development_path_keeps_its_own_jwt_key_under_var(tmp_path):
    from django.conf import settings as running

    script = "from django.conf import settings; print(settings.SIMPLE_JWT['SIGNING_KEY'])"
    # Unreachable servers: settings only read the URLs (no embedded servers are started).
    env = {
        "DEBUG": "true",
        "AVATAR_ADAM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
        "REDIS_URL": "redis://127.0.0.1:9",
    }
    first = manage("shell", "-v", "0", "-c", script, **env)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "jwt_signing_key").read_text().strip()
    assert first.stdout.strip() == key
    assert key != (tmp_path / "secret_key").read_text().strip()
    assert manage("shell", "-v", "0", "-c", script, **env).stdout.strip() == key  # kept, not remade
    assert key != running.SECRET_KEY
