"""Learner pages: dashboard, library, chat page with a streamed reply, debrief, history."""

import pytest
from django.urls import reverse

from accounts.models import Team
from training import assignments, debriefs, selectors, sessions
from training.models import Assignment, MessageStatus
from training.tests.factories import graded_session, make_scenario
from training.tests.run_turns import finish_reply
from training.tests.sse import read_all

pytestmark = pytest.mark.django_db


def test_the_dashboard_lists_assignments_and_recent_sessions(client, bob, acme, acme_team):
    scenario = make_scenario(acme, title="Renewal call")
    Assignment.objects.create(
        organization=acme, scenario=scenario, team=acme_team, passing_score=70
    )
    client.force_login(bob)
    page = client.get(reverse("home")).content.decode()
    assert "Renewal call" in page
    assert "Not started" in page
    assert "0 of 1 required" in page
    assert "Field Sales" in page

    # A session of it under way: in progress, though no attempt has ended yet.
    sessions.start_session(actor=bob, scenario_id=scenario.pk)
    page = client.get(reverse("home")).content.decode()
    assert "In progress" in page
    assert "Not started" not in page
    assert "0 of 1 required" in page


def test_managers_see_their_organizations_progress_on_the_dashboard(
    client, alice, bob, acme, acme_team, mallory
):
    scenario = make_scenario(acme, title="Renewal call")
    assignments.create_assignment(actor=alice, scenario_id=scenario.pk, team_id=acme_team.pk)
    graded_session(bob, scenario, 82)
    graded_session(mallory, make_scenario(mallory.organization, title="Globex call"), 12)

    client.force_login(alice)
    page = client.get(reverse("home")).content.decode()
    assert "Your organization&#x27;s progress" in page or "Your organization's progress" in page
    assert "1 started, 1 finished" in page
    assert "82" in page
    assert "1 of 1" in page  # Field Sales: bob passed the assignment
    assert "Globex call" not in page

    client.force_login(bob)
    assert "organization-progress" not in client.get(reverse("home")).content.decode()


def test_the_library_shows_published_scenarios_only_to_learners(client, bob, acme):
    make_scenario(acme, title="Published one")
    make_scenario(acme, title="Draft one", published=False)
    client.force_login(bob)
    page = client.get(reverse("training:library")).content.decode()
    assert "Published one" in page
    assert "Draft one" not in page


