// The local avatar's face: a head drawn in SVG by the page (offline, nothing to pay for)
// that shows what the call is doing — listening, thinking, speaking, interrupted — by its
// look and by a line of text, opens its mouth as far as it is told, and blinks now and then.
// It knows nothing of calls: avatar-local.js drives it. Styles: the "Avatar" section of
// static/css/app.css (the CSP allows no inline styles; geometry is set as SVG attributes).

const SVG = "http://www.w3.org/2000/svg";
const MOUTH_X = 100;
const MOUTH_Y = 125;
const BLINK_MS = 140;
const BLINK_EVERY_MS = [2500, 6500]; // a random wait in this range between blinks

export const FACE_STATES = ["idle", "listening", "thinking", "speaking", "interrupted"];

function element(name, attributes = {}, children = []) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

/** The mouth as a closed path: a slight smile when shut, opening downward and rounding
 * as `open` (0..1) grows; `spread` (0..1) widens it (the "ee"/"s" sounds). */
export function mouthPath(open, spread) {
  const half = 10 + spread * 3 - open * 1.5;
  const gap = open * 15;
  const top = MOUTH_Y - 1 - gap * 0.3;
  const bottom = MOUTH_Y + 3 + gap;
  const r = (value) => Math.round(value * 10) / 10;
  return `M ${r(MOUTH_X - half)} ${MOUTH_Y} Q ${MOUTH_X} ${r(top)} ${r(MOUTH_X + half)} ${MOUTH_Y} Q ${MOUTH_X} ${r(bottom)} ${r(MOUTH_X - half)} ${MOUTH_Y} Z`;
}

function drawing(clipId) {
  const mouth = element("path", { class: "avatar-mouth", d: mouthPath(0, 0) });
  const svg = element("svg", { viewBox: "0 0 200 200", class: "avatar-svg", focusable: "false" }, [
    element("defs", {}, [element("clipPath", { id: clipId }, [element("circle", { cx: 100, cy: 100, r: 94 })])]),
    element("circle", { class: "avatar-backdrop", cx: 100, cy: 100, r: 94 }),
    element("g", { "clip-path": `url(#${clipId})` }, [
      element("path", { class: "avatar-shirt", d: "M 26 200 C 30 166 58 150 100 149 C 142 150 170 166 174 200 Z" }),
      element("path", { class: "avatar-neck", d: "M 86 128 L 86 152 Q 100 164 114 152 L 114 128 Z" }),
      element("path", { class: "avatar-collar", d: "M 84 150 L 100 166 L 116 150 L 112 147 L 100 158 L 88 147 Z" }),
      element("g", { class: "avatar-head" }, [
        element("ellipse", { class: "avatar-skin avatar-ear", cx: 54, cy: 98, rx: 7, ry: 11 }),
        element("ellipse", { class: "avatar-skin avatar-ear", cx: 146, cy: 98, rx: 7, ry: 11 }),
        element("ellipse", { class: "avatar-skin", cx: 100, cy: 94, rx: 46, ry: 54 }),
        element("path", {
          class: "avatar-hair",
          d: "M 53 96 C 46 50 72 34 102 35 C 132 36 156 54 147 96 C 142 76 134 64 118 60 C 100 70 76 66 62 70 C 56 78 54 86 53 96 Z",
        }),
        element("g", { class: "avatar-brows" }, [
          element("path", { class: "avatar-brow", d: "M 74 80 Q 83 75 92 79" }),
          element("path", { class: "avatar-brow", d: "M 108 79 Q 117 75 126 80" }),
        ]),
        element("g", { class: "avatar-eyes" }, [
          element("g", { class: "avatar-eye" }, [
            element("ellipse", { class: "avatar-pupil", cx: 83, cy: 93, rx: 4.5, ry: 5.5 }),
            element("circle", { class: "avatar-glint", cx: 84.6, cy: 91, r: 1.3 }),
          ]),
          element("g", { class: "avatar-eye" }, [
            element("ellipse", { class: "avatar-pupil", cx: 117, cy: 93, rx: 4.5, ry: 5.5 }),
            element("circle", { class: "avatar-glint", cx: 118.6, cy: 91, r: 1.3 }),
          ]),
        ]),
        element("path", { class: "avatar-nose", d: "M 100 98 Q 96 110 101 113" }),
        element("ellipse", { class: "avatar-cheek", cx: 74, cy: 112, rx: 7, ry: 4 }),
        element("ellipse", { class: "avatar-cheek", cx: 126, cy: 112, rx: 7, ry: 4 }),
        mouth,
      ]),
    ]),
    element("circle", { class: "avatar-ring", cx: 100, cy: 100, r: 94 }),
    element("g", { class: "avatar-thought" }, [
      element("rect", { class: "avatar-thought-bubble", x: 140, y: 14, width: 50, height: 24, rx: 12 }),
      element("circle", { cx: 153, cy: 26, r: 3.5 }),
      element("circle", { cx: 165, cy: 26, r: 3.5 }),
      element("circle", { cx: 177, cy: 26, r: 3.5 }),
    ]),
  ]);
  svg.setAttribute("aria-hidden", "true");
  return { svg, mouth };
}

