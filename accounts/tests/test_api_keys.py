"""API keys: shown once, stored hashed, usable by servers, revocable, scoped to one organization."""

import pytest

from accounts.models import ApiKey
from accounts.tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_a_manager_creates_a_key_that_is_shown_once_and_stored_hashed(api_as, alice):
    client = api_as(alice)

    response = client.post("/api/v1/api-keys/", {"name": "CRM sync"}, format="json")

    assert response.status_code == 201
    body = response.json()
    full_key = body["key"]
    assert full_key.startswith(f"aa_{body['prefix']}_")
    stored = ApiKey.objects.get(pk=body["id"])
    assert full_key not in (stored.key_hash, stored.prefix)
    assert stored.organization == alice.organization
    listed = client.get("/api/v1/api-keys/").json()["results"]
    assert [key["prefix"] for key in listed] == [body["prefix"]]
    assert "key" not in listed[0]


def test_a_server_uses_its_key_and_last_use_is_recorded(api_client, acme):
    api_key, full_key = make_api_key(acme)

    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {full_key}")
    me = api_client.get("/api/v1/auth/me/")

    assert me.status_code == 200
    assert me.json()["organization"]["name"] == "Acme"
    assert me.json()["api_key"] == api_key.prefix
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_the_x_api_key_header_works_too(api_client, acme):
    _, full_key = make_api_key(acme)
    api_client.credentials(HTTP_X_API_KEY=full_key)
    assert api_client.get("/api/v1/auth/me/").status_code == 200


def test_a_revoked_key_is_refused(api_as, api_client, alice):
    created = api_as(alice).post("/api/v1/api-keys/", {"name": "old"}, format="json").json()

    revoked = api_as(alice).delete(f"/api/v1/api-keys/{created['id']}/")
    assert revoked.status_code == 204

    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {created['key']}")
    response = api_client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_invalid"


def test_an_unknown_key_is_refused(api_client, db):
    api_client.credentials(HTTP_AUTHORIZATION="Api-Key aa_deadbeef_nothing")
    response = api_client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert "not valid" in response.json()["error"]["message"]


def test_a_learner_cannot_create_keys(api_as, bob):
    response = api_as(bob).post("/api/v1/api-keys/", {"name": "mine"}, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_a_manager_cannot_create_an_admin_key_but_an_admin_can(api_as, alice, carol):
    refused = api_as(alice).post("/api/v1/api-keys/", {"name": "x", "role": "admin"}, format="json")
    assert refused.status_code == 403
    allowed = api_as(carol).post("/api/v1/api-keys/", {"name": "x", "role": "admin"}, format="json")
    assert allowed.status_code == 201


def test_a_key_without_a_name_is_a_clear_400(api_as, alice):
    response = api_as(alice).post("/api/v1/api-keys/", {"name": "  "}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]
    assert not ApiKey.objects.exists()


def test_another_organizations_key_cannot_be_revoked(api_as, alice, globex):
    foreign, _ = make_api_key(globex)
    response = api_as(alice).delete(f"/api/v1/api-keys/{foreign.pk}/")
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None
