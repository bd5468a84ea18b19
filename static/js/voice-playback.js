// The persona's voice: a queue of 24 kHz 16-bit PCM chunks (40 ms each, sent ~300 ms
// ahead of real time) scheduled back to back on a Web Audio clock, so a reply starts as
// its first chunk arrives and never gaps while the server keeps ahead. It knows how much
// of the current reply has been played (the server keeps exactly what the learner heard
// when they interrupt), and flushes at once on a barge-in.
//
// Why the peer-connection loopback: Chrome's echo canceller only removes audio that
// reaches the speakers through an RTCPeerConnection (crbug.com/687574). Audio played
// straight from Web Audio comes back into the microphone, and the persona would
// interrupt itself. So the Web Audio output goes into a MediaStream, over a local
// pc1 -> pc2 connection, and plays from pc2's stream in an <audio> element. When that
// cannot be set up, the audio plays directly and the page suggests headphones.

const WIRE_RATE = 24000; // PROTOCOL.md: reply audio is 24 kHz 16-bit mono PCM
const START_LEAD_S = 0.06; // a new reply (or one after an underrun) starts this far ahead
const LOOPBACK_TIMEOUT_MS = 4000;
const LEVEL_STEP_S = 0.01; // the loudness envelope a face's mouth follows: one value per 10 ms

function onceWithin(promise, milliseconds, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = window.setTimeout(() => reject(new Error(`${what} timed out`)), milliseconds);
  });
  return Promise.race([promise, timeout]).finally(() => window.clearTimeout(timer));
}

/** pc1 sends `stream`'s track to pc2 on this page; resolves with what pc2 receives. */
async function openLoopback(stream) {
  const sending = new RTCPeerConnection();
  const receiving = new RTCPeerConnection();
  const close = () => {
    sending.close();
    receiving.close();
  };
  try {
    sending.addEventListener("icecandidate", (event) => {
      if (event.candidate) receiving.addIceCandidate(event.candidate).catch(() => {});
    });
    receiving.addEventListener("icecandidate", (event) => {
      if (event.candidate) sending.addIceCandidate(event.candidate).catch(() => {});
    });
    const received = new Promise((resolve) => {
      receiving.addEventListener("track", (event) => {
        // Play as soon as it arrives: the jitter buffer only adds latency on a loopback.
        if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
        else if ("playoutDelayHint" in event.receiver) event.receiver.playoutDelayHint = 0;
        resolve(new MediaStream([event.track]));
      });
    });
    const connected = new Promise((resolve, reject) => {
      receiving.addEventListener("connectionstatechange", () => {
        if (receiving.connectionState === "connected") resolve();
        if (receiving.connectionState === "failed") reject(new Error("loopback failed"));
      });
    });
    stream.getAudioTracks().forEach((track) => sending.addTrack(track, stream));
    await sending.setLocalDescription(await sending.createOffer());
    await receiving.setRemoteDescription(sending.localDescription);
    await receiving.setLocalDescription(await receiving.createAnswer());
    await sending.setRemoteDescription(receiving.localDescription);
    const output = await onceWithin(received, LOOPBACK_TIMEOUT_MS, "the loopback's track");
    await onceWithin(connected, LOOPBACK_TIMEOUT_MS, "the loopback's connection");
    return { stream: output, receiving, close };
  } catch (error) {
    close();
    throw error;
  }
}

/**
 * Plays replies. `prepare()` from a click; then per reply `begin(id, rate)`, `push(pcm)`
 * for each binary message, `finish()` at reply.audio_done, `flush()` at
 * reply.interrupted, `resume()` at reply.resumed. `loudness()` tells a face's mouth how
 * loud the reply is where the learner hears it.
 */
export class ReplyPlayer {
  constructor() {
    this.context = null;
    this.output = null; // the node every chunk plays into
    this.route = "none"; // "loopback" | "direct"
    this.loopback = null;
    this.element = null;
    this.latencyS = 0; // between the Web Audio clock and the speaker
    this.latencyTimer = null;
    this.replyId = null;
    this.sampleRate = WIRE_RATE;
    this.accepting = false; // audio of the current reply may arrive
    this.finished = false; // reply.audio_done came: nothing more will
    this.chunks = []; // {source, start, duration} scheduled and not yet played out
    this.playedDoneS = 0; // of the current reply, in chunks already played out
    this.nextStart = 0;
    this.bytesReceived = 0; // every reply's audio, for the page's diagnostics
    this.playedTotalMs = 0; // every earlier reply's audio played
    this.underruns = 0;
    this.levels = []; // {start, duration, rms, zcr} of each scheduled chunk, for loudness()
    this.silenced = false; // a hosted avatar plays the reply: ours is scheduled, not heard
  }

