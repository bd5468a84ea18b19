// The hosted avatar (LiveAvatar, LITE mode) in the page: the server opened the avatar and
// sent `avatar.ready` with a LiveKit room URL and a client token (voice/PROTOCOL.md); this
// joins that room with LiveKit's JS client (static/vendor/livekit-client, loaded only now),
// shows the avatar's video in the face's place and plays its audio, which is the reply's
// own (LiveAvatar renders the face from our speech). The reply audio the server still
// sends over the call's socket goes on being scheduled, silenced, so playback positions
// stay known and nothing is lost: when the room fails or drops, `onLost` runs, the page
// unsilences it where the reply is and shows its own face again.
//
// LiveKit JS client: Room, RoomEvent, Track (docs.livekit.io/reference/client-sdk-js).

const CONNECT_TIMEOUT_MS = 15000; // joining the room; past it the call goes on without video
const LOAD_TIMEOUT_MS = 15000; // the vendored client's script

let loading = null;

/** The vendored LiveKit client (a UMD script that sets window.LivekitClient), loaded once. */
function loadClient(src) {
  if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      const timer = window.setTimeout(() => reject(new Error("its script took too long")), LOAD_TIMEOUT_MS);
      script.src = src;
      script.onload = () => {
        window.clearTimeout(timer);
        if (window.LivekitClient) resolve(window.LivekitClient);
        else reject(new Error("its script did not load"));
      };
      script.onerror = () => {
        window.clearTimeout(timer);
        reject(new Error("its script did not load"));
      };
      document.head.append(script);
    }).catch((error) => {
      loading = null; // the next call may try again
      throw error;
    });
  }
  return loading;
}

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = window.setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => window.clearTimeout(timer));
}

/**
 * One hosted face for one `avatar.ready`. `container` is the page's face (#avatar);
 * `onAudio(playing)` tells the call whether the avatar's audio now carries the reply (so
 * the call silences its own); `onLost(reason)` runs once if the room cannot be joined or
 * drops later (not after `leave()`).
 */
export class HostedAvatar {
  constructor(container, { onAudio, onLost }) {
    this.container = container;
    this.onAudio = onAudio;
    this.onLost = onLost;
    this.room = null;
    this.left = false;
    this.video = null;
    this.audio = null;
  }

  /** Join the room and show the avatar; resolves when joined, rejects (after onLost) if not. */
  async join(event) {
    const src = this.container.dataset.livekitSrc;
    try {
      if (!src) throw new Error("this page has no LiveKit client");
      if (!event.livekit_url || !event.livekit_client_token) throw new Error("no room was given");
      const { Room, RoomEvent, Track } = await loadClient(src);
      if (this.left) return;
      const room = new Room({ adaptiveStream: true, dynacast: false });
      this.room = room;
      room.on(RoomEvent.TrackSubscribed, (track) => this.attach(track, Track));
      room.on(RoomEvent.TrackUnsubscribed, (track) => this.detach(track, Track));
      await within(room.connect(event.livekit_url, event.livekit_client_token), CONNECT_TIMEOUT_MS, "joining it");
      if (this.left) {
        room.disconnect().catch(() => {});
        return;
      }
      room.on(RoomEvent.Disconnected, () => this.lost("its video room closed"));
    } catch (error) {
      const why = String(error.message || error).slice(0, 160);
      this.lost(`its video room could not be joined (${why})`);
      throw error;
    }
  }

  attach(track, Track) {
    if (this.left) return;
    if (track.kind === Track.Kind.Video) {
      const video = track.attach();
      video.className = "avatar-video";
      video.muted = true; // its sound comes from the audio track
      video.playsInline = true;
      video.setAttribute("role", "img"); // in the drawing's place: the caption tells its state
      video.setAttribute("aria-label", `${this.container.dataset.persona || "Persona"}'s face, on video`);
      this.video = video;
      this.container.querySelector(".avatar-figure").after(video);
      this.container.dataset.video = "on";
    } else if (track.kind === Track.Kind.Audio) {
      // An <audio> element: WebRTC audio the browser's echo canceller covers.
      this.audio = track.attach();
      this.audio.hidden = true;
      this.container.append(this.audio);
      this.onAudio(true);
    }
  }

  detach(track, Track) {
    for (const element of track.detach()) element.remove();
    if (track.kind === Track.Kind.Audio) {
      this.audio = null;
      this.onAudio(false);
    } else if (track.kind === Track.Kind.Video) {
      this.video = null;
      delete this.container.dataset.video;
    }
  }

  lost(reason) {
    if (this.left) return;
    this.teardown();
    this.onLost(reason);
  }

  /** Leave the room (the call ended or the server dropped the avatar); onLost not called. */
  leave() {
    if (this.left) return;
    this.teardown();
  }

  teardown() {
    this.left = true;
    if (this.video) this.video.remove();
    if (this.audio) this.audio.remove();
    this.video = this.audio = null;
    delete this.container.dataset.video;
    this.onAudio(false);
    const room = this.room;
    this.room = null;
    if (room) room.disconnect().catch(() => {});
  }
}
