// A reusable canvas editor inside a node (DOM only, no frontend imports): a DOM widget holding a toolbar, a canvas
// that shows an image letterboxed at any node size, and a status line. It maps pointers to exact image pixels through
// the canvas's client rect (so graph zoom, Nodes 2.0 layout and device pixel ratio do not matter), captures the
// pointer while a button is held, takes keys only while the canvas has focus, and removes every listener, observer
// and timer when the node is removed. Subclasses implement draw(ctx) and the on* hooks.
//
// Keyboard focus: clicking the canvas focuses a read-only text input over it (invisible). The frontend leaves keys
// typed into inputs alone (its own Ctrl+Z graph undo and single-key shortcuts included), so the editor's shortcuts
// and clipboard events reach only the editor, and only while it has focus.
import { canvasToImage, clientToCanvas, fitImage } from "./geometry.js";

const STYLE_ID = "iconmatting-editor-style";
const STYLE = `
.iconmatting-editor { display: flex; flex-direction: column; gap: 4px; box-sizing: border-box; width: 100%;
  height: 100%; font: 11px sans-serif; color: var(--input-text, #ddd); }
.iconmatting-editor .ime-toolbar { display: flex; flex-wrap: wrap; gap: 3px; align-items: center; }
.iconmatting-editor .ime-toolbar button { padding: 1px 6px; height: 20px; font: 11px sans-serif; cursor: pointer;
  color: inherit; background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #555);
  border-radius: 4px; }
.iconmatting-editor .ime-toolbar button[aria-pressed="true"] { background: #2f5d8a; border-color: #6fa8dc; }
.iconmatting-editor .ime-toolbar button:disabled { opacity: 0.4; cursor: default; }
.iconmatting-editor .ime-toolbar input[type="range"] { width: 70px; }
.iconmatting-editor .ime-stage { position: relative; flex: 1 1 auto; min-height: 160px; }
.iconmatting-editor canvas { position: absolute; inset: 0; width: 100%; height: 100%; outline: none;
  touch-action: none; cursor: crosshair; background: #111; border-radius: 4px; }
.iconmatting-editor .ime-stage:focus-within canvas { box-shadow: 0 0 0 1px #6fa8dc; }
.iconmatting-editor .ime-keys { position: absolute; left: 0; top: 0; width: 1px; height: 1px; opacity: 0;
  pointer-events: none; border: 0; padding: 0; }
.iconmatting-editor .ime-status { min-height: 14px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
`;
const POLL_MS = 400;

function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = STYLE;
  document.head.appendChild(style);
}

export class CanvasEditor {
  /**
   * @param node the LiteGraph node; @param name the DOM widget's name (not serialised); @param minHeight the widget's
   * smallest height in graph pixels; @param padding canvas pixels kept free around the image.
   */
  constructor(node, { name, minHeight = 320, padding = 4 }) {
    ensureStyle();
    this.node = node;
    this.padding = padding;
    this.image = null; // HTMLImageElement once loaded
    this.imageURL = null;
    this.fit = null;
    this.listeners = [];

    this.element = document.createElement("div");
    this.element.className = "iconmatting-editor";
    this.toolbar = document.createElement("div");
    this.toolbar.className = "ime-toolbar";
    const stage = document.createElement("div");
    stage.className = "ime-stage";
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.keys = document.createElement("input");
    this.keys.className = "ime-keys";
    this.keys.readOnly = true;
    this.keys.setAttribute("aria-label", "mark editor shortcuts");
    this.statusLine = document.createElement("div");
    this.statusLine.className = "ime-status";
    stage.append(this.canvas, this.keys);
    this.element.append(this.toolbar, stage, this.statusLine);

    this.widget = node.addDOMWidget(name, "iconmatting-editor", this.element, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => minHeight,
    });

