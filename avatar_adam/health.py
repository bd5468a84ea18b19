"""Liveness (/healthz), readiness (/readyz) and the protected Prometheus endpoint (/metrics)."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView
from kombu import Connection


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; checks nothing else."""
    return JsonResponse({"status": "ok"})


def _check_postgres() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_CACHE_URL,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    ) as connection:
        connection.ensure_connection(max_retries=1, timeout=settings.REDIS_TIMEOUT_SECONDS)


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "postgresql": _check_postgres,
    "redis": _check_redis,
    "celery_broker": _check_broker,
}


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when PostgreSQL, Redis and the Celery broker answer; 503 naming what failed."""
    results: dict[str, str] = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results[name] = f"failed: {type(exc).__name__}"
    failed = [name for name, result in results.items() if result != "ok"]
    body: dict[str, object] = {"status": "ok" if not failed else "unavailable", "checks": results}
    if failed:
        body["message"] = "Not ready: " + ", ".join(failed) + " unreachable."
    return JsonResponse(body, status=503 if failed else 200)


def _client_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and secrets.compare_digest(header, f"Bearer {token}"):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in settings.METRICS_ALLOWED_NETWORKS)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics for a bearer token (METRICS_BEARER_TOKEN) or an allowed network."""
    if not _client_allowed(request):
        return HttpResponse("Forbidden.", status=403, content_type="text/plain")
    return ExportToDjangoView(request)
