"""Every route demands a signed-in caller, except an explicit public list.

Walks all URL patterns: API views must not allow anonymous callers, pages must send
anonymous visitors to sign in, and every WebSocket consumer must reject anonymous users.
"""

import pytest
from django.urls import reverse
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from avatar_adam.tests.url_walk import walk
from avatar_adam.websocket_urls import websocket_urlpatterns

pytestmark = pytest.mark.django_db

PUBLIC = {
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "healthz",
    "readyz",
    "metrics",  # guarded by its own bearer token / network allow-list (test_health.py)
    "api-token",
    "api-token-refresh",
    "api-logout",
}


# API views that are pages for people (avatar_adam/api_docs.py): signed out, they send the
# visitor to sign in like every page; with a token they answer as the API does.
DOCS_PAGES = {"api-docs", "api-redoc"}


def sample_url(route):
    url = "/" + route.route
    for param in route.params:
        for converter in ("int", "str", "path", "slug", "uuid"):
            url = url.replace(f"<{converter}:{param}>", "1")
        url = url.replace(f"<{param}>", "1")
    return url


def api_view_class(callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if isinstance(view_class, type) and issubclass(view_class, APIView):
        return view_class
    return None


def app_routes():
    for route in walk():
        if route.route.startswith("admin/") or "(?P<" in route.route or route.name in PUBLIC:
            continue
        yield route


def test_the_public_list_names_real_routes():
    names = {route.name for route in walk()}
    assert PUBLIC <= names


def test_no_api_view_lets_anonymous_callers_in():
    for route in app_routes():
        view_class = api_view_class(route.callback)
        if view_class is None:
            continue
        permissions = view_class().get_permissions()
        assert permissions, route.route
        assert not any(isinstance(p, AllowAny) for p in permissions), route.route
        assert view_class().get_authenticators(), route.route


def test_every_route_refuses_an_anonymous_caller(client):
    checked = 0
    for route in app_routes():
        response = client.get(sample_url(route))
        if api_view_class(route.callback) and route.name not in DOCS_PAGES:
            assert response.status_code == 401, (route.route, response.status_code)
            if response["Content-Type"].startswith("application/json"):  # the schema is YAML
                assert response.json()["error"]["code"] == "not_authenticated"
        else:
            assert response.status_code == 302, (route.route, response.status_code)
            assert response["Location"].startswith(reverse("login")), route.route
        checked += 1
    assert checked >= 5


def test_the_admin_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_every_websocket_consumer_rejects_anonymous_users():
    for pattern in websocket_urlpatterns:
        consumer = getattr(pattern.callback, "consumer_class", pattern.callback)
        assert getattr(consumer, "rejects_anonymous", False), pattern.pattern


def test_the_docs_pages_answer_a_token_caller_as_the_api_does(client):
    response = client.get("/api/v1/docs/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 401
