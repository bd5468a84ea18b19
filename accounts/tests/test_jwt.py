"""Signing in to the API with JWT: obtain, refresh with rotation, reuse refused, logout."""

import time

import jwt
import pytest
from django.conf import settings

from conftest import token_for

pytestmark = pytest.mark.django_db


def test_a_user_gets_a_short_access_token_and_a_refresh_token(api_client, bob):
    tokens = token_for(api_client, bob)

    access = jwt.decode(tokens["access"], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 5 * 60
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = api_client.get("/api/v1/auth/me/").json()
    assert me["email"] == "bob@acme.test"
    assert me["role"] == "learner"
    assert me["organization"]["name"] == "Acme"


def test_refresh_rotates_and_the_used_refresh_token_is_refused(api_client, bob):
    first = token_for(api_client, bob)

    rotated = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": first["refresh"]}, format="json"
    )
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]

    again = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": rotated.json()["refresh"]}, format="json"
    )
    assert again.status_code == 200

    reused = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": first["refresh"]}, format="json"
    )
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_not_valid"


def test_a_reused_refresh_token_revokes_its_whole_family(api_client, bob):
    """A used token presented again was copied: every token rotated from that sign-in goes,
    the copier's and the owner's alike; another sign-in (another device) stays valid."""
    first = token_for(api_client, bob)
    other_device = token_for(api_client, bob)
    url = "/api/v1/auth/token/refresh/"
    second = api_client.post(url, {"refresh": first["refresh"]}, format="json").json()
    third = api_client.post(url, {"refresh": second["refresh"]}, format="json").json()

    reused = api_client.post(url, {"refresh": first["refresh"]}, format="json")

    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_not_valid"
    latest = api_client.post(url, {"refresh": third["refresh"]}, format="json")
    assert latest.status_code == 401
    elsewhere = api_client.post(url, {"refresh": other_device["refresh"]}, format="json")
    assert elsewhere.status_code == 200


def test_a_forged_reused_token_revokes_nothing(api_client, bob):
    tokens = token_for(api_client, bob)
    claims = jwt.decode(tokens["refresh"], options={"verify_signature": False})
    forged = jwt.encode(claims, "not-our-key-" * 4, algorithm="HS256")
    url = "/api/v1/auth/token/refresh/"
    assert api_client.post(url, {"refresh": forged}, format="json").status_code == 401
    assert api_client.post(url, {"refresh": tokens["refresh"]}, format="json").status_code == 200


def test_logout_revokes_the_refresh_token(api_client, bob):
    tokens = token_for(api_client, bob)

    response = api_client.post(
        "/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 204

    refused = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refused.status_code == 401


def test_logout_with_a_garbage_token_is_a_clear_400(api_client, db):
    response = api_client.post("/api/v1/auth/logout/", {"refresh": "not-a-token"}, format="json")
    assert response.status_code == 400
    assert "refresh" in response.json()["error"]["fields"]


def test_wrong_password_is_a_generic_401(api_client, bob):
    wrong = api_client.post(
        "/api/v1/auth/token/", {"email": bob.email, "password": "nope"}, format="json"
    )
    unknown = api_client.post(
        "/api/v1/auth/token/", {"email": "nobody@acme.test", "password": "nope"}, format="json"
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert wrong.json()["error"]["request_id"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not.a.jwt",
        "Bearer "
        + jwt.encode(
            {"token_type": "access", "user_id": "1"},
            "a-signing-key-that-is-not-ours-at-all-0123456789",
        ),
        "Bearer",
    ],
    ids=["malformed", "wrong-signature", "empty"],
)
def test_bad_tokens_get_a_json_401(api_client, db, header):
    api_client.credentials(HTTP_AUTHORIZATION=header)
    response = api_client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"]


def test_an_expired_access_token_gets_a_json_401(api_client, bob):
    now = int(time.time())
    expired = jwt.encode(
        {
            "token_type": "access",
            "user_id": str(bob.pk),
            "iat": now - 600,
            "exp": now - 300,
            "jti": "x",
        },
        settings.SIMPLE_JWT["SIGNING_KEY"],
        algorithm="HS256",
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")
    response = api_client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_a_password_change_invalidates_existing_access_tokens(api_client, bob):
    tokens = token_for(api_client, bob)
    bob.set_password("a-brand-new-passphrase")
    bob.save()

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get("/api/v1/auth/me/").status_code == 401


def test_a_password_change_ends_refresh_tokens_too(
    api_client, bob, django_capture_on_commit_callbacks
):
    tokens = token_for(api_client, bob)
    with django_capture_on_commit_callbacks(execute=True):
        bob.set_password("a-brand-new-passphrase")
        bob.save()
    refreshed = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 401


def test_a_deactivated_user_can_neither_use_nor_refresh_tokens(api_client, bob):
    tokens = token_for(api_client, bob)
    bob.is_active = False
    bob.save()

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get("/api/v1/auth/me/").status_code == 401
    api_client.credentials()
    refresh = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refresh.status_code == 401


def test_the_sixth_wrong_password_locks_the_account_out(api_client, bob, password):
    for _ in range(5):
        response = api_client.post(
            "/api/v1/auth/token/", {"email": bob.email, "password": "wrong"}, format="json"
        )
        assert response.status_code == 401

    sixth = api_client.post(
        "/api/v1/auth/token/", {"email": bob.email, "password": "wrong"}, format="json"
    )
    assert sixth.status_code == 429
    assert sixth.json()["error"]["code"] == "locked_out"
    assert "15 minutes" in sixth.json()["error"]["message"]
    assert int(sixth["Retry-After"]) == 15 * 60

    right_password_now = api_client.post(
        "/api/v1/auth/token/", {"email": bob.email, "password": password}, format="json"
    )
    assert right_password_now.status_code == 429
