// The voice call panel (templates/voice/call_panel.html): one WebSocket per call speaking
// voice/PROTOCOL.md, the microphone (voice-capture.js) in, the persona's voice
// (voice-playback.js) out, and a state line that tells the truth: it says "Listening" only
// while the socket is open, the server listens and microphone frames are flowing.

import { MicrophoneCapture, explainMicrophoneError } from "./voice-capture.js";
import { ReplyPlayer } from "./voice-playback.js";
import { mountAvatar } from "./avatar-local.js";
import { HostedAvatar } from "./avatar-livekit.js";

const PROTOCOL = 1;
const PING_MS = 10000;
const PLAYBACK_REPORT_MS = 250;
const CONNECT_TIMEOUT_MS = 10000;
const STABLE_MS = 10000; // a call up this long has recovered: the backoff starts again
const MAX_RECONNECTS = 8;
const MAX_BUFFERED_BYTES = 32000; // one second of audio waiting to go out: drop, do not bunch

// Close codes (PROTOCOL.md): whether to reconnect, and what to tell the learner.
const RECONNECT = new Set([1006, 1012, 4408, 4500]);
const CLOSE_MESSAGES = {
  1000: "The call ended.",
  1006: "The connection to the voice server was lost.",
  1012: "The voice server is restarting.",
  4400: "The call was closed because this page sent data the server could not read. Reload the page to try again.",
  4401: "You are signed out. Sign in again, then come back to this page to call.",
  4402: "Your organization has used this month's voice minutes. A manager can raise the limit; meanwhile you can practise by text.",
  4403: "This call is not allowed: your account or role may have changed. Reload the page.",
  4404: "This session was not found, or it is not yours.",
  4408: "The call went quiet for too long.",
  4409: "This session is no longer active here: it ended, or the call continued in another window.",
  4410: "The session's time limit was reached. Your debrief is being prepared.",
  4413: "The server refused a message that was too large. Reload the page to try again.",
  4429: "Too many voice calls are open for your account (or audio arrived too fast). Close other calls, wait a moment, then press Start call.",
  4500: "The voice server had a problem.",
  4503: "Voice is unavailable right now. Try again in a few minutes, or practise by text.",
};