  /** Create the audio graph and the echo-cancellable route. Returns the route. */
  async prepare() {
    if (this.context) return this.route;
    // At the wire's rate: chunks then join sample-exactly, with no per-chunk resampling
    // (each AudioBufferSourceNode would resample on its own, clicking at the seams).
    const context = new AudioContext({ latencyHint: "interactive", sampleRate: WIRE_RATE });
    this.context = context;
    if (context.state !== "running") await context.resume().catch(() => {});
    const output = context.createGain();
    output.gain.value = this.silenced ? 0 : 1;
    this.output = output;
    let loopback = null;
    try {
      if (typeof RTCPeerConnection === "undefined") throw new Error("no RTCPeerConnection");
      const destination = context.createMediaStreamDestination();
      output.connect(destination);
      loopback = await openLoopback(destination.stream);
      if (this.context !== context) throw new Error("closed while the loopback opened");
      const element = new Audio();
      element.autoplay = true;
      element.srcObject = loopback.stream;
      this.element = element;
      await element.play();
      this.loopback = loopback;
      this.route = "loopback";
      this.latencyTimer = window.setInterval(() => this.measureLatency(), 2000);
    } catch (error) {
      if (loopback) loopback.close();
      if (this.element) this.element.srcObject = null;
      this.element = null;
      if (this.context !== context) return "none"; // the call ended meanwhile
      // No loopback: play directly (the echo canceller will not see it).
      output.disconnect();
      output.connect(context.destination);
      this.route = "direct";
      this.latencyS = (context.baseLatency || 0) + (context.outputLatency || 0);
      console.warn("Voice playback without the echo-cancelling loopback:", error);
    }
    return this.route;
  }

