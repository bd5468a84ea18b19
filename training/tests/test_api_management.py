"""Managing training through the API: assignments changed and withdrawn, filtering and
ordering of lists, and the analytics summary."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import TeamFactory, UserFactory
from training import assignments
from training.models import Assignment
from training.tests.factories import graded_session, make_scenario

pytestmark = pytest.mark.django_db


def test_a_manager_changes_and_withdraws_an_assignment(api_as, alice, bob, acme, acme_team):
    assignment = assignments.create_assignment(
        actor=alice, scenario_id=make_scenario(acme).pk, team_id=acme_team.pk
    )
    manager = api_as(alice)
    due = (timezone.now() + dt.timedelta(days=7)).replace(microsecond=0)

    changed = manager.patch(
        f"/api/v1/assignments/{assignment.pk}/",
        {"due_at": due.isoformat(), "passing_score": 85},
        format="json",
    )
    assert changed.status_code == 200
    assert changed.json()["passing_score"] == 85
    assert AuditEvent.objects.get(action="assignment.updated").changes["passing_score"] == [
        "70", "85",
    ]  # fmt: skip
    bad = manager.patch(
        f"/api/v1/assignments/{assignment.pk}/", {"passing_score": 101}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["passing_score"]

    learner = api_as(bob)
    assert learner.get(f"/api/v1/assignments/{assignment.pk}/").status_code == 200
    assert (
        learner.patch(
            f"/api/v1/assignments/{assignment.pk}/", {"passing_score": 1}, format="json"
        ).status_code
        == 403
    )
    assert learner.delete(f"/api/v1/assignments/{assignment.pk}/").status_code == 403

    assert manager.delete(f"/api/v1/assignments/{assignment.pk}/").status_code == 204
    assert not Assignment.objects.filter(pk=assignment.pk).exists()
    assert AuditEvent.objects.filter(action="assignment.deleted").count() == 1
    assert manager.get(f"/api/v1/assignments/{assignment.pk}/").status_code == 404


def test_lists_filter_and_order(api_as, alice, bob, acme, globex):
    first = make_scenario(acme, title="Alpha renewal")
    second = make_scenario(acme, title="Beta objection", published=False)
    theirs = make_scenario(globex, title="Alpha at Globex")
    manager = api_as(alice)

    titles = [s["title"] for s in manager.get("/api/v1/scenarios/?ordering=-title").json()[
        "results"]]  # fmt: skip
    assert titles == ["Beta objection", "Alpha renewal"]
    drafts = manager.get("/api/v1/scenarios/?published=false").json()["results"]
    assert [s["id"] for s in drafts] == [second.pk]
    named = manager.get("/api/v1/scenarios/?title=alpha").json()["results"]
    assert [s["id"] for s in named] == [first.pk]

    assignments.create_assignment(actor=alice, scenario_id=first.pk, learner_id=bob.pk)
    by_scenario = manager.get(f"/api/v1/assignments/?scenario={first.pk}").json()["results"]
    assert len(by_scenario) == 1
    # Another organization's id matches nothing, the same as an unknown one.
    assert manager.get(f"/api/v1/assignments/?scenario={theirs.pk}").json()["results"] == []
    assert manager.get("/api/v1/assignments/?scenario=999999").json()["results"] == []

    bad = manager.get("/api/v1/scenarios/?mode=karaoke")
    assert bad.status_code == 400
    assert "mode" in bad.json()["error"]["fields"]
    # Ordering by a field not offered is ignored, never an error.
    assert manager.get("/api/v1/scenarios/?ordering=persona_hidden_motivations").status_code == 200


def test_managers_list_the_organizations_sessions_and_learners_only_theirs(
    api_as, alice, bob, acme
):
    other = UserFactory(organization=acme)
    scenario = make_scenario(acme)
    mine = graded_session(bob, scenario, 80)
    graded_session(other, scenario, 60)
    open_one = graded_session(bob, scenario, None, ended=False)

    learner = api_as(bob)
    assert {s["id"] for s in learner.get("/api/v1/sessions/").json()["results"]} == {
        mine.pk, open_one.pk,
    }  # fmt: skip
    # `everyone` changes nothing for learners.
    assert len(learner.get("/api/v1/sessions/?everyone=true").json()["results"]) == 2
    ended = learner.get("/api/v1/sessions/?status=ended").json()["results"]
    assert [s["id"] for s in ended] == [mine.pk]

    manager = api_as(alice)
    assert manager.get("/api/v1/sessions/").json()["results"] == []  # their own
    everyone = manager.get("/api/v1/sessions/?everyone=true").json()["results"]
    assert len(everyone) == 3
    of_bob = manager.get(f"/api/v1/sessions/?learner={bob.pk}").json()["results"]
    assert {s["id"] for s in of_bob} == {mine.pk, open_one.pk}


def test_the_analytics_summary_counts_scores_and_assignment_completion(
    api_as, alice, bob, acme, globex
):
    team = TeamFactory(organization=acme, name="Support")
    carla = UserFactory(organization=acme, email="carla@acme.test")
    team.members.add(bob, carla)
    scenario = make_scenario(acme, title="Renewal call")
    assignment = assignments.create_assignment(
        actor=alice, scenario_id=scenario.pk, team_id=team.pk, passing_score=75
    )
    graded_session(bob, scenario, 90)
    graded_session(carla, scenario, 60)
    graded_session(carla, scenario, None, ended=False)
    graded_session(UserFactory(organization=globex), make_scenario(globex), 100)

    summary = api_as(alice).get("/api/v1/analytics/summary/").json()
    assert summary["sessions_started"] == 3
    assert summary["sessions_ended"] == 2
    assert summary["average_score"] == 75.0
    assert summary["learners_active"] == 2
    assert summary["by_scenario"] == [{
        "scenario_id": scenario.pk, "title": "Renewal call", "sessions": 3,
        "sessions_ended": 2, "average_score": 75.0, "best_score": 90,
    }]  # fmt: skip
    assert [row["email"] for row in summary["by_learner"]] == ["bob@acme.test", "carla@acme.test"]
    (progress,) = summary["assignments"]
    assert progress["assignment_id"] == assignment.pk
    assert progress["learners_assigned"] == 2
    assert progress["learners_completed"] == 1  # only bob passed 75

    mine = api_as(bob).get("/api/v1/analytics/summary/").json()
    assert mine["sessions_started"] == 1
    assert mine["average_score"] == 90.0
    assert mine["by_learner"] == []
    assert mine["assignments"][0]["learners_assigned"] == 1
    assert mine["assignments"][0]["learners_completed"] == 1

    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert api_as(alice).get("/api/v1/analytics/summary/", {"since": later}).json()[
        "sessions_started"] == 0  # fmt: skip
    bad = api_as(alice).get("/api/v1/analytics/summary/", {"since": "last tuesday"})
    assert bad.status_code == 400
    assert "since" in bad.json()["error"]["fields"]


def test_a_scenario_nobody_used_can_be_deleted_and_a_used_one_is_kept(api_as, alice, bob, acme):
    from training.models import Scenario

    unused = make_scenario(acme, title="Draft idea", published=False)
    used = make_scenario(acme, title="Renewal call")
    graded_session(bob, used, 70)
    manager = api_as(alice)

    assert api_as(bob).delete(f"/api/v1/scenarios/{unused.pk}/").status_code == 403
    assert manager.delete(f"/api/v1/scenarios/{unused.pk}/").status_code == 204
    assert not Scenario.objects.filter(family=unused.family).exists()
    assert AuditEvent.objects.get(action="scenario.deleted").changes["title"] == "Draft idea"

    kept = manager.delete(f"/api/v1/scenarios/{used.pk}/")
    assert kept.status_code == 409
    assert "Unpublish it" in kept.json()["error"]["message"]
    assert Scenario.objects.filter(pk=used.pk).exists()
