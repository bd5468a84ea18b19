"""A service's refusal reaches each surface once mapped: the API's error shape, a page."""

import pytest

from training.models import TrainingSession
from training.tests.factories import make_scenario


@pytest.mark.django_db
def test_a_service_refusal_reaches_the_api_in_the_error_shape(api_as, bob, acme):
    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    client.post(f"/api/v1/sessions/{session['id']}/end/")
    refused = client.post(f"/api/v1/sessions/{session['id']}/messages/", {"text": "Hi"},
                          format="json")  # fmt: skip
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "conflict"
    assert "This session has ended" in error["message"]


@pytest.mark.django_db
def test_a_page_refusal_says_why_with_its_status(client, bob, acme):
    client.force_login(bob)
    page = client.get("/knowledge/", HTTP_ACCEPT="text/html")
    assert page.status_code == 403
    assert "Only managers can manage the knowledge base." in page.content.decode()
    scripted = client.post("/knowledge/upload/", HTTP_HX_REQUEST="true")
    assert scripted.status_code == 403
    assert scripted["Content-Type"].startswith("text/plain")
    assert scripted.content.decode() == "Only managers can manage the knowledge base."


@pytest.mark.django_db
def test_starting_an_unpublished_scenario_on_the_page_is_refused_with_the_reason(
    client, alice, acme
):
    scenario = make_scenario(acme, published=False)
    client.force_login(alice)
    response = client.post(f"/scenarios/{scenario.pk}/start/", HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "not published yet" in response.content.decode()
    assert not TrainingSession.objects.exists()
