"""The session page in a real browser: the time left counts down and warns two minutes
before the end, and ending asks first."""

from datetime import timedelta

import pytest
from django.utils import timezone

from training import sessions
from training.models import TrainingSession
from training.tests.factories import make_scenario
from training.tests.test_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_timer_counts_down_and_warns_two_minutes_before_the_end(page, bob, acme, password):
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    sign_in(page, bob.email, password)
    TrainingSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() + timedelta(seconds=126)
    )
    page.goto(f"/sessions/{session.pk}/")
    timer = page.locator(".session-timer")
    first = timer.locator(".time-left").inner_text()
    assert first in ("2:06", "2:05", "2:04", "2:03", "2:02", "2:01"), first
    assert "warning" not in (timer.get_attribute("class") or "")

    page.locator(".session-timer.warning").wait_for(timeout=12_000)  # (CSP: no eval'd predicate)
    assert timer.locator(".time-left").inner_text() in ("2:00", "1:59", "1:58")
    assert page.locator("#timer-announcement").inner_text() == "Two minutes left in this session."
    page.screenshot(path="/tmp/session-timer.png")


def test_ending_asks_first(page, bob, acme, password):
    session = sessions.start_session(actor=bob, scenario_id=make_scenario(acme).pk)
    sign_in(page, bob.email, password)
    page.goto(f"/sessions/{session.pk}/")
    asked = []

    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="End and get my debrief").click()
    page.wait_for_timeout(500)
    assert asked
    assert asked[0].startswith("End this session now")
    session.refresh_from_db()
    assert session.is_active  # "Cancel" kept it going

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="End and get my debrief").click()
    page.get_by_role("heading", name="Debrief").wait_for()
    session.refresh_from_db()
    assert not session.is_active
