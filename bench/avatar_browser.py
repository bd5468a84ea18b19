"""The local face in Chromium: how soon its mouth moves after the reply becomes audible,
and what it costs the browser (issue 17).

    .venv/bin/python bench/avatar_browser.py [--seconds 40]

Runs as pytest (the browser tests' stack: Daphne and a Celery worker on a test database,
Debian's Chromium with Piper's sentence as its fake microphone, which loops, so the
learner talks again after every reply). Two calls of `--seconds` each, one with the drawn
face and one with the face off (scenario avatar "none"), so the cost is the difference.

- First mouth movement: an init script wraps `AudioBufferSourceNode.start` to learn when
  each reply chunk plays and finds the first 10 ms window loud enough to open the face's
  mouth in the first chunk of each reply (Piper leaves a little silence at the start), mapped to
  the page clock with `AudioContext.getOutputTimestamp()`; the face is sampled every
  animation frame. Figure: first frame with the mouth open minus that audible onset.
- Cost: CPU seconds of all Chromium processes over the call, and the main thread's long
  tasks (over 50 ms: what could delay sending the microphone's frames), face against no
  face. Capture itself runs on the audio thread (an AudioWorklet).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if __name__ != "__main__":  # pytest's import of this file (Django is set up by then)
    from training.tests.test_browser import sign_in
    from voice.tests.test_browser_voice import (  # noqa: F401 (fixtures)
        LONG_OBJECTION,
        spoken_wav,
        voice_chromium,
        wait_until,
    )

PROBE = """
window.__probe = { onsets: [], mouth: [], longTasks: 0, longTaskMs: 0 };
const OPENS = 10 ** (-48 / 20);  // avatar-local.js QUIET_DB: louder than this opens the mouth
const STEP = 0.01;  // its 10 ms loudness windows
const start = AudioBufferSourceNode.prototype.start;
let lastEnd = 0;
let waiting = false;  // a reply has begun and has not yet become loud enough
AudioBufferSourceNode.prototype.start = function (when, ...rest) {
  try {
    const context = this.context;
    const at = when || context.currentTime;
    if (this.buffer) {
      if (at > lastEnd + 0.15) waiting = true;  // after a gap: a new reply (chunks are 20 ms)
      lastEnd = Math.max(lastEnd, at) + this.buffer.duration;
    }
    if (this.buffer && waiting) {
      const data = this.buffer.getChannelData(0);
      const step = Math.round(this.buffer.sampleRate * STEP);
      let first = -1;
      for (let w = 0; w * step < data.length && first < 0; w += 1) {
        let power = 0;
        const end = Math.min(data.length, (w + 1) * step);
        for (let i = w * step; i < end; i += 1) power += data[i] * data[i];
        if (Math.sqrt(power / (end - w * step)) > OPENS) first = w * step;
      }
      if (first >= 0) {
        waiting = false;
        const stamp = context.getOutputTimestamp();
        const audible = at + first / this.buffer.sampleRate;
        window.__probe.onsets.push(stamp.performanceTime + (audible - stamp.contextTime) * 1000);
      }
    }
  } catch (error) { /* measuring must not break playback */ }
  return start.call(this, when, ...rest);
};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__probe.longTasks += 1;
    window.__probe.longTaskMs += entry.duration;
  }
}).observe({ type: "longtask", buffered: true });
document.addEventListener("DOMContentLoaded", () => {
  const face = document.getElementById("avatar");
  if (!face) return;
  let open = false;
  const sample = (now) => {
    const opening = Number(face.dataset.mouthOpen || 0) > 0;
    if (opening && !open) window.__probe.mouth.push(now);
    open = opening;
    window.requestAnimationFrame(sample);
  };
  window.requestAnimationFrame(sample);
});
"""

SECONDS = int(os.environ.get("BENCH_SECONDS", "40"))


def _chromium_cpu_seconds() -> float:
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if "chrom" in (process.info["name"] or "").lower():
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _call(page, scenario_title: str) -> dict:
    page.get_by_role("link", name="Scenarios").click()
    card = page.locator("article.scenario").filter(has_text=scenario_title)
    card.get_by_role("button", name="Practise by voice").click()
    page.get_by_role("heading", name="Voice call").wait_for()
    start = page.get_by_role("button", name="Start call")
    wait_until(page, start.is_enabled, 20, "Start call")
    cpu_before, wall_before = _chromium_cpu_seconds(), time.monotonic()
    start.click()
    page.wait_for_timeout(SECONDS * 1000)
    cpu, wall = _chromium_cpu_seconds() - cpu_before, time.monotonic() - wall_before
    probe = page.evaluate("window.__probe")
    end = page.get_by_role("button", name="End call")
    if end.count() and end.is_enabled():  # (the session may have ended on its own)
        end.click()
    return {"cpu": cpu, "wall": wall, **probe}


def _first_movements(onsets: list[float], mouth: list[float]) -> list[float]:
    delays = []
    for onset in onsets:
        later = [m for m in mouth if m >= onset - 50]  # a frame drawn just before may count
        if later and later[0] - onset < 1000:
            delays.append(later[0] - onset)
    return delays


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_measure_the_local_face(voice_chromium, live_stack, bob, acme, password, request):
    from conftest import _browser_tab
    from training.tests.factories import make_scenario

    objections = "\n".join([LONG_OBJECTION] * 30)  # the persona does not end the call
    print(f"\nwarm-up call, then two calls of {SECONDS} s", flush=True)

    make_scenario(acme, title="With a face", avatar="drawn:warm",
                  persona_objections=objections)  # fmt: skip
    make_scenario(acme, title="Without a face", avatar="none",
                  persona_objections=objections)  # fmt: skip
    results = {}
    for title in ("With a face", "Without a face", "With a face"):  # the first warms up
        with _browser_tab(voice_chromium, live_stack, request, height=900) as page:
            page.add_init_script(PROBE)
            sign_in(page, bob.email, password)
            results[title] = _call(page, title)
    face, bare = results["With a face"], results["Without a face"]
    delays = _first_movements(face["onsets"], face["mouth"])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n\ncores {os.cpu_count()}, load average {load}; {SECONDS} s calls")
    if delays:
        print(
            f"first mouth movement after the reply is audible: {len(delays)} replies, "
            f"median {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms "
            f"(each: {', '.join(f'{d:.0f}' for d in delays)})"
        )
    print("| call | Chromium CPU (all processes) | long tasks (> 50 ms) | replies heard |")
    print("| --- | --- | --- | --- |")
    for title, r in results.items():
        print(
            f"| {title} | {r['cpu']:.1f} s in {r['wall']:.0f} s ({100 * r['cpu'] / r['wall']:.0f}% "
            f"of a core) | {r['longTasks']} ({r['longTaskMs']:.0f} ms) | {len(r['onsets'])} |"
        )
    print(
        f"the face's cost: {100 * (face['cpu'] / face['wall'] - bare['cpu'] / bare['wall']):.1f}% "
        "of a core"
    )
    assert delays, "no reply was heard with the face on"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=SECONDS)
    os.environ["BENCH_SECONDS"] = str(parser.parse_args().seconds)
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:randomly", "-p", "no:cacheprovider"]))
