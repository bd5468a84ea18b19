"""A scenario's voice is chosen from the provider's list, and managers can hear each one."""

from __future__ import annotations

from training.tests.test_api import RENEWAL


def test_a_manager_hears_a_preview_of_a_voice(client, alice):
    client.force_login(alice)
    response = client.get("/voice/preview/?voice=joe")
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    audio = response.content
    assert audio[:4] == b"RIFF"
    assert len(audio) > 24000 * 2, "more than a second of speech"


def test_previews_are_for_managers_and_listed_voices(client, alice, bob):
    client.force_login(bob)
    assert client.get("/voice/preview/?voice=joe").status_code == 403
    client.force_login(alice)
    response = client.get("/voice/preview/?voice=<script>")
    assert response.status_code == 400
    assert b"Choose a voice from the list." in response.content


def test_a_scenario_takes_a_voice_from_the_list_only(api_as, alice):
    manager = api_as(alice)
    created = manager.post("/api/v1/scenarios/", {**RENEWAL, "voice": "joe"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["voice"] == "joe"
    refused = manager.post("/api/v1/scenarios/", {**RENEWAL, "voice": "robot-9000"}, format="json")
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "robot-9000" in message
    assert "joe" in message


def test_the_admin_offers_the_voices_as_a_list_with_previews(client, alice):
    client.force_login(alice)
    response = client.get("/admin/training/scenario/add/")
    page = response.content.decode()
    assert '<select name="voice"' in page
    assert 'value="joe"' in page
    assert "/voice/preview/?voice=joe" in page