    this.listen(this.canvas, "pointerdown", (e) => this.pointerDown(e));
    this.listen(this.canvas, "pointermove", (e) => this.pointerMove(e));
    this.listen(this.canvas, "pointerup", (e) => this.pointerUp(e));
    this.listen(this.canvas, "pointercancel", (e) => this.pointerUp(e));
    this.listen(this.canvas, "lostpointercapture", (e) => this.pointerUp(e));
    this.listen(this.canvas, "contextmenu", (e) => {
      e.preventDefault();
      e.stopPropagation();
    });
    this.listen(this.keys, "keydown", (e) => {
      if (this.onKey(e)) {
        e.preventDefault();
        e.stopPropagation();
      }
    });
    this.listen(this.keys, "paste", (e) => this.onPaste(e));
    this.listen(this.keys, "copy", (e) => this.onCopy(e));
    this.resizeObserver = new ResizeObserver(() => this.render());
    this.resizeObserver.observe(stage);
    // Graph zoom changes the canvas's shown size without a layout change; the poll also lets subclasses follow
    // changes made elsewhere (widget values, upstream nodes) the same way in every frontend and render mode.
    this.timer = setInterval(() => {
      this.poll();
      if (this.backingSizeChanged()) this.render();
    }, POLL_MS);
  }

  listen(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.listeners.push(() => target.removeEventListener(type, handler, options));
  }

  /** A toolbar button; `pressed` makes it a toggle (aria-pressed). */
  button(label, title, onClick, { pressed } = {}) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.title = title;
    if (pressed !== undefined) button.setAttribute("aria-pressed", String(pressed));
    this.listen(button, "pointerdown", (e) => e.stopPropagation());
    this.listen(button, "click", (e) => {
      e.stopPropagation();
      onClick();
      this.focus();
    });
    this.toolbar.appendChild(button);
    return button;
  }

  /** Give the editor the keyboard (the shortcuts work while it has it). */
  focus() {
    this.keys.focus({ preventScroll: true });
  }

  setStatus(text) {
    if (this.statusLine.textContent !== text) this.statusLine.textContent = text;
  }

  /** Show the image at `url` (no-op if it is already shown); onImageLoaded / onImageError follow. */
  setImage(url) {
    if (url === this.imageURL) return;
    this.imageURL = url;
    if (!url) {
      this.image = null;
      this.render();
      return;
    }
    const image = new Image();
    image.onload = () => {
      if (this.imageURL !== url) return;
      this.image = image;
      this.onImageLoaded(image);
      this.render();
    };
    image.onerror = () => {
      if (this.imageURL === url) this.onImageError(url);
    };
    image.src = url;
  }

  /** The image pixel under a pointer event (continuous, not clamped), or null without an image. */
  imagePoint(event) {
    if (!this.fit) return null;
    const rect = this.canvas.getBoundingClientRect();
    return canvasToImage(clientToCanvas(event.clientX, event.clientY, rect, this.canvas.width, this.canvas.height), this.fit);
  }

  pointerDown(event) {
    event.stopPropagation(); // not a node drag / graph pan
    event.preventDefault();
    this.focus();
    if (this.dragPointer !== undefined || !this.image) return;
    this.dragPointer = event.pointerId;
    this.canvas.setPointerCapture(event.pointerId);
    this.onDragStart(this.imagePoint(event), event);
  }

  pointerMove(event) {
    if (this.dragPointer !== event.pointerId) return;
    event.stopPropagation();
    for (const e of event.getCoalescedEvents?.() ?? [event]) this.onDragMove(this.imagePoint(e), e);
  }

  pointerUp(event) {
    if (this.dragPointer !== event.pointerId) return;
    this.dragPointer = undefined;
    if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    this.onDragEnd(this.imagePoint(event), event);
  }

  backingSizeChanged() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(rect.width * dpr));
    const height = Math.max(1, Math.round(rect.height * dpr));
    if (width === this.canvas.width && height === this.canvas.height) return false;
    this.canvas.width = width;
    this.canvas.height = height;
    return true;
  }

  /** Redraw on the next animation frame (several requests in a frame draw once). */
  render() {
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame(() => {
      this.renderPending = false;
      this.backingSizeChanged();
      const { ctx, canvas } = this;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      const image = this.image;
      this.fit = image ? fitImage(image.naturalWidth, image.naturalHeight, canvas.width, canvas.height, this.padding) : null;
      if (image) ctx.drawImage(image, this.fit.x, this.fit.y, this.fit.width, this.fit.height);
      this.draw(ctx);
    });
  }

  destroy() {
    clearInterval(this.timer);
    this.resizeObserver.disconnect();
    for (const remove of this.listeners.splice(0)) remove();
    this.imageURL = null;
  }

  // Hooks for subclasses.
  draw(_ctx) {}
  poll() {}
  onImageLoaded(_image) {}
  onImageError(_url) {}
  onDragStart(_point, _event) {}
  onDragMove(_point, _event) {}
  onDragEnd(_point, _event) {}
  onKey(_event) {
    return false;
  }
  onPaste(_event) {}
  onCopy(_event) {}
}