function backoffMs(attempt) {
  // Exponential, capped, with jitter so that many clients dropped at once (a server
  // restart) do not all come back in the same instant.
  const ceiling = Math.min(15000, 500 * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

class VoiceCall {
  constructor(panel) {
    this.panel = panel;
    this.el = {
      state: panel.querySelector("#voice-state"),
      start: panel.querySelector("#voice-start"),
      end: panel.querySelector("#voice-end"),
      ptt: panel.querySelector("#voice-ptt"),
      retryMic: panel.querySelector("#voice-retry-mic"),
      level: panel.querySelector("#voice-level"),
      notice: panel.querySelector("#voice-notice"),
      hint: panel.querySelector("#voice-hint"),
      transcript: panel.querySelector("#voice-transcript"),
      partial: panel.querySelector("#voice-partial"),
      metrics: panel.querySelector("#voice-metrics"),
      modes: Array.from(panel.querySelectorAll("input[name=voice-mode]")),
      faceRow: panel.querySelector("#voice-face-row"),
      faceShown: panel.querySelector("#voice-face"),
    };
    this.speaker = panel.dataset.persona || "Persona";
    this.mode = this.el.modes.find((input) => input.checked)?.value || "hands_free";
    this.phase = "idle"; // idle | starting | connecting | live | reconnecting | ended
    this.socket = null;
    this.serverState = null;
    this.started = false; // "start" sent on this socket
    this.pttHeld = false;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.stableTimer = null;
    this.reconnectAt = 0;
    this.fatalMessage = "";
    this.baselineId = null; // messages up to this id were there before the call
    this.framesSent = 0;
    this.level = 0;
    this.wasPlaying = false;
    this.endAfterPlayback = false;
    this.micFailure = ""; // why the microphone would not open, until the next try
    this.capture = new MicrophoneCapture({
      onFrame: (pcm) => this.sendFrame(pcm),
      onLevel: (rms) => {
        this.level = rms;
      },
    });
    this.capture.addEventListener("status", (event) => this.micStatus(event.detail));
    this.player = new ReplyPlayer();
    // The persona's face, when the page shows the local one (avatar-local.js).
    this.face = document.querySelector("[data-avatar-provider]");
    this.avatar = mountAvatar(this.face, this.player);
    this.hosted = null; // the hosted avatar's room (avatar-livekit.js), while joined
    this.bind();
    this.render();
    this.meterLoop();
  }

  bind() {
    this.el.start.addEventListener("click", () => this.start());
    this.el.end.addEventListener("click", () => this.end());
    this.el.retryMic.addEventListener("click", () => this.capture.restart());
    this.el.modes.forEach((input) => input.addEventListener("change", () => this.setMode(input.value)));
    if (this.face && this.el.faceShown) {
      // The learner may turn the face off for this session (kept for the tab's life).
      this.el.faceRow.hidden = false;
      this.el.faceShown.checked = window.sessionStorage.getItem(this.faceKey()) !== "off";
      this.showFace(this.el.faceShown.checked);
      this.el.faceShown.addEventListener("change", () => this.showFace(this.el.faceShown.checked));
    }
    const ptt = this.el.ptt;
    ptt.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      ptt.setPointerCapture(event.pointerId);
      this.pttDown();
    });
    ["pointerup", "pointercancel", "lostpointercapture"].forEach((name) =>
      ptt.addEventListener(name, () => this.pttUp()),
    );
    ptt.addEventListener("contextmenu", (event) => event.preventDefault()); // long-press on phones
    document.addEventListener("keydown", (event) => {
      if (event.code !== "Space" || !this.spaceIsOurs(event)) return;
      event.preventDefault();
      if (!event.repeat) this.pttDown();
    });
    document.addEventListener("keyup", (event) => {
      if (event.code !== "Space" || !this.pttHeld) return;
      event.preventDefault();
      this.pttUp();
    });
    window.addEventListener("blur", () => this.pttUp());
    window.addEventListener("pagehide", () => this.socket && this.socket.close(1000));
  }

  /** Space talks in push-to-talk, unless the learner is typing, or on another button or
   * link (Space presses those). A radio button (the mode switch just clicked) is ours. */
  spaceIsOurs(event) {
    if (this.mode !== "push_to_talk" || this.phase !== "live") return false;
    const target = event.target;
    if (target === this.el.ptt || !target.closest || target.disabled) return true;
    const field = target.closest("textarea, select, button, a[href], [contenteditable], input");
    return !field || (field.tagName === "INPUT" && ["radio", "checkbox"].includes(field.type));
  }

  // --- the call ------------------------------------------------------------------

  async start() {
    if (this.phase !== "idle" && this.phase !== "ended") return;
    this.clearNotice();
    this.micFailure = "";
    this.phase = "starting";
    this.endAfterPlayback = false;
    this.render();
    try {
      await this.capture.start();
    } catch (error) {
      const failure = explainMicrophoneError(error);
      this.phase = "idle";
      this.micFailure = failure.reason;
      this.showNotice(failure.message);
      this.render();
      return;
    }
    if (this.phase !== "starting") {
      this.capture.stop(); // ended while the microphone opened
      return;
    }
    // The playback route (the loopback takes a moment) is set up while the socket opens.
    this.player.prepare().then((route) => {
      this.panel.dataset.output = route;
      this.el.hint.hidden = route !== "direct";
    });
    this.attempt = 0;
    this.connect();
    this.tick = window.setInterval(() => this.everyQuarterSecond(), PLAYBACK_REPORT_MS);
  }

  connect() {
    this.phase = this.attempt ? "reconnecting" : "connecting";
    this.started = false;
    this.serverState = null;
    this.fatalMessage = "";
    this.render();
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}${this.panel.dataset.socketPath}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    const timeout = window.setTimeout(() => socket.readyState === WebSocket.CONNECTING && socket.close(), CONNECT_TIMEOUT_MS);
    socket.addEventListener("open", () => window.clearTimeout(timeout));
    socket.addEventListener("message", (event) => socket === this.socket && this.receive(event.data));
    socket.addEventListener("close", (event) => {
      window.clearTimeout(timeout);
      if (socket === this.socket) this.closed(event.code);
    });
  }

  closed(code) {
    this.socket = null;
    this.started = false;
    window.clearInterval(this.pinger);
    window.clearTimeout(this.stableTimer);
    this.el.partial.textContent = "";
    // The server ending the call (1000: the conversation is over) lets its goodbye play out;
    // any other close cuts the reply: the server finishes it, the next session.ready has it.
    if (code !== 1000 || this.phase === "ending") this.player.flush();
    this.wasPlaying = false;
    this.leaveHostedAvatar(); // the server closed its side with the socket
    if (this.phase === "ending" || this.phase === "ended" || this.phase === "idle") {
      this.finish(""); // the learner ended it
      return;
    }
    const message = this.closeMessage(code);
    if (RECONNECT.has(code) && this.attempt < MAX_RECONNECTS) {
      const delay = backoffMs(this.attempt);
      this.attempt += 1;
      this.phase = "reconnecting";
      this.reconnectAt = Date.now() + delay;
      this.showNotice(`${message} Reconnecting…`);
      this.reconnectTimer = window.setTimeout(() => this.connect(), delay);
      this.render();
      return;
    }
    if (RECONNECT.has(code)) {
      this.finish(`${message} Reconnecting did not work; press Start call to try again.`);
    } else if (code === 4401) {
      const next = encodeURIComponent(window.location.pathname);
      this.finish(message, { href: `${this.panel.dataset.loginUrl}?next=${next}`, text: "Sign in" });
    } else if (code === 4409 || code === 4410) {
      this.finish(message, { href: window.location.pathname, text: "Reload the page" });
    } else {
      this.finish(message);
    }
  }

  /** Our sentence for the code; the server's own where it tells which case it was (a
   * 4409 replaced call or ended session, why a 1000 ended it, the 4403 and 4429 reasons). */
  closeMessage(code) {
    const specific = [1000, 4403, 4409, 4429].includes(code) && this.fatalMessage;
    return specific || CLOSE_MESSAGES[code] || this.fatalMessage || `The call closed unexpectedly (code ${code}).`;
  }

  /** The call is over: release the microphone and the speaker. */
  finish(message, link = null) {
    window.clearTimeout(this.reconnectTimer);
    window.clearInterval(this.tick);
    window.clearInterval(this.pinger);
    this.capture.stop();
    this.leaveHostedAvatar();
    const player = this.player;
    window.setTimeout(() => {
      if (this.phase === "ended") player.close(); // unless a new call has started meanwhile
      if (this.endAfterPlayback) window.location.reload(); // the page shows the debrief
    }, player.remainingMs());
    this.pttHeld = false;
    this.phase = "ended";
    // A reply cut off by the end of the call is finished and stored by the server.
    this.el.transcript.querySelectorAll("li.reply:not(.done)").forEach((item) => {
      this.setTurnText(item, item.querySelector(".text").textContent, false, "streaming");
    });
    if (message) this.showNotice(message, link);
    this.render();
  }

  end() {
    window.clearTimeout(this.reconnectTimer);
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.phase = "ending";
      this.send({ type: "stop" }); // the server closes with 1000
      const socket = this.socket;
      window.setTimeout(() => socket.readyState !== WebSocket.CLOSED && socket.close(1000), 1500);
      this.render();
    } else {
      if (this.socket) this.socket.close(1000);
      this.socket = null;
      this.finish("");
    }
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  sendFrame(pcm) {
    const socket = this.socket;
    if (!socket || !this.started || socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) return; // a slow link: drop, stay real time
    socket.send(pcm);
    this.framesSent += 1;
  }

  setMode(mode) {
    if (this.pttHeld) this.pttUp();
    this.mode = mode;
    if (this.started) this.send({ type: "start", mode });
    this.render();
  }

  pttDown() {
    if (this.pttHeld || this.mode !== "push_to_talk" || this.phase !== "live") return;
    if (this.capture.status !== "running") return;
    this.pttHeld = true;
    this.send({ type: "ptt_down" });
    this.render();
  }

  pttUp() {
    if (!this.pttHeld) return;
    this.pttHeld = false;
    this.send({ type: "ptt_up" });
    this.render();
  }

  everyQuarterSecond() {
    // Playback reports while a reply plays, and one when it has played out.
    const playing = this.player.playing;
    if (this.player.replyId !== null && (playing || this.wasPlaying)) this.reportPlayback();
    if (playing !== this.wasPlaying) this.render();
    this.wasPlaying = playing;
    if (this.endAfterPlayback && !playing) {
      this.endAfterPlayback = false;
      this.end();
      window.location.reload(); // the page shows the debrief
    }
    if (this.phase === "reconnecting") this.render(); // the countdown
    this.panel.dataset.audioBytes = this.player.bytesReceived;
    this.panel.dataset.audioPlayedMs = this.player.totalPlayedMs();
    this.panel.dataset.framesSent = this.framesSent;
  }

  reportPlayback() {
    if (!this.started) return;
    const report = { type: "playback", reply_id: this.player.replyId, played_ms: this.player.playedMs() };
    if (this.player.silenced) report.via = "avatar"; // the learner hears the hosted face's audio
    this.send(report);
  }

  // --- server events ---------------------------------------------------------------

  receive(data) {
    if (typeof data !== "string") {
      this.player.push(data);
      return;
    }
    let event;
    try {
      event = JSON.parse(data);
    } catch (error) {
      return;
    }
    if (this.avatar) this.avatar.event(event); // first: the face looks interrupted, not idle
    const handler = this.handlers[event.type];
    if (handler) handler.call(this, event);
  }

  ready(event) {
    if (event.protocol !== PROTOCOL || event.input_sample_rate !== 16000) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
      this.finish("This page does not speak this voice server's protocol. Reload the page.");
      return;
    }
    this.speaker = event.mode === "training" ? "Trainer" : this.panel.dataset.persona || "Persona";
    this.showTranscript(event.messages || []);
    this.phase = "live";
    // A page with the LiveKit client can show the hosted avatar (PROTOCOL.md, avatar.ready),
    // unless the learner turned the face off.
    const faces = this.face && !this.face.hidden && this.face.dataset.livekitSrc ? ["livekit"] : [];
    this.send({ type: "start", mode: this.mode, avatar: faces });
    this.started = true;
    if (this.pttHeld) this.send({ type: "ptt_down" });
    if (this.attempt) this.clearNotice();
    window.clearInterval(this.pinger);
    this.pinger = window.setInterval(() => this.send({ type: "ping", t: Date.now() }), PING_MS);
    this.stableTimer = window.setTimeout(() => {
      this.attempt = 0;
    }, STABLE_MS);
    this.render();
  }

  // --- the transcript of this call ------------------------------------------------

  /** session.ready: the call's turns as stored (after a reconnect: nothing lost, nothing twice). */
  showTranscript(messages) {
    if (this.baselineId === null) {
      this.baselineId = messages.reduce((most, message) => Math.max(most, message.id), 0);
    }
    this.el.transcript.replaceChildren();
    for (const message of messages) {
      if (message.id <= this.baselineId) continue;
      const item = message.role === "learner" ? this.learnerTurn(message.id) : this.replyTurn(message.id);
      this.setTurnText(item, message.text, message.interrupted, message.status);
    }
  }

  turn(kind, id, label) {
    const item = document.createElement("li");
    item.className = `voice-turn ${kind}`;
    item.dataset.id = id;
    const speaker = document.createElement("span");
    speaker.className = "speaker";
    speaker.textContent = label;
    const text = document.createElement("span");
    text.className = "text";
    item.append(speaker, text);
    this.el.transcript.append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  learnerTurn(id) {
    return this.el.transcript.querySelector(`li.learner[data-id="${id}"]`) || this.turn("learner", id, "You");
  }

  replyTurn(id) {
    return this.el.transcript.querySelector(`li.reply[data-id="${id}"]`) || this.turn("reply", id, this.speaker);
  }

  setTurnText(item, text, interrupted = false, status = "") {
    item.querySelector(".text").textContent = text;
    item.classList.toggle("interrupted", Boolean(interrupted));
    item.classList.toggle("incomplete", status === "incomplete");
    item.classList.toggle("done", status !== "streaming");
    let mark = item.querySelector(".mark");
    if (interrupted || status === "streaming") {
      if (!mark) {
        mark = document.createElement("span");
        mark.className = "mark";
        item.append(mark);
      }
      mark.textContent = interrupted ? " (interrupted)" : " (still being written; reload to see it all)";
    } else if (mark) {
      mark.remove();
    }
  }

  markInterrupted(replyId) {
    const item = this.replyTurn(replyId);
    this.setTurnText(item, item.querySelector(".text").textContent, true);
  }

  // --- display -----------------------------------------------------------------------

  micStatus({ status, message }) {
    if (status === "dead" || status === "restarting") this.showNotice(message);
    else if (status === "running" && this.el.notice.dataset.source === "mic") this.clearNotice();
    if (status === "dead" || status === "restarting") this.el.notice.dataset.source = "mic";
    if (status === "dead" && this.pttHeld) this.pttUp();
    this.render();
  }

  /** What the call is really doing, local trouble first. Returns [key, sentence]. */
  displayState() {
    const mic = this.capture.status;
    switch (this.phase) {
      case "idle": {
        const failures = {
          denied: "Microphone blocked",
          missing: "No microphone found",
          insecure: "Voice needs a secure (https) page",
          busy: "Microphone unavailable",
          unsupported: "Voice is not supported in this browser",
          failed: "Microphone unavailable",
        };
        if (this.micFailure) return ["mic_failed", failures[this.micFailure] || failures.failed];
        return ["idle", "Not in a call"];
      }
      case "starting":
        return ["starting", "Starting the microphone…"];
      case "connecting":
        return ["connecting", "Connecting…"];
      case "reconnecting": {
        const seconds = Math.max(0, Math.ceil((this.reconnectAt - Date.now()) / 1000));
        return ["reconnecting", seconds && !this.socket ? `Reconnecting in ${seconds} s…` : "Reconnecting…"];
      }
      case "ending":
        return ["ending", "Ending the call…"];
      case "ended":
        return ["ended", "Call ended"];
      default:
    }
    if (mic === "dead") return ["mic_stopped", "Microphone stopped"];
    if (mic === "restarting") return ["mic_restarting", "Microphone stopped; restarting it…"];
    if (mic !== "running") return ["mic_stopped", "Microphone stopped"];
    if (this.serverState === "user_speaking") return ["user_speaking", "You are speaking"];
    if (this.player.playing) return ["speaking", `${this.speaker} is speaking`];
    if (this.serverState === "speaking") return ["replying", `${this.speaker} is replying`];
    if (this.serverState === "thinking") return ["thinking", `${this.speaker} is thinking…`];
    if (this.serverState === "listening") {
      if (this.mode === "push_to_talk") {
        return this.pttHeld ? ["listening", "Listening — release to send"] : ["ptt_ready", "Hold the button (or Space) to talk"];
      }
      return ["listening", "Listening"];
    }
    return ["connecting", "Connecting…"];
  }

  render() {
    const [key, sentence] = this.displayState();
    if (this.panel.dataset.state !== key || this.el.state.textContent !== sentence) {
      this.el.state.textContent = sentence;
      this.panel.dataset.state = key;
    }
    if (this.avatar) this.avatar.show(key, sentence);
    this.panel.dataset.phase = this.phase;
    const inCall = !["idle", "ended"].includes(this.phase);
    this.el.start.disabled = inCall;
    this.el.end.disabled = !inCall || this.phase === "ending";
    const ptt = this.mode === "push_to_talk";
    this.el.ptt.hidden = !ptt;
    this.el.ptt.disabled = !(ptt && this.phase === "live" && this.capture.status === "running");
    this.el.ptt.setAttribute("aria-pressed", this.pttHeld ? "true" : "false");
    this.el.ptt.classList.toggle("held", this.pttHeld);
    this.el.retryMic.hidden = !(this.capture.status === "dead" && inCall);
  }

  meterLoop() {
    // dBFS mapped onto the meter: -60 dB (silence) to 0 dB (full scale).
    let shown = 0;
    const draw = () => {
      const db = this.level > 0 ? 20 * Math.log10(this.level) : -100;
      const target = Math.min(1, Math.max(0, (db + 60) / 60));
      shown = target > shown ? target : shown * 0.85 + target * 0.15; // rise fast, fall slowly
      const value = shown < 0.005 ? 0 : Math.round(shown * 100) / 100;
      if (Number(this.el.level.value) !== value) this.el.level.value = value;
      window.requestAnimationFrame(draw);
    };
    window.requestAnimationFrame(draw);
  }

  /** A sentence for the learner in the alert area, with an optional {href, text} link. */
  showNotice(message, link = null) {
    const notice = this.el.notice;
    notice.textContent = message;
    delete notice.dataset.source;
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.textContent = link.text;
      notice.append(" ", anchor);
    }
    notice.hidden = false;
  }

  /** Join the hosted avatar's room (avatar.ready with provider "liveavatar"). While its
   * audio plays, ours is silenced but kept scheduled; if the room fails or drops, ours is
   * heard again from where the reply is, the page's own face returns and the server is
   * told to close the avatar (nobody sees it: it must not be billed). */
  joinHostedAvatar(event) {
    this.leaveHostedAvatar();
    if (!this.face) return;
    const hosted = new HostedAvatar(this.face, {
      onAudio: (playing) => this.player.silence(playing),
      onLost: (reason) => {
        if (this.hosted !== hosted) return;
        this.hosted = null;
        this.send({ type: "avatar_stop", reason });
        this.showNotice(`The video avatar stopped: ${reason}. The call goes on with voice.`);
      },
    });
    this.hosted = hosted;
    hosted.join(event).catch(() => {}); // onLost has told the learner and the server
  }

  faceKey() {
    return `voice-face:${this.panel.dataset.socketPath}`;
  }

  /** The learner shows or hides the face. Hidden, a hosted face is left and closed (the
   * server stops billing it); shown again, the drawn face returns at once and a hosted one
   * with the next call. */
  showFace(shown) {
    this.face.hidden = !shown;
    window.sessionStorage.setItem(this.faceKey(), shown ? "on" : "off");
    if (!shown && this.hosted) {
      this.leaveHostedAvatar();
      this.send({ type: "avatar_stop", reason: "the learner turned the face off" });
    }
  }

  leaveHostedAvatar() {
    const hosted = this.hosted;
    this.hosted = null;
    if (hosted) hosted.leave();
  }

  clearNotice() {
    this.el.notice.textContent = "";
    this.el.notice.hidden = true;
    delete this.el.notice.dataset.source;
  }
}

