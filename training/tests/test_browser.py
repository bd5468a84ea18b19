"""A learner's conversation in a real browser, on the real stack (Daphne + Celery + Redis)."""

import pytest

from conftest import SCREENSHOTS
from training.models import Message, MessageStatus, SessionStatus, TrainingSession
from training.tests.factories import make_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Welcome").wait_for()


def test_a_learner_chats_reloads_mid_reply_and_gets_a_debrief(stack_page, bob, acme, password):
    page = stack_page
    make_scenario(
        acme,
        persona_objections="Honestly, a competitor quoted us thirty percent less for what "
        "looks like exactly the same support, and I need a reason to pay more than that.\n"
        "Your support was slow last time.",
    )
    sign_in(page, bob.email, password)
    page.get_by_role("link", name="Scenarios").click()
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Convince me.").wait_for()
    assert "Offline stand-in" in page.content()

    box = page.get_by_label("Your message")
    box.fill("What matters most to you in this renewal?")
    box.press("Enter")
    streaming = page.locator("li.message.streaming")
    streaming.wait_for()
    assert page.locator("#message-text").is_disabled()  # send is off while the persona replies
    for _ in range(200):  # some words have streamed in (the CSP forbids eval'd predicates)
        if len(streaming.locator(".text").inner_text()) > 10:
            break
        page.wait_for_timeout(25)
    assert 10 < len(streaming.locator(".text").inner_text())

    page.reload()  # mid-reply: the page catches up and shows the whole reply
    reply = page.locator("li.message.persona").last
    reply.get_by_text("a reason to pay more than that").wait_for(timeout=20_000)
    page.locator("li.message.streaming").wait_for(state="detached")
    assert reply.inner_text().count("competitor quoted us") == 1
    assert page.locator("#message-text").is_enabled()

    page.get_by_label("Your message").fill("Shall we book a review call next Tuesday?")
    page.get_by_role("button", name="Send").click()
    page.locator("li.message.persona").nth(2).get_by_text("slow last time").wait_for(timeout=20_000)

    page.once("dialog", lambda dialog: dialog.accept())  # "End this session now …?"
    page.get_by_role("button", name="End and get my debrief").click()
    page.get_by_text("/ 100").wait_for(timeout=30_000)
    assert "Shall we book a review call next Tuesday?" in page.locator("#debrief").inner_text()
    session = TrainingSession.objects.get(learner=bob)
    assert session.status == SessionStatus.ENDED
    assert not Message.objects.filter(status=MessageStatus.STREAMING).exists()
    assert page.locator("ul.messages").count() == 0  # no stray flash messages
    assert page.console_errors == []


@pytest.fixture
def slow_stand_in(monkeypatch):
    """The stack's stand-in waits 1.5 s before each word; replies count as slow after 0.5 s."""
    monkeypatch.setenv("LIVE_STACK_TOKEN_DELAY_MS", "1500")
    monkeypatch.setenv("REPLY_SLOW_START_SECONDS", "0.5")


def test_a_reply_slow_to_start_says_why_then_streams(slow_stand_in, stack_page, bob, acme,
                                                     password):  # fmt: skip
    """The page tells the learner the AI service is slow, then replaces the note with the
    reply as it streams."""
    page = stack_page
    make_scenario(acme)
    sign_in(page, bob.email, password)
    page.get_by_role("link", name="Scenarios").click()
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Convince me.").wait_for()
    box = page.get_by_label("Your message")
    box.fill("What matters most to you?")
    box.press("Enter")
    note = page.locator("li.message.streaming .reply-status")
    note.wait_for(timeout=10_000)
    assert "slow to answer" in note.inner_text()
    assert "Your message is saved" in note.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "slow_reply_status.png"))
    page.locator("li.message.persona").last.get_by_text("Fair question").wait_for(timeout=15_000)
    assert page.locator(".reply-status").count() == 0  # gone once words arrive
    assert page.console_errors == []
