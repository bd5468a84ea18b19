"""The local avatar in a real browser, on the real stack: the persona's face listens,
thinks and speaks with the call, and its mouth follows the reply audio as it plays.

Chromium's fake microphone says the sentence of test_browser_voice.py (made by Piper, the
same Chromium flags); the face is sampled by an init script while the turn goes on.
"""

from __future__ import annotations

import re

import pytest

from conftest import _browser_tab
from training.tests.factories import make_scenario
from voice.models import AvatarSession
from voice.tests.avatar_server import AVATAR_ID, LIVEAVATAR_KEY, LiveAvatarStub, running_in_thread
from voice.tests.test_browser_voice import (  # noqa: F401 (spoken_wav, voice_chromium: fixtures)
    LONG_OBJECTION,
    spoken_wav,
    start_voice_session,
    voice_chromium,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every state the face enters with its accessible name at that moment, and its state and
# mouth opening every 25 ms, from the page's first moment (before the page's own modules).
FACE_RECORDER = """
window.__face = { states: [], labels: [], samples: [] };
document.addEventListener("DOMContentLoaded", () => {
  const face = document.getElementById("avatar");
  if (!face) return;
  const figure = face.querySelector(".avatar-figure");
  const record = () => {
    const states = window.__face.states;
    if (states[states.length - 1] === face.dataset.state) return;
    states.push(face.dataset.state);
    window.__face.labels.push(figure.getAttribute("aria-label"));
  };
  new MutationObserver(record).observe(face, { attributeFilter: ["data-state"] });
  record();
  window.setInterval(() => {
    window.__face.samples.push([face.dataset.state, Number(face.dataset.mouthOpen || 0)]);
  }, 25);
});
"""


@pytest.fixture
def face_page(voice_chromium, live_stack, request):  # noqa: F811
    with _browser_tab(voice_chromium, live_stack, request, height=900) as tab:
        tab.add_init_script(FACE_RECORDER)
        yield tab


@pytest.fixture
def room_stub(monkeypatch):
    """LiveAvatar, as the stack (another process) will use it: the stub on its own thread,
    the stack's environment pointing at it, and its rooms allowed by the page's CSP."""
    with running_in_thread(LiveAvatarStub(serve_room=True)) as stub:
        origin = f"127.0.0.1:{stub.port}"
        monkeypatch.setenv("AVATAR_PROVIDER", "liveavatar")
        monkeypatch.setenv("LIVEAVATAR_API_KEY", LIVEAVATAR_KEY)
        monkeypatch.setenv("LIVEAVATAR_AVATAR_ID", AVATAR_ID)
        monkeypatch.setenv("LIVEAVATAR_BASE_URL", stub.base_url)
        monkeypatch.setenv("PROVIDER_ENDPOINTS_ALLOW_PRIVATE", "true")
        monkeypatch.setenv("AVATAR_ROOM_ORIGINS", f"ws://{origin},http://{origin}")
        yield stub


@pytest.fixture
def hosted_face_page(room_stub, voice_chromium, live_stack, request):  # noqa: F811
    with _browser_tab(voice_chromium, live_stack, request, height=900) as tab:
        tab.add_init_script(FACE_RECORDER)
        yield tab


def face_state(page):
    return page.locator("#avatar").get_attribute("data-state")


def spoke_and_listened_again(page):
    states = page.evaluate("window.__face.states")
    return "speaking" in states and "listening" in states[states.index("speaking") :]


def sideways(page):
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    return scroll > client


def test_the_face_follows_the_turn_and_its_mouth_the_reply(face_page, bob, acme, password):
    page = face_page
    make_scenario(acme)
    start_voice_session(page, bob, password)
    face = page.locator('#avatar[data-avatar-provider="local"]')
    assert face.is_visible()
    page.get_by_role("img", name="Dana's face: not in a call").wait_for(timeout=10_000)

    page.get_by_role("button", name="Start call").click()
    wait_until(page, lambda: face_state(page) == "listening", 20, "the face listening")
    assert page.get_by_role("img", name="Dana's face: listening").is_visible()
    # "Listening", or "Listening to you" once the fake microphone's sentence has begun.
    assert face.locator(".avatar-state").inner_text().startswith("Listening")

    wait_until(page, lambda: face_state(page) == "speaking", 60, "the face speaking")
    page.wait_for_timeout(300)  # the mouth is open by now, mid-sentence
    page.screenshot(path="/tmp/avatar-desktop.png")
    face.screenshot(path="/tmp/avatar-face-speaking.png")
    assert page.get_by_role("img", name=re.compile(r"^Dana's face: (speaking|listening)")).count()

    wait_until(page, lambda: spoke_and_listened_again(page), 30, "listening after the reply")
    page.wait_for_timeout(500)
    recorded = page.evaluate("window.__face")
    states, labels, samples = recorded["states"], recorded["labels"], recorded["samples"]

    # listening -> thinking -> speaking -> listening, each named in the face's accessible name.
    positions = [states.index(state) for state in ("listening", "thinking", "speaking")]
    assert positions == sorted(positions), states
    for state, label in zip(states, labels, strict=True):
        if state != "idle":
            assert label.startswith(f"Dana's face: {state}"), (state, label)

    speaking = [opening for state, opening in samples if state == "speaking"]
    assert len(speaking) > 20, samples  # half a second of the reply at least
    assert max(speaking) > 0.2, speaking  # the mouth opens with the voice …
    assert len(set(speaking)) > 5, speaking  # … and moves with it, not on and off
    assert sum(opening > 0 for opening in speaking) > len(speaking) / 3, speaking
    before = samples[: next(i for i, (state, _) in enumerate(samples) if state == "speaking")]
    assert all(opening == 0 for _, opening in before), "shut before the reply plays"
    assert all(opening == 0 for _, opening in samples[-10:]), "shut after it"
    assert int(face.get_attribute("data-blinks")) > 0  # it blinks while it waits

    page.get_by_role("button", name="End call").click()
    page.get_by_role("img", name="Dana's face: call ended").wait_for(timeout=10_000)
    assert face_state(page) == "idle"
    assert page.console_errors == []


def test_the_face_fits_a_phone_and_keeps_still_for_reduced_motion(face_page, bob, acme,
                                                                  password):  # fmt: skip
    page = face_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(reduced_motion="reduce")
    make_scenario(acme)
    start_voice_session(page, bob, password)
    face = page.locator("#avatar")
    page.get_by_role("img", name="Dana's face: not in a call").wait_for(timeout=10_000)
    assert not sideways(page), "the page scrolls sideways"
    box = face.bounding_box()
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    start = page.get_by_role("button", name="Start call").bounding_box()
    assert start["y"] + start["height"] <= 844, "Start call is on the first screen"

    page.get_by_role("button", name="Start call").click()
    wait_until(page, lambda: face_state(page) == "speaking", 60, "the face speaking")
    page.wait_for_timeout(300)
    face.scroll_into_view_if_needed()
    page.screenshot(path="/tmp/avatar-phone.png")
    assert not sideways(page), "the page scrolls sideways during the call"

    wait_until(page, lambda: spoke_and_listened_again(page), 30, "listening after the reply")
    samples = page.evaluate("window.__face.samples")
    speaking = {opening for state, opening in samples if state == "speaking"}
    assert speaking <= {0, 0.25, 0.5}, speaking  # a few still positions, no flutter
    assert speaking & {0.25, 0.5}, speaking  # yet it still shows who talks
    assert face.get_attribute("data-blinks") == "0"
    page.get_by_role("button", name="End call").click()
    assert page.console_errors == []


def test_talked_over_the_face_shuts_its_mouth_at_once_and_looks_interrupted(face_page, bob, acme,
                                                                            password):  # fmt: skip
    """The fake microphone's sentence comes round again while a long reply plays: the
    playback is flushed, and the mouth with it."""
    page = face_page
    make_scenario(acme, persona_objections=LONG_OBJECTION)
    start_voice_session(page, bob, password)
    page.get_by_role("button", name="Start call").click()
    wait_until(
        page, lambda: "interrupted" in page.evaluate("window.__face.states"), 90, "interrupted"
    )
    page.get_by_role("img", name="Dana's face: interrupted").wait_for(timeout=1000)
    page.locator("#avatar").screenshot(path="/tmp/avatar-face-interrupted.png")
    page.wait_for_timeout(500)
    recorded = page.evaluate("window.__face")
    states, samples = recorded["states"], recorded["samples"]
    assert states.index("speaking") < states.index("interrupted"), states
    speaking = [opening for state, opening in samples if state == "speaking"]
    assert max(speaking) > 0.2, speaking
    interrupted = [opening for state, opening in samples if state == "interrupted"]
    # The first sample may fall between the flush and the next frame; then it is shut.
    assert len(interrupted) > 10, interrupted
    assert all(opening == 0 for opening in interrupted[1:]), interrupted
    page.get_by_role("button", name="End call").click()
    assert page.console_errors == []


def test_a_hosted_face_whose_room_fails_is_closed_and_the_call_goes_on(hosted_face_page,
                                                                       room_stub, bob, acme,
                                                                       password):  # fmt: skip
    """LiveAvatar opens (the stub), the page loads the vendored LiveKit client and joins
    the room it was given with the client token; the room refuses it. The learner is told
    in one sentence, the server closes the avatar (nobody sees it: it is not billed on),
    and the call goes on: the reply is heard, from the page's own face."""
    page = hosted_face_page
    stub = room_stub
    make_scenario(acme)
    start_voice_session(page, bob, password)
    page.get_by_role("button", name="Start call").click()
    notice = page.locator("#voice-notice")
    wait_until(
        page,
        lambda: notice.is_visible() and "video avatar stopped" in notice.inner_text(),
        40,
        "the notice that the video avatar stopped",
    )
    assert "The call goes on with voice" in notice.inner_text()
    session = stub.session()
    # The page joined the room it was given, with the browser's token and nothing else.
    assert set(stub.room_tokens) == {f"lk-client-{session.session_id}"}, stub.room_tokens
    assert page.evaluate("typeof window.LivekitClient.Room") == "function"
    wait_until(page, lambda: session.stopped_with is not None, 15, "the avatar closed")
    assert session.stopped_with == "session_token"

    # The call goes on with the page's face: the reply plays and its mouth moves.
    wait_until(page, lambda: spoke_and_listened_again(page), 90, "the reply heard")
    speaking = [o for state, o in page.evaluate("window.__face.samples") if state == "speaking"]
    assert max(speaking) > 0.2, speaking
    assert page.locator(".avatar-video").count() == 0
    assert page.locator("#avatar .avatar-figure").is_visible()

    record = AvatarSession.objects.get()
    assert record.ended_at is not None
    assert record.provider_session_id == session.session_id
    assert "the page" in record.ended_reason, record.ended_reason
    html = page.content()
    assert LIVEAVATAR_KEY not in html
    assert session.session_token not in html
    # The room's origin is allowed by the page's CSP (it was refused by the room itself).
    blocked = [e for e in page.console_errors if "Content Security Policy" in e]
    assert blocked == [], blocked
    assert stub.problems == []
    page.get_by_role("button", name="End call").click()


def test_the_scenarios_look_and_the_learners_switch(face_page, bob, acme, password):
    """A scenario's author picks the drawn face's look; the learner can turn the face off
    for the session (remembered on reload), and the call works without it."""
    page = face_page
    make_scenario(acme, avatar="drawn:deep")
    start_voice_session(page, bob, password)
    face = page.locator("#avatar")
    assert face.get_attribute("data-look") == "deep"
    assert face.get_attribute("data-livekit-src") is None  # a drawn face: no hosted one
    page.get_by_role("img", name="Dana's face: not in a call").wait_for(timeout=10_000)
    skin = page.evaluate("getComputedStyle(document.querySelector('#avatar .avatar-skin')).fill")
    assert skin == "rgb(141, 90, 59)", skin
    face.screenshot(path="/tmp/avatar-look-deep.png")

    switch = page.get_by_label("Show Dana's face")
    switch.uncheck()
    assert not face.is_visible()
    page.reload()
    page.get_by_role("heading", name="Voice call").wait_for()
    assert not page.get_by_label("Show Dana's face").is_checked()
    assert not page.locator("#avatar").is_visible()

    page.get_by_role("button", name="Start call").click()
    page.locator("#voice-transcript li.reply").first.wait_for(timeout=120_000)
    assert not page.locator("#avatar").is_visible()
    page.get_by_role("button", name="End call").click()
    assert page.console_errors == []


def test_a_scenario_without_a_face_shows_none(face_page, bob, acme, password):
    page = face_page
    make_scenario(acme, avatar="none")
    start_voice_session(page, bob, password)
    assert page.locator("#avatar").count() == 0
    assert not page.locator("#voice-face-row").is_visible()
    start = page.get_by_role("button", name="Start call")
    wait_until(page, start.is_enabled, 10, "Start call enabled by the page's script")
