"""A learner checks the trainer's sources in a real browser: the answer's numbered sources
link to the passages the trainer was given."""

import re

import pytest

from knowledge.tests import samples
from knowledge.tests.factories import ingested
from training.tests.test_browser import sign_in
from training.tests.test_sessions import training_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_learner_opens_the_source_of_a_trainers_answer(stack_page, alice, bob, acme, password):
    page = stack_page
    ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "policies.html")
    training_scenario(acme)
    sign_in(page, bob.email, password)
    page.get_by_role("link", name="Scenarios").click()
    page.get_by_role("button", name="Start").click()
    box = page.get_by_label("Your message")
    box.fill("How many days do customers have to return unopened items?")
    box.press("Enter")
    sources = page.get_by_role("list", name="Sources")
    sources.wait_for(timeout=30_000)  # shown once the answer is complete
    links = sources.get_by_role("link")
    assert links.count() >= 1
    numbers = sources.locator("li").evaluate_all("items => items.map(i => i.value)")
    assert numbers == list(range(1, len(numbers) + 1)), numbers  # 1, 2, 3… by first use
    answer = page.locator("li.message.trainer").last.locator(".text").inner_text()
    cited = [int(n) for group in re.findall(r"\[([\d, ]+)\]", answer) for n in group.split(",")]
    assert set(cited) <= set(numbers), (answer, numbers)  # every number in the text is listed

    links.first.click()
    page.get_by_text("Source 1 of the trainer's answer").wait_for()
    assert page.get_by_role("heading", level=1).inner_text() == "policies"
    assert "30 days" in page.locator(".passage-text").inner_text()
    trail = page.get_by_role("navigation", name="Where in the document")
    assert "Returns" in trail.inner_text()
    assert page.get_by_role("link", name="Download the whole file").count() == 0
    page.screenshot(path="/tmp/cited-passage.png")

    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], "the passage page scrolls sideways on a phone"
    page.get_by_role("link", name="Back to the conversation").click()
    page.get_by_role("list", name="Sources").wait_for()
    assert page.console_errors == []
