// The learner's microphone: getUserMedia with the browser's echo canceller, noise
// suppression and gain control on, an AudioWorklet (voice-capture-worklet.js) that makes
// 20 ms frames of 16 kHz 16-bit mono PCM, and a watchdog. Microphones die quietly — a
// headset unplugged, another app taking the device, the OS muting it, the audio thread
// stalling — and a call page that still says "Listening" then lies. So the watchdog
// restarts capture when frames stop for 1.5 s or the track ends or mutes, and if that
// fails reports "dead" so the page can say plainly that the microphone stopped.

const WORKLET_URL = new URL("./voice-capture-worklet.js", import.meta.url);
const CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  video: false,
};
const STALL_MS = 1500; // no frame for this long while capturing: the microphone stopped
const MUTE_GRACE_MS = 500; // a mute shorter than this (a device switch) is not a failure
const RESTARTS = 2; // attempts before giving up, counted until frames flow again
const HEALTHY_MS = 5000; // frames flowing this long: the restart budget is refilled

/** A failure to open the microphone, with a sentence for the learner. */
export class MicrophoneError extends Error {
  constructor(message, reason) {
    super(message);
    this.name = "MicrophoneError";
    this.reason = reason; // "denied" | "missing" | "busy" | "insecure" | "unsupported" | "failed"
  }
}

/** The sentence a learner needs for a getUserMedia / AudioContext failure; `retry` names
 * the button that tries again. */
export function explainMicrophoneError(error, retry = "Start call") {
  if (error instanceof MicrophoneError) return error;
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return new MicrophoneError(
      "Microphone access was denied. Allow the microphone for this site (the icon in the " +
        `address bar or the browser's site settings), then press ${retry} again.`,
      "denied",
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return new MicrophoneError(
      `No microphone was found. Connect a microphone or headset, then press ${retry} again.`,
      "missing",
    );
  }
  if (name === "NotReadableError" || name === "AbortError" || name === "TrackStartError") {
    return new MicrophoneError(
      "The microphone could not be started: another app may be using it. Close that app, " +
        `then press ${retry} again.`,
      "busy",
    );
  }
  return new MicrophoneError(
    `The microphone could not be started (${(error && error.message) || error}).`,
    "failed",
  );
}

