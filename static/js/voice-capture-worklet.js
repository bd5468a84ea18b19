// The microphone's AudioWorklet: turns the context's float samples (usually 48 kHz) into
// the wire format of voice/PROTOCOL.md — 16 kHz, 16-bit signed little-endian mono — and
// posts one 20 ms frame (320 samples, 640 bytes) at a time, with the frame's level for the
// meter. It runs on the audio thread, so it allocates as little as it can.

const OUTPUT_RATE = 16000;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz

class VoiceCaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // Input samples per output sample (3 at 48 kHz, 2.75625 at 44.1 kHz).
    this.step = sampleRate / OUTPUT_RATE;
    // Decimation by averaging every input sample that falls in an output sample's window:
    // a box low-pass, enough to keep speech from aliasing and cheap on the audio thread.
    this.position = 0; // where the current output window started, in input samples
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
    this.squares = 0;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop") this.running = false;
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!this.running) return false;
    if (!channels || channels.length === 0) return true; // no track connected (yet)
    const samples = channels[0];
    for (let i = 0; i < samples.length; i += 1) {
      this.sum += samples[i];
      this.count += 1;
      this.position += 1;
      if (this.position >= this.step) {
        this.position -= this.step;
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }

  push(value) {
    const clipped = value < -1 ? -1 : value > 1 ? 1 : value;
    this.frame[this.filled] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    this.squares += clipped * clipped;
    this.filled += 1;
    if (this.filled === FRAME_SAMPLES) {
      // Int16Array is little-endian on every platform browsers run on.
      const pcm = this.frame.buffer;
      const rms = Math.sqrt(this.squares / FRAME_SAMPLES);
      this.port.postMessage({ pcm, rms }, [pcm]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
      this.squares = 0;
    }
  }
}

registerProcessor("voice-capture", VoiceCaptureProcessor);