VoiceCall.prototype.handlers = {
  "session.ready": VoiceCall.prototype.ready,
  state(event) {
    this.serverState = event.state;
    this.render();
  },
  "vad.speech_started"() {
    this.panel.classList.add("speech-detected");
  },
  "vad.speech_stopped"() {
    this.panel.classList.remove("speech-detected");
  },
  "transcript.partial"(event) {
    this.el.partial.textContent = event.text;
  },
  "transcript.final"(event) {
    this.el.partial.textContent = "";
    this.setTurnText(this.learnerTurn(event.message_id), event.text);
  },
  "reply.text_delta"(event) {
    const item = this.replyTurn(event.reply_id);
    item.querySelector(".text").textContent += event.text;
  },
  "reply.audio_started"(event) {
    this.player.begin(event.reply_id, event.sample_rate);
    this.render();
  },
  "reply.audio_done"() {
    this.player.finish();
  },
  "reply.interrupted"(event) {
    if (event.reply_id === this.player.replyId) {
      this.player.flush(); // at once: the learner is talking over it
      this.reportPlayback(); // the position reached, so the server keeps what was heard
      this.wasPlaying = false;
    }
    if (!event.resumable) this.markInterrupted(event.reply_id); // reply.done confirms the text
    this.render();
  },
  "reply.resumed"(event) {
    if (event.reply_id === this.player.replyId) this.player.resume();
  },
  "reply.done"(event) {
    this.setTurnText(this.replyTurn(event.reply_id), event.text, event.interrupted, event.status);
    if (event.session_ended) {
      this.showNotice("The conversation has ended. Your debrief is being prepared.");
      this.endAfterPlayback = true;
    }
  },
  "avatar.ready"(event) {
    if (event.provider === "liveavatar") this.joinHostedAvatar(event);
  },
  "avatar.unavailable"(event) {
    this.leaveHostedAvatar(); // the server has closed it
    this.showNotice(event.message);
  },
  "turn.metrics"(event) {
    const ms = event.timings_ms && event.timings_ms.voice_to_voice;
    if (typeof ms === "number") {
      this.el.metrics.textContent = `Last reply began ${(ms / 1000).toFixed(1)} s after you stopped speaking.`;
      this.panel.dataset.voiceToVoiceMs = ms;
    }
  },
  pong(event) {
    if (typeof event.t === "number") this.panel.dataset.rttMs = Date.now() - event.t;
  },
  error(event) {
    if (event.fatal) {
      this.fatalMessage = event.message; // the close that follows shows it
    } else {
      this.showNotice(event.message);
    }
  },
};

function init() {
  const panel = document.getElementById("voice-call");
  if (panel) new VoiceCall(panel);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
