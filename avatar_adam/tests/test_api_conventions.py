"""API conventions: rate limits stored in Redis with Retry-After, and Idempotency-Key."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import make_api_key
from knowledge.models import Document
from training.models import Message, TrainingSession
from training.tests.factories import make_scenario

pytestmark = pytest.mark.django_db


def test_a_retried_session_start_returns_the_first_answer_and_creates_nothing(api_as, bob, acme):
    client = api_as(bob)
    scenario = make_scenario(acme)
    headers = {"HTTP_IDEMPOTENCY_KEY": "start-123"}
    first = client.post("/api/v1/sessions/", {"scenario_id": scenario.pk}, format="json", **headers)
    again = client.post("/api/v1/sessions/", {"scenario_id": scenario.pk}, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert TrainingSession.objects.count() == 1


def test_the_same_key_with_another_body_is_refused(api_as, bob, acme):
    client = api_as(bob)
    one, two = make_scenario(acme), make_scenario(acme, title="Other")
    headers = {"HTTP_IDEMPOTENCY_KEY": "k1"}
    client.post("/api/v1/sessions/", {"scenario_id": one.pk}, format="json", **headers)
    reused = client.post("/api/v1/sessions/", {"scenario_id": two.pk}, format="json", **headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert TrainingSession.objects.count() == 1


def test_a_retried_message_is_stored_once(api_as, bob, acme, settings):
    settings.API_REPLY_WAIT_SECONDS = 0.2  # no worker here: the reply stays "being written"
    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    url = f"/api/v1/sessions/{session['id']}/messages/"
    headers = {"HTTP_IDEMPOTENCY_KEY": "msg-1"}
    first = client.post(url, {"text": "Hello"}, format="json", **headers)
    again = client.post(url, {"text": "Hello"}, format="json", **headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["learner_message"]["id"] == first.json()["learner_message"]["id"]
    assert Message.objects.filter(role="learner").count() == 1


def test_a_retried_upload_is_stored_once(api_as, alice):
    client = api_as(alice)
    headers = {"HTTP_IDEMPOTENCY_KEY": "upload-7"}
    for _ in range(2):
        response = client.post(
            "/api/v1/knowledge/documents/",
            {"file": SimpleUploadedFile("a.txt", b"Refunds in five days.")},
            format="multipart",
            **headers,
        )
        assert response.status_code == 202
    assert Document.objects.count() == 1


@pytest.fixture
def rates(monkeypatch):
    """Set throttle rates for one test (DRF reads them into a class attribute at import)."""
    from rest_framework.throttling import SimpleRateThrottle

    def set_rates(**overrides):
        monkeypatch.setattr(
            SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **overrides}
        )

    return set_rates


def test_message_posting_has_its_own_stricter_limit(api_as, bob, acme, rates):
    rates(messages="2/min")
    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    url = f"/api/v1/sessions/{session['id']}/messages/"
    codes = [client.post(url, {"text": " "}, format="json").status_code for _ in range(3)]
    assert codes[:2] == [400, 400]
    assert codes[2] == 429
    limited = client.post(url, {"text": " "}, format="json")
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["error"]["code"] == "throttled"


def test_api_keys_are_limited_per_key(api_client, acme, rates):
    rates(api_key="2/min")
    _, first_key = make_api_key(acme, name="one")
    _, second_key = make_api_key(acme, name="two")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {first_key}")
    codes = [api_client.get("/api/v1/auth/me/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {second_key}")
    assert api_client.get("/api/v1/auth/me/").status_code == 200  # another key, own budget
