"""Health, readiness, metrics protection, request ids, request-size limits, and the 503
for a Redis outage."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from django.test import RequestFactory, override_settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from avatar_adam import embedded
from avatar_adam.middleware import REDIS_DOWN_MESSAGE, RedisUnavailableMiddleware
from avatar_adam.redis_urls import celery_broker_url, redis_url_with_db

pytestmark = pytest.mark.django_db


def test_healthz_says_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_postgres_redis_and_the_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "postgresql": "ok",
        "redis": "ok",
        "celery_broker": "ok",
    }


def test_readyz_turns_503_naming_redis_when_redis_stops(client):
    # A Redis of this test's own, so stopping it leaves the suite's Redis alone.
    var_dir = Path(tempfile.mkdtemp(prefix="aa-readyz-"))
    url = embedded.ensure_redis(var_dir)
    try:
        with override_settings(
            REDIS_CACHE_URL=redis_url_with_db(url, 1),
            CELERY_BROKER_URL=celery_broker_url(redis_url_with_db(url, 0)),
            REDIS_TIMEOUT_SECONDS=1.0,
        ):
            assert client.get("/readyz").status_code == 200
            embedded.stop_redis(var_dir)
            response = client.get("/readyz")
    finally:
        embedded.stop_redis(var_dir)
        shutil.rmtree(var_dir, ignore_errors=True)
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["postgresql"] == "ok"
    assert body["checks"]["redis"].startswith("failed")
    assert body["checks"]["celery_broker"].startswith("failed")
    assert "redis" in body["message"]


def test_metrics_need_the_bearer_token_from_outside_allowed_networks(client):
    with override_settings(METRICS_BEARER_TOKEN="s3cret-metrics", METRICS_ALLOWED_NETWORKS=[]):
        assert client.get("/metrics").status_code == 403
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert allowed.status_code == 200
    assert b"django_http_requests_total" in allowed.content


def test_metrics_are_open_to_an_allowed_network(client):
    with override_settings(METRICS_BEARER_TOKEN="", METRICS_ALLOWED_NETWORKS=["127.0.0.0/8"]):
        assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_every_response_carries_a_request_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert first
    assert second
    assert first != second


def test_an_oversized_json_body_is_refused_with_413(api_as, alice, settings):
    client = api_as(alice)
    body = '{"name": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    response = client.generic("POST", "/api/v1/api-keys/", body, content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


def test_an_oversized_upload_is_refused_with_413(client, settings):
    settings.REQUEST_BODY_MAX_BYTES = 1000
    response = client.generic(
        "POST",
        "/knowledge/upload/",
        b"x" * 2000,
        content_type="multipart/form-data; boundary=zzz",
    )
    assert response.status_code == 413


def test_security_headers_are_set(client):
    response = client.get("/login/")
    csp = response["Content-Security-Policy"]
    assert "object-src 'none'" in csp
    assert "base-uri 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_a_redis_outage_inside_a_view_is_a_clear_503_not_a_500():
    middleware = RedisUnavailableMiddleware(lambda request: None)
    outage = RedisConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    api = middleware.process_exception(RequestFactory().post("/api/v1/sessions/"), outage)
    page = middleware.process_exception(RequestFactory().get("/sessions/1/"), outage)
    bug = middleware.process_exception(RequestFactory().get("/"), ResponseError("WRONGTYPE"))

    assert api.status_code == 503
    assert api["Retry-After"]
    assert json.loads(api.content)["error"]["message"] == REDIS_DOWN_MESSAGE
    assert page.status_code == 503
    assert page.content.decode() == REDIS_DOWN_MESSAGE
    assert bug is None  # a protocol error is a bug, and stays a 500
