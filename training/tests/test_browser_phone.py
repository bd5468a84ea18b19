"""Every learner page fits a phone (390 x 844): nothing scrolls sideways and the page's
main action is on screen without scrolling sideways."""

import pytest

from training import sessions
from training.models import Assignment
from training.tests.factories import graded_session, make_scenario
from training.tests.test_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _fits(page, action):
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], page.url
    box = action.bounding_box()
    assert box is not None, f"{page.url}: the main action is not shown"
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"], f"{page.url}: the main action is cut off"


def test_the_learner_pages_fit_a_phone(page, bob, acme, acme_team, password):
    scenario = make_scenario(acme, title="Renewal call with a title long enough to wrap twice")
    Assignment.objects.create(
        organization=acme, scenario=scenario, team=acme_team, passing_score=70
    )
    ended = graded_session(bob, scenario, 64)
    active = sessions.start_session(actor=bob, scenario_id=scenario.pk)
    page.set_viewport_size(PHONE)
    sign_in(page, bob.email, password)

    _fits(page, page.locator("table.stack").get_by_role("button", name="Start"))
    page.screenshot(path="/tmp/phone-home.png", full_page=True)
    assert "· score" not in page.locator("body").inner_text().replace("· score 64", "")
    _fits(page, page.get_by_role("button", name="Sign out"))

    page.goto("/scenarios/")
    _fits(page, page.get_by_role("button", name="Practise by voice"))
    page.goto("/sessions/")
    _fits(page, page.get_by_role("link", name=scenario.title).first)
    page.goto(f"/sessions/{active.pk}/")
    _fits(page, page.get_by_role("button", name="Send"))
    _fits(page, page.get_by_role("button", name="End and get my debrief"))
    page.goto(f"/sessions/{ended.pk}/")
    _fits(page, page.get_by_role("link", name="See the debrief"))  # above a long transcript
    _fits(page, page.get_by_role("button", name="Practise again"))
    page.screenshot(path="/tmp/phone-debrief.png", full_page=True)
    page.goto("/password/change/")
    _fits(page, page.get_by_role("button", name="Change password"))
    page.goto("/two-factor/")
    _fits(page, page.get_by_role("link", name="Home"))