function checkSupport() {
  if (!window.isSecureContext) {
    throw new MicrophoneError(
      "Voice calls need a secure connection: open this page over https:// (browsers only " +
        "allow the microphone on secure pages).",
      "insecure",
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MicrophoneError("This browser cannot use a microphone on web pages.", "unsupported");
  }
  if (typeof AudioWorkletNode === "undefined") {
    throw new MicrophoneError(
      "This browser cannot process microphone audio. Use a current Chrome, Edge, Firefox or Safari.",
      "unsupported",
    );
  }
}

/**
 * Capture from the microphone. `onFrame(ArrayBuffer)` gets each 640-byte frame,
 * `onLevel(0..1)` the frame's loudness. Dispatches "status" events with
 * `detail: {status, message}`; status is "starting", "running", "restarting", "dead" or
 * "stopped".
 */
export class MicrophoneCapture extends EventTarget {
  constructor({ onFrame, onLevel }) {
    super();
    this.onFrame = onFrame;
    this.onLevel = onLevel;
    this.status = "stopped";
    this.stream = null;
    this.context = null;
    this.node = null;
    this.lastFrameAt = 0;
    this.healthySince = 0;
    this.restartsLeft = RESTARTS;
    this.watchdog = null;
    this.muteTimer = null;
    this.generation = 0; // bumps on every (re)open, so a stale open's callbacks do nothing
  }

  setStatus(status, message = "") {
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: { status, message } }));
  }

  /** Open the microphone (call from a click: the AudioContext needs the gesture). */
  async start() {
    checkSupport();
    this.restartsLeft = RESTARTS;
    this.setStatus("starting");
    try {
      await this.open();
    } catch (error) {
      this.close();
      this.setStatus("stopped");
      throw explainMicrophoneError(error);
    }
    if (this.status !== "starting") return; // stopped while it opened
    this.watchdog = window.setInterval(() => this.check(), 250);
    this.setStatus("running");
  }

  async open() {
    const generation = ++this.generation;
    const stream = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
    if (generation !== this.generation) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    this.stream = stream;
    const track = stream.getAudioTracks()[0];
    if (!track) throw new MicrophoneError("The browser gave no microphone track.", "missing");
    track.addEventListener("ended", () => generation === this.generation && this.fail("ended"));
    track.addEventListener("mute", () => generation === this.generation && this.muted());
    track.addEventListener("unmute", () => window.clearTimeout(this.muteTimer));

    // A context of its own at the device's rate; the worklet resamples to 16 kHz.
    const context = new AudioContext({ latencyHint: "interactive" });
    this.context = context;
    await context.audioWorklet.addModule(WORKLET_URL);
    if (generation !== this.generation) return;
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "voice-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
    });
    node.port.onmessage = (event) => {
      if (generation !== this.generation) return;
      const now = performance.now();
      if (!this.lastFrameAt || now - this.lastFrameAt > STALL_MS) this.healthySince = now;
      this.lastFrameAt = now;
      this.onLevel(event.data.rms);
      this.onFrame(event.data.pcm);
    };
    // The graph must reach the destination to be pulled; a silent gain keeps the
    // microphone out of the speakers.
    const silent = context.createGain();
    silent.gain.value = 0;
    source.connect(node).connect(silent).connect(context.destination);
    this.node = node;
    if (context.state !== "running") await context.resume();
    this.lastFrameAt = performance.now(); // the stall clock starts now
    this.healthySince = this.lastFrameAt;
  }

  /** The watchdog's tick: frames must keep coming while we capture. */
  check() {
    if (this.status !== "running") return;
    const now = performance.now();
    const track = this.stream && this.stream.getAudioTracks()[0];
    if (!track || track.readyState === "ended") {
      this.fail("ended"); // a stopped track may still feed the graph silence
    } else if (now - this.lastFrameAt > STALL_MS) {
      this.fail("stalled");
    } else if (this.restartsLeft < RESTARTS && now - this.healthySince > HEALTHY_MS) {
      this.restartsLeft = RESTARTS;
    }
  }

  muted() {
    window.clearTimeout(this.muteTimer);
    this.muteTimer = window.setTimeout(() => {
      const track = this.stream && this.stream.getAudioTracks()[0];
      if (track && track.muted) this.fail("muted");
    }, MUTE_GRACE_MS);
  }

  /** The microphone stopped: reopen it, or report it dead. */
  async fail(why) {
    if (this.status !== "running") return;
    const reasons = {
      ended: "it was disconnected or taken by another app",
      muted: "the system or the device muted it",
      stalled: "no sound has come from it",
    };
    const stopped = `Microphone stopped: ${reasons[why]}.`;
    let failure = `${stopped} Check it is connected and not muted, then press Restart microphone.`;
    this.close();
    while (this.restartsLeft > 0) {
      this.restartsLeft -= 1;
      this.setStatus("restarting", `${stopped} Restarting it…`);
      try {
        await this.open();
        if (this.status === "restarting") this.setStatus("running");
        return;
      } catch (error) {
        this.close();
        if (this.status !== "restarting") return; // the call ended meanwhile
        failure = `Microphone stopped. ${explainMicrophoneError(error, "Restart microphone").message}`;
        await new Promise((resolve) => window.setTimeout(resolve, 500));
      }
    }
    this.setStatus("dead", failure);
  }

  /** Try again after "dead" (from a click). */
  async restart() {
    this.close();
    this.restartsLeft = RESTARTS;
    this.setStatus("restarting", "Restarting the microphone…");
    try {
      await this.open();
      if (this.status === "restarting") this.setStatus("running");
    } catch (error) {
      this.close();
      if (this.status !== "restarting") return;
      const failure = explainMicrophoneError(error, "Restart microphone");
      this.setStatus("dead", `Microphone stopped. ${failure.message}`);
    }
  }

  close() {
    this.generation += 1;
    window.clearTimeout(this.muteTimer);
    if (this.node) {
      this.node.port.postMessage("stop");
      this.node.port.onmessage = null;
      this.node.disconnect();
      this.node = null;
    }
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.lastFrameAt = 0;
    this.onLevel(0);
  }

  /** Release the microphone for good (the call ended). */
  stop() {
    window.clearInterval(this.watchdog);
    this.watchdog = null;
    this.close();
    this.setStatus("stopped");
  }
}
