"""The training API: scenarios, sessions, messages (whole or streamed as SSE), debriefs."""

import pytest

from training.models import Message
from training.tests.factories import make_scenario
from training.tests.run_turns import finish_reply
from training.tests.sse import read_all


@pytest.mark.django_db
def test_a_learner_lists_scenarios_and_starts_a_session(api_as, bob, acme):
    scenario = make_scenario(acme)
    client = api_as(bob)
    listed = client.get("/api/v1/scenarios/").json()["results"]
    assert [s["title"] for s in listed] == ["Renewal call"]
    assert listed[0]["rubric"][0]["name"] == "Discovers the real concern"

    started = client.post("/api/v1/sessions/", {"scenario_id": scenario.pk}, format="json")
    assert started.status_code == 201
    body = started.json()
    assert body["status"] == "active"
    assert body["messages"][0]["text"] == "I'm not sure we're renewing. Convince me."
    page = client.get("/api/v1/sessions/").json()
    assert [s["id"] for s in page["results"]] == [body["id"]]
    assert page["next"] is None
    messages = client.get(f"/api/v1/sessions/{body['id']}/messages/list/").json()
    assert [m["text"] for m in messages["results"]] == [body["messages"][0]["text"]]


@pytest.mark.django_db(transaction=True)
def test_a_message_gets_its_reply_whole(api_as, bob, acme):
    """No worker runs: the reply is generated in this process (training.turns)."""
    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/messages/", {"text": "What matters to you?"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    assert response.json()["learner_message"]["text"] == "What matters to you?"
    assert "Your price is 30% higher." in response.json()["reply"]["text"]
    assert response.json()["reply"]["status"] == "complete"


@pytest.mark.django_db(transaction=True)
def test_a_message_reply_streams_as_server_sent_events(api_as, bob, acme):
    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/messages/", {"text": "Why would you leave?"},
        format="json", HTTP_ACCEPT="text/event-stream",
    )  # fmt: skip
    assert response["Content-Type"] == "text/event-stream"
    body = read_all(response).decode()
    assert body.startswith("event: accepted")
    assert "event: token" in body
    assert "event: done" in body


@pytest.mark.django_db
def test_bad_messages_get_clear_errors(api_as, bob, acme, settings):
    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    url = f"/api/v1/sessions/{session['id']}/messages/"
    empty = client.post(url, {"text": "  "}, format="json")
    assert empty.status_code == 400
    assert "empty" in empty.json()["error"]["message"]
    long = client.post(url, {"text": "x" * 4001}, format="json")
    assert long.status_code == 413
    assert "4,000" in long.json()["error"]["message"]
    assert long.json()["error"]["code"] == "too_long"  # the v1 code, kept
    client.post(f"/api/v1/sessions/{session['id']}/end/")
    ended = client.post(url, {"text": "hello"}, format="json")
    assert ended.status_code == 409
    assert ended.json()["error"]["code"] == "conflict"
    assert Message.objects.filter(role="learner").count() == 0


@pytest.mark.django_db
def test_the_debrief_is_pending_then_ready(api_as, bob, acme):
    from training import debriefs, sessions

    client = api_as(bob)
    session = client.post(
        "/api/v1/sessions/", {"scenario_id": make_scenario(acme).pk}, format="json"
    ).json()
    posted = sessions.post_message(actor=bob, session_id=session["id"], text="Can we book a call?")
    finish_reply(posted.reply.pk)
    client.post(f"/api/v1/sessions/{session['id']}/end/")
    assert client.get(f"/api/v1/sessions/{session['id']}/evaluation/").json()["status"] == "pending"
    debriefs.grade_session(session["id"])
    ready = client.get(f"/api/v1/sessions/{session['id']}/evaluation/").json()
    assert ready["status"] == "ready"
    assert 0 <= ready["overall"] <= 100


RENEWAL = {
    "title": "Pricing pushback",
    "summary": "A buyer wants a discount.",
    "mode": "roleplay",
    "difficulty": 4,
    "persona_name": "Lee",
    "persona_opening_line": "Your price is too high.",
    "persona_objections": "We can get it cheaper.",
    "published": True,
    "rubric": [
        {"name": "Defends value", "good_looks_like": "Ties price to outcomes.", "weight": 2}
    ],
}