/**
 * A face in `container` (its `.avatar-figure` holds the drawing, its `.avatar-state` the
 * visible state line). `setState(state, sentence)` with a state of FACE_STATES;
 * `setMouth(open, spread)` with 0..1 values, every animation frame while audio plays.
 * The container is the `role="img"` whose name says who it is and what it is doing, and
 * carries `data-state`, `data-mouth-open` and `data-blinks` for styles and tests.
 */
export class AvatarFace {
  constructor(container, { name }) {
    this.container = container;
    this.name = name;
    this.state = "";
    this.sentence = "";
    this.open = -1;
    this.spread = -1;
    this.blinks = 0;
    this.blinkTimer = null;
    const { svg, mouth } = drawing(`${container.id || "avatar"}-clip`);
    this.svg = svg;
    this.mouth = mouth;
    this.figure = container.querySelector(".avatar-figure") || container;
    this.line = container.querySelector(".avatar-state");
    this.figure.replaceChildren(svg);
    this.figure.setAttribute("role", "img");
    this.reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
    this.reducedMotion.addEventListener("change", () => this.scheduleBlink());
    container.dataset.blinks = "0";
    this.setMouth(0, 0);
    this.setState("idle", "Not in a call");
    this.scheduleBlink();
  }

  setName(name) {
    if (name && name !== this.name) {
      this.name = name;
      this.label();
    }
  }

  setState(state, sentence) {
    if (state === this.state && sentence === this.sentence) return;
    this.state = state;
    this.sentence = sentence;
    this.container.dataset.state = state;
    if (this.line) this.line.textContent = sentence;
    this.label();
  }

  label() {
    this.figure.setAttribute("aria-label", `${this.name}'s face: ${this.sentence.replace(/…$/, "").toLowerCase()}`);
  }

  /** Mouth opening and spread, 0..1. With reduced motion the mouth takes three positions
   * only and opens half as far: it still shows who is talking, without the flutter. */
  setMouth(open, spread) {
    let o = Math.min(1, Math.max(0, open));
    let s = Math.min(1, Math.max(0, spread));
    if (this.reducedMotion && this.reducedMotion.matches) {
      o = o < 0.12 ? 0 : o < 0.45 ? 0.25 : 0.5;
      s = 0;
    } else {
      o = Math.round(o * 100) / 100;
      s = Math.round(s * 10) / 10;
    }
    if (o === this.open && s === this.spread) return;
    this.open = o;
    this.spread = s;
    this.mouth.setAttribute("d", mouthPath(o, s));
    this.container.dataset.mouthOpen = String(o);
  }

  /** Blinks at random intervals (none with reduced motion), a double blink now and then. */
  scheduleBlink() {
    window.clearTimeout(this.blinkTimer);
    if (this.reducedMotion.matches) {
      this.svg.classList.remove("blink");
      return;
    }
    const [shortest, longest] = BLINK_EVERY_MS;
    const wait = shortest + Math.random() * (longest - shortest);
    this.blinkTimer = window.setTimeout(() => {
      this.blink(Math.random() < 0.15 ? 2 : 1);
      this.scheduleBlink();
    }, wait);
  }

  blink(times) {
    this.svg.classList.add("blink");
    this.blinks += 1;
    this.container.dataset.blinks = String(this.blinks);
    window.setTimeout(() => {
      this.svg.classList.remove("blink");
      if (times > 1) window.setTimeout(() => this.blink(times - 1), BLINK_MS);
    }, BLINK_MS);
  }

  destroy() {
    window.clearTimeout(this.blinkTimer);
    this.figure.replaceChildren();
  }
}
