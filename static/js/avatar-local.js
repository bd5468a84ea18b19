// The local (offline) avatar: the face of avatar-face.js, driven by the voice call
// (voice-call.js) with the events a hosted avatar gets — the call's state and the reply's
// audio_started / interrupted / resumed / done — and by the reply audio actually being
// played: the mouth opens with its loudness (ReplyPlayer.loudness(), measured per 10 ms of
// each chunk at the time the learner hears it), so it shuts the instant playback is
// flushed on a barge-in. The container says which avatar the page shows
// (`data-avatar-provider`); a hosted video avatar replaces this one there.

import { AvatarFace } from "./avatar-face.js";

const INTERRUPTED_MS = 1500; // how long the face looks interrupted before listening again
const QUIET_DB = -48; // reply loudness (dBFS) at which the mouth is shut …
const LOUD_DB = -13; // … and fully open
const PRESENT_DB = -60; // quieter than this the mouth shuts at once (pauses between words)

// The call panel's display state (voice-call.js displayState) -> the face's state and line.
const LOOKS = {
  listening: ["listening", "Listening"],
  ptt_ready: ["listening", "Listening"],
  user_speaking: ["listening", "Listening to you"],
  thinking: ["thinking", "Thinking…"],
  replying: ["thinking", "Thinking…"],
  speaking: ["speaking", "Speaking"],
};

function clamp(value) {
  return Math.min(1, Math.max(0, value));
}

class LocalAvatar {
  constructor(container, player) {
    this.container = container;
    this.player = player;
    this.face = new AvatarFace(container, { name: container.dataset.persona || "Persona" });
    this.callState = "idle";
    this.callSentence = "Not in a call";
    this.interruptedUntil = 0;
    this.interruptedTimer = null;
    this.shown = 0;
    this.hearing = false; // a reply chunk is where the learner hears it now
    this.heardReply = false; // this reply has been heard (a gap in its audio is still it)
    this.mouthLoop();
  }

  /** The call's display state changed (every render of the panel). */
  show(key, sentence) {
    this.callState = key;
    this.callSentence = sentence;
    if (key !== "replying" && key !== "speaking") this.heardReply = false; // the reply is over
    this.update();
  }

  /** A server event of the call (PROTOCOL.md), as a hosted avatar would get it. */
  event(event) {
    switch (event.type) {
      case "session.ready":
        if (event.mode === "training") this.face.setName("Trainer");
        break;
      case "reply.interrupted":
        this.heardReply = false;
        this.interruptedUntil = performance.now() + INTERRUPTED_MS;
        window.clearTimeout(this.interruptedTimer);
        this.interruptedTimer = window.setTimeout(() => this.update(), INTERRUPTED_MS + 20);
        break;
      case "reply.resumed":
      case "reply.audio_started":
        this.interruptedUntil = 0;
        break;
      default:
    }
    this.update();
  }

  update() {
    const look = LOOKS[this.callState];
    if (!look) {
      // Not in a conversation (idle, connecting, ended, the microphone stopped): the face
      // waits, and its line says what the panel says.
      this.face.setState("idle", this.callSentence);
      return;
    }
    // The face speaks while its reply is heard, decided in the same frame as the mouth
    // (the panel re-renders on playback only every quarter second): the mouth never moves
    // under a "thinking" face, nor under a listening one while the learner talks over it
    // (until the barge-in flushes the reply).
    // … and through a gap in its audio (a late chunk), with its mouth shut.
    const speaking = this.hearing || (this.heardReply && this.callState === "replying");
    const [state, sentence] = speaking ? LOOKS.speaking : look;
    if (state !== "speaking" && performance.now() < this.interruptedUntil) {
      this.face.setState("interrupted", "Interrupted");
      return;
    }
    this.face.setState(state, sentence);
  }

  /** Every frame: the mouth follows the loudness of the reply being heard. */
  mouthLoop() {
    const draw = () => {
      const heard = this.player.loudness();
      if (Boolean(heard) !== this.hearing) {
        this.hearing = Boolean(heard);
        if (this.hearing) this.heardReply = true;
        this.update();
      }
      if (!heard || heard.rms <= 0 || 20 * Math.log10(heard.rms) < PRESENT_DB) {
        this.shown = 0; // nothing playing (or flushed): shut now, not gradually
        this.face.setMouth(0, 0);
      } else {
        const db = 20 * Math.log10(heard.rms);
        const target = clamp((db - QUIET_DB) / (LOUD_DB - QUIET_DB));
        // Open quickly, close a little slower: speech, not a flickering meter.
        this.shown += (target - this.shown) * (target > this.shown ? 0.6 : 0.35);
        // Many zero crossings (s, sh, ee) pull the lips wide rather than open.
        const spread = clamp((heard.zcr - 0.08) / 0.25);
        this.face.setMouth(this.shown * (1 - spread * 0.3), spread);
      }
      window.requestAnimationFrame(draw);
    };
    window.requestAnimationFrame(draw);
  }
}

/** The local face in `container` (an element with `data-avatar-provider="local"`),
 * played by `player` (a ReplyPlayer); null when the page shows no local face. */
export function mountAvatar(container, player) {
  if (!container || container.dataset.avatarProvider !== "local") return null;
  return new LocalAvatar(container, player);
}