@pytest.mark.django_db
def test_a_manager_authors_and_edits_scenarios_through_the_api(api_as, alice, bob):
    manager = api_as(alice)
    created = manager.post("/api/v1/scenarios/", RENEWAL, format="json")
    assert created.status_code == 201
    scenario = created.json()
    assert scenario["rubric"][0]["name"] == "Defends value"
    assert scenario["version"] == 1

    edited = manager.patch(f"/api/v1/scenarios/{scenario['id']}/", {"difficulty": 5}, format="json")
    assert edited.status_code == 200
    assert edited.json()["version"] == 2  # it was published
    assert edited.json()["difficulty"] == 5
    assert edited.json()["rubric"] == scenario["rubric"]
    learner_view = api_as(bob).get("/api/v1/scenarios/").json()["results"]
    assert [(s["title"], s["version"]) for s in learner_view] == [("Pricing pushback", 2)]


@pytest.mark.django_db
def test_learners_cannot_author_and_bad_scenarios_are_400(api_as, alice, bob):
    assert api_as(bob).post("/api/v1/scenarios/", RENEWAL, format="json").status_code == 403
    bad = api_as(alice).post("/api/v1/scenarios/", {**RENEWAL, "difficulty": 9}, format="json")
    assert bad.status_code == 400
    assert "difficulty" in bad.json()["error"]["fields"]


@pytest.mark.django_db
def test_managers_assign_and_learners_see_their_assignments(api_as, alice, bob, acme, acme_team):
    scenario = make_scenario(acme)
    created = api_as(alice).post(
        "/api/v1/assignments/",
        {"scenario_id": scenario.pk, "team_id": acme_team.pk, "passing_score": 80},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["scenario_title"] == "Renewal call"
    mine = api_as(bob).get("/api/v1/assignments/").json()["results"]
    assert [a["id"] for a in mine] == [created.json()["id"]]
    assert (
        api_as(bob)
        .post(
            "/api/v1/assignments/",
            {"scenario_id": scenario.pk, "learner_id": bob.pk},
            format="json",
        )
        .status_code
        == 403
    )


@pytest.mark.django_db
def test_foreign_ids_inside_an_assignment_are_not_found(api_as, alice, acme, globex):
    from accounts.tests.factories import TeamFactory, UserFactory
    from training.models import Assignment

    foreign_team = TeamFactory(organization=globex)
    foreign_learner = UserFactory(organization=globex)
    client = api_as(alice)
    ours = make_scenario(acme)
    theirs = make_scenario(globex)
    for payload in (
        {"scenario_id": theirs.pk, "learner_id": alice.pk},
        {"scenario_id": ours.pk, "team_id": foreign_team.pk},
        {"scenario_id": ours.pk, "learner_id": foreign_learner.pk},
    ):
        assert client.post("/api/v1/assignments/", payload, format="json").status_code == 404
    both = client.post(
        "/api/v1/assignments/",
        {"scenario_id": ours.pk, "learner_id": alice.pk, "team_id": None},
        format="json",
    )
    assert both.status_code == 201
    neither = client.post("/api/v1/assignments/", {"scenario_id": ours.pk}, format="json")
    assert neither.status_code == 400
    assert Assignment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_long_trainer_question_within_the_message_limit_gets_a_complete_answer(
    api_as, alice, bob, acme
):
    """Messages may be MESSAGE_MAX_CHARS long; retrieval reads a bounded part of them."""
    from knowledge.tests import samples
    from knowledge.tests.factories import ingested
    from training.models import ScenarioMode

    ingested(alice, samples.WARRANTY_MARKDOWN.encode(), "warranty.md")
    scenario = make_scenario(acme, mode=ScenarioMode.TRAINING, title="Support desk")
    client = api_as(bob)
    session = client.post("/api/v1/sessions/", {"scenario_id": scenario.pk}, format="json").json()
    question = "How long is the warranty? " + "Some context about the customer. " * 110
    assert 3_000 < len(question) <= 4_000
    response = client.post(
        f"/api/v1/sessions/{session['id']}/messages/", {"text": question}, format="json"
    )
    assert response.status_code == 201
    reply = response.json()["reply"]
    assert reply["status"] == "complete", reply
    assert reply["citations"]