  /** How far the speaker lags the Web Audio clock on the loopback (its jitter buffer). */
  async measureLatency() {
    if (!this.loopback) return;
    try {
      const stats = await this.loopback.receiving.getStats();
      stats.forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "audio" && report.jitterBufferEmittedCount) {
          this.latencyS = 0.02 + report.jitterBufferDelay / report.jitterBufferEmittedCount;
        }
      });
    } catch (error) {
      // Keep the last estimate.
    }
  }

  /** A new reply's audio follows (reply.audio_started). */
  begin(replyId, sampleRate) {
    this.playedTotalMs += this.rawPlayedMs();
    this.stopChunks();
    this.replyId = replyId;
    this.sampleRate = sampleRate || WIRE_RATE;
    this.playedDoneS = 0;
    this.accepting = true;
    this.finished = false;
  }

  /** One binary message: 16-bit little-endian mono PCM at the reply's rate. */
  push(data) {
    this.bytesReceived += data.byteLength;
    if (!this.accepting || !this.context || data.byteLength < 2) return;
    const samples = new Int16Array(data, 0, data.byteLength >> 1);
    const buffer = this.context.createBuffer(1, samples.length, this.sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i += 1) channel[i] = samples[i] / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const now = this.context.currentTime;
    if (this.nextStart < now) {
      if (this.chunks.length) this.underruns += 1; // the server fell behind: a gap
      this.nextStart = now + START_LEAD_S;
    }
    source.start(this.nextStart);
    const chunk = { source, start: this.nextStart, duration: buffer.duration };
    source.addEventListener("ended", () => this.retire(chunk));
    this.chunks.push(chunk);
    this.measure(channel, chunk.start, chunk.duration, now);
    this.nextStart += buffer.duration;
  }

  /** The chunk's loudness (RMS) and zero-crossing rate per 10 ms, kept with its play time. */
  measure(channel, start, duration, now) {
    const step = Math.max(1, Math.round(this.sampleRate * LEVEL_STEP_S));
    const count = Math.ceil(channel.length / step);
    const rms = new Float32Array(count);
    const zcr = new Float32Array(count);
    for (let w = 0; w < count; w += 1) {
      const end = Math.min(channel.length, (w + 1) * step);
      let power = 0;
      let crossings = 0;
      for (let i = w * step; i < end; i += 1) {
        power += channel[i] * channel[i];
        if (i > w * step && channel[i] >= 0 !== channel[i - 1] >= 0) crossings += 1;
      }
      const n = end - w * step;
      rms[w] = Math.sqrt(power / n);
      zcr[w] = crossings / n;
    }
    const levels = this.levels;
    while (levels.length && levels[0].start + levels[0].duration < now - 1) levels.shift();
    levels.push({ start, duration, rms, zcr });
  }

  /**
   * The reply audio reaching the learner now (the Web Audio clock less the loopback's
   * delay): `{rms, zcr}` of its 10 ms slice, or null when none is playing — before a
   * reply, in a gap, and from the instant of a flush (barge-in) or a new reply.
   */
  loudness() {
    if (!this.context || !this.levels.length) return null;
    const heard = this.context.currentTime - this.latencyS;
    const levels = this.levels;
    while (levels.length && levels[0].start + levels[0].duration <= heard) levels.shift();
    const span = levels[0];
    if (!span || heard < span.start) return null;
    const index = Math.min(span.rms.length - 1, Math.floor((heard - span.start) / LEVEL_STEP_S));
    return { rms: span.rms[index], zcr: span.zcr[index] };
  }

  retire(chunk) {
    const index = this.chunks.indexOf(chunk);
    if (index === -1) return;
    this.chunks.splice(index, 1);
    this.playedDoneS += chunk.duration;
  }

  /** reply.audio_done: the reply's last chunk has arrived. */
  finish() {
    this.finished = true;
    this.accepting = false;
  }

  /** reply.interrupted: stop every scheduled buffer now. Returns the ms played. */
  flush() {
    this.accepting = false;
    this.playedDoneS = this.rawPlayedMs() / 1000; // what already went to the speaker stays heard
    this.stopChunks();
    return Math.round(this.playedDoneS * 1000);
  }

  /** reply.resumed: the rest of the reply's audio follows. */
  resume() {
    this.accepting = true;
    this.finished = false;
  }

  stopChunks() {
    for (const chunk of this.chunks) {
      try {
        chunk.source.stop();
      } catch (error) {
        // Never started: nothing to stop.
      }
      chunk.source.disconnect();
    }
    this.chunks = [];
    this.levels = [];
    this.nextStart = 0;
  }

  rawPlayedMs() {
    if (!this.context) return 0;
    const now = this.context.currentTime;
    let played = this.playedDoneS;
    for (const chunk of this.chunks) played += Math.min(Math.max(now - chunk.start, 0), chunk.duration);
    return played * 1000;
  }

  /** Audio of the current reply the learner has heard, in ms. */
  playedMs() {
    const heardLater = this.playing ? this.latencyS * 1000 : 0;
    return Math.max(0, Math.round(this.rawPlayedMs() - heardLater));
  }

  /** Every reply's audio played so far (diagnostics). */
  totalPlayedMs() {
    return Math.round(this.playedTotalMs + this.rawPlayedMs());
  }

  /** How long the audio already scheduled will still play, in ms. */
  remainingMs() {
    if (!this.context || !this.chunks.length) return 0;
    const end = Math.max(...this.chunks.map((chunk) => chunk.start + chunk.duration));
    return Math.max(0, Math.round((end - this.context.currentTime + this.latencyS) * 1000));
  }

  /** Reply audio is coming out of the speaker now (or is scheduled to, in a moment). */
  /** Silence (or hear again) the reply audio without unscheduling it: a hosted avatar's
   * own audio carries the reply meanwhile, and when its room drops the learner hears ours
   * from where the reply is. A 10 ms ramp: no click. */
  silence(on) {
    this.silenced = on;
    if (!this.output || !this.context) return;
    const gain = this.output.gain;
    gain.cancelScheduledValues(this.context.currentTime);
    gain.setTargetAtTime(on ? 0 : 1, this.context.currentTime, 0.01);
  }

  get playing() {
    if (!this.context) return false;
    const now = this.context.currentTime;
    return this.chunks.some((chunk) => chunk.start + chunk.duration > now);
  }

  close() {
    this.stopChunks();
    window.clearInterval(this.latencyTimer);
    if (this.loopback) this.loopback.close();
    if (this.element) {
      this.element.pause();
      this.element.srcObject = null;
    }
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.output = null;
    this.loopback = null;
    this.element = null;
    this.route = "none";
  }
}