def test_a_manager_can_preview_a_draft(client, alice, acme):
    draft = make_scenario(acme, title="Draft one", published=False)
    client.force_login(alice)
    assert "Preview as a learner" in client.get(reverse("training:library")).content.decode()
    response = client.post(reverse("training:start", args=[draft.pk]), {"preview": "1"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "preview" in page
    assert "Convince me." in page


def test_chatting_on_the_page_streams_the_reply(client, bob, acme):
    scenario = make_scenario(acme)
    client.force_login(bob)
    session_url = client.post(reverse("training:start", args=[scenario.pk]))["Location"]
    session_id = int(session_url.rstrip("/").split("/")[-1])
    page = client.get(session_url).content.decode()
    assert "Offline stand-in" in page

    turn = client.post(
        reverse("training:post-message", args=[session_id]),
        {"text": "What matters to you?"},
        HTTP_HX_REQUEST="true",
    )
    assert turn.status_code == 200
    html = turn.content.decode()
    assert "What matters to you?" in html
    assert "data-stream-url" in html
    reply = selectors.access_session(bob, session_id).messages.get(status=MessageStatus.STREAMING)

    finish_reply(reply.pk)
    stream = client.get(reverse("training:reply-stream", args=[session_id, reply.pk]))
    body = read_all(stream).decode()
    assert "event: start" in body
    assert "event: token" in body
    assert "event: done" in body
    assert "Your price is 30% higher." in body

    reloaded = client.get(session_url).content.decode()
    assert "Your price is 30% higher." in reloaded
    assert "data-stream-url" not in reloaded


def test_page_errors_are_plain_sentences(client, bob, acme):
    scenario = make_scenario(acme)
    client.force_login(bob)
    session = sessions.start_session(actor=bob, scenario_id=scenario.pk)
    response = client.post(reverse("training:post-message", args=[session.pk]), {"text": " "})
    assert response.status_code == 400
    assert "empty" in response.content.decode()


def test_ending_shows_the_debrief_when_ready(client, bob, acme):
    scenario = make_scenario(acme)
    session = sessions.start_session(actor=bob, scenario_id=scenario.pk)
    posted = sessions.post_message(
        actor=bob, session_id=session.pk, text="Shall we book a review call next Tuesday?"
    )
    finish_reply(posted.reply.pk)
    client.force_login(bob)
    client.post(reverse("training:end", args=[session.pk]))
    waiting = client.get(reverse("training:debrief", args=[session.pk])).content.decode()
    assert "being prepared" in waiting
    assert 'hx-trigger="every 2s"' in waiting

    debriefs.grade_session(session.pk)
    ready = client.get(reverse("training:debrief", args=[session.pk])).content.decode()
    assert "/ 100" in ready
    assert "Shall we book a review call next Tuesday?" in ready
    assert "hx-trigger" not in ready
    history = client.get(reverse("training:history")).content.decode()
    assert scenario.title in history


def test_a_manager_sees_a_learners_session_but_cannot_write_in_it(client, alice, bob, acme):
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    client.force_login(alice)
    page = client.get(reverse("training:session", args=[session.pk])).content.decode()
    assert "Convince me." in page
    assert 'id="composer"' not in page
    response = client.post(reverse("training:post-message", args=[session.pk]), {"text": "hi"})
    assert response.status_code == 403


def test_the_learner_team_filter_is_their_own(client, bob, acme, globex):
    foreign_team = Team.objects.create(organization=globex, name="Globex team")
    Assignment.objects.create(
        organization=globex,
        scenario=make_scenario(globex, title="Globex secret"),
        team=foreign_team,
    )
    client.force_login(bob)
    assert "Globex secret" not in client.get(reverse("home")).content.decode()


def test_learner_and_manager_count_an_assignment_the_same_way(client, alice, bob, acme):
    from datetime import timedelta

    from training.analytics import summarize

    scenario = make_scenario(acme, title="Renewal call")
    graded_session(bob, scenario, 95)  # practised before being assigned: does not count
    assignment = assignments.create_assignment(
        actor=alice, scenario_id=scenario.pk, learner_id=bob.pk, passing_score=70
    )
    client.force_login(bob)
    assert "Not started" in client.get(reverse("home")).content.decode()
    assert summarize(alice).assignments[0]["learners_completed"] == 0

    later = graded_session(bob, scenario, 81)
    later.started_at = assignment.created_at + timedelta(minutes=1)
    later.save()
    assert "Passed" in client.get(reverse("home")).content.decode()
    assert summarize(alice).assignments[0]["learners_completed"] == 1


def test_an_active_session_shows_its_time_left_and_asks_before_ending(client, bob, acme):
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    client.force_login(bob)
    page = client.get(reverse("training:session", args=[session.pk])).content.decode()
    assert "Time left" in page
    assert "data-expires-at=" in page
    assert 'data-confirm="End this session now and get your debrief?' in page


def test_a_session_past_its_time_limit_is_ended_when_its_page_is_opened(client, bob, acme):
    from datetime import timedelta

    from django.utils import timezone

    from training.models import TrainingSession

    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    TrainingSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    client.force_login(bob)
    page = client.get(reverse("training:session", args=[session.pk])).content.decode()
    assert "This session has ended (time limit reached)" in page
    session.refresh_from_db()
    assert (session.status, session.ended_reason) == ("ended", "time_limit")


def test_the_debrief_offers_to_practise_the_current_version_again(client, bob, acme):
    scenario = make_scenario(acme, title="Renewal call")
    ended = graded_session(bob, scenario, 64)
    client.force_login(bob)
    page = client.get(reverse("training:session", args=[ended.pk])).content.decode()
    assert "Practise again" in page
    assert f'action="{reverse("training:start", args=[scenario.pk])}"' in page

    response = client.post(reverse("training:start", args=[scenario.pk]))
    assert response.status_code == 302
    assert selectors.sessions_for(bob).filter(status="active").count() == 1
