// The mark editor of the IconMatting prompt nodes (DOM only, no frontend imports): points, boxes and brush scribbles,
// positive or negative, with undo/redo, kept in the node's `marks` STRING widget (web/js/editor/marks.js), and after a
// run the RoI tokens that entered the query drawn over the image (web/js/editor/roi.js).
import { CanvasEditor } from "./canvas_editor.js";
import { boxFromCorners, clampToImage, imageToCanvas, insideImage } from "./geometry.js";
import { pictureFingerprint } from "./fingerprint.js";
import { History } from "./history.js";
import { keyAction, steppedWidth, TOOL_KEYS } from "./keys.js";
import { addMark, clearMarks, fitMarksToImage, markCount, parseMarks, pasteIntoMarks, serializeMarks, toKJPoints } from "./marks.js";
import { parseRoi, roiCellsForImage, roiCounts } from "./roi.js";

const TOOLS = {
  point: { label: "● Point", title: `Point tool (${TOOL_KEYS.point.toUpperCase()}): click a point on the object` },
  box: { label: "▭ Box", title: `Box tool (${TOOL_KEYS.box.toUpperCase()}): drag a box around the object` },
  scribble: { label: "✎ Brush", title: `Brush tool (${TOOL_KEYS.scribble.toUpperCase()}): paint a scribble over the object` },
};
const COLOURS = {
  positive: "#3ddc84",
  negative: "#ff5a5f",
  prompt: "rgba(64, 196, 255, 0.30)",
  promptEdge: "rgba(64, 196, 255, 0.9)",
  extension: "rgba(255, 170, 0, 0.30)",
  extensionEdge: "rgba(255, 170, 0, 0.9)",
};
const POINT_RADIUS = 5; // CSS pixels
const MIN_BRUSH = 1;
const MAX_BRUSH = 256;

export class MarkEditor extends CanvasEditor {
  /**
   * @param node the prompt node; @param marksWidget its `marks` STRING widget;
   * @param imageSource (failedURLs: Set) => URL of the image to mark (or null), polled; failedURLs holds the URLs
   * that did not load; @param onChange () => void, called after the marks changed; @param knownFingerprint (url) =>
   * the fingerprint the node sent with the image at `url` (the picture it marks, e.g. under Correct Target's overlay),
   * or null: the editor computes it from the pixels shown.
   */
  constructor(node, marksWidget, { imageSource, onChange, knownFingerprint }) {
    super(node, { name: "iconmatting_marks_editor", minHeight: 300 });
    this.marksWidget = marksWidget;
    this.imageSource = imageSource;
    this.knownFingerprint = knownFingerprint;
    this.fingerprint = null;
    this.onChange = onChange;
    this.tool = "point";
    this.positive = true;
    this.brushWidth = 16;
    this.showRoi = true;
    this.roi = null;
    this.drag = null;
    this.warning = "";
    this.failedURLs = new Set();
    this.loadFromWidget();
    this.buildToolbar();
    this.poll();
  }

  buildToolbar() {
    this.toolButtons = {};
    for (const [tool, { label, title }] of Object.entries(TOOLS)) {
      this.toolButtons[tool] = this.button(label, title, () => this.setTool(tool), { pressed: tool === this.tool });
    }
    this.polarityButton = this.button("", "Positive / negative marks (N); right-click or Alt/Ctrl-click inverts", () =>
      this.setPositive(!this.positive),
    );
    this.polarityButton.dataset.role = "polarity";
    this.brush = document.createElement("input");
    this.brush.type = "range";
    this.brush.min = String(MIN_BRUSH);
    this.brush.max = String(MAX_BRUSH);
    this.brush.title = "Brush width in image pixels ([ and ])";
    this.listen(this.brush, "pointerdown", (e) => e.stopPropagation());
    this.listen(this.brush, "input", () => this.setBrushWidth(Number(this.brush.value)));
    this.brushLabel = document.createElement("span");
    this.toolbar.append(this.brush, this.brushLabel);
    this.undoButton = this.button("↶", "Undo (Ctrl+Z)", () => this.undo());
    this.redoButton = this.button("↷", "Redo (Ctrl+Shift+Z or Ctrl+Y)", () => this.redo());
    this.button("Clear", "Remove every mark (undoable)", () => this.clear());
    this.roiButton = this.button("RoI", "Show the RoI tokens of the last run (R)", () => this.toggleRoi(), {
      pressed: this.showRoi,
    });
    this.updateToolbar();
  }

  updateToolbar() {
    for (const [tool, button] of Object.entries(this.toolButtons)) button.setAttribute("aria-pressed", String(tool === this.tool));
    this.polarityButton.textContent = this.positive ? "+ Positive" : "− Negative";
    this.polarityButton.style.color = this.positive ? COLOURS.positive : COLOURS.negative;
    this.brush.value = String(this.brushWidth);
    this.brushLabel.textContent = `${this.brushWidth}px`;
    this.undoButton.disabled = !this.history.canUndo;
    this.redoButton.disabled = !this.history.canRedo;
    this.roiButton.setAttribute("aria-pressed", String(this.showRoi));
    this.updateStatus();
  }

  updateStatus() {
    if (!this.image) return this.setStatus("No image yet: connect a Load Image, or run the workflow once.");
    const parts = [`${this.image.naturalWidth}×${this.image.naturalHeight}`];
    const m = this.marks;
    const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
    parts.push(
      [count(m.points.length, "point", "points"), count(m.boxes.length, "box", "boxes"),
        count(m.scribbles.length, "scribble", "scribbles")].join(", "),
    );
    if (this.roi && this.showRoi) {
      const { prompt, extension } = roiCounts(this.roi);
      parts.push(`RoI tokens: ${prompt} from the marks (blue) + ${extension} extension (orange)`);
    }
    if (this.warning) parts.unshift(`⚠ ${this.warning}`);
    this.setStatus(parts.join(" · "));
  }

  // --- marks and the widget value -------------------------------------------------------------------------------

  /** Take the widget's value as the current marks (a new history). */
  loadFromWidget() {
    const text = this.marksWidget.value ?? "";
    this.written = text;
    try {
      this.marks = parseMarks(text);
      this.warning = "";
    } catch (error) {
      this.marks = parseMarks("");
      this.warning = error.message;
    }
    this.history = new History(serializeMarks(this.marks));
    if (this.image) this.adoptImageSize();
  }

  /** Write marks into the widget (one undo step unless fromHistory). */
  commit(marks, { fromHistory = false } = {}) {
    this.marks = marks;
    const text = serializeMarks(marks);
    if (!fromHistory) this.history.push(text);
    if (text !== this.marksWidget.value) {
      this.marksWidget.value = text;
      this.marksWidget.callback?.(text);
    }
    this.written = text;
    this.node.setDirtyCanvas?.(true, true);
    this.onChange?.();
    this.updateToolbar();
    this.render();
  }

  restore(text) {
    if (text === undefined) return;
    const marks = parseMarks(text);
    this.commit(this.marks.image && !marks.image ? { ...marks, image: this.marks.image } : marks, { fromHistory: true });
  }

  undo() {
    this.restore(this.history.undo());
  }

  redo() {
    this.restore(this.history.redo());
  }

  clear() {
    if (markCount(this.marks)) this.commit(clearMarks(this.marks));
  }

  add(kind, mark) {
    this.commit(addMark(this.marks, kind, mark));
  }

  /** Fit the marks to the image shown, as the node will (rescaled; flagged on another aspect ratio or picture). */
  adoptImageSize() {
    try {
      let { marks, scaled } = fitMarksToImage(this.marks, this.image.naturalWidth, this.image.naturalHeight, this.fingerprint);
      if (!marks.image.fingerprint && this.fingerprint) marks = { ...marks, image: { ...marks.image, fingerprint: this.fingerprint } };
      this.warning = "";
      if (scaled) this.commit(marks);
      else this.marks = marks;
    } catch (error) {
      this.warning = error.message;
    }
    this.updateStatus();
  }

  /** The fingerprint of the picture shown: the node's, or computed from its pixels (null if they cannot be read). */
  imageFingerprint(image) {
    const known = this.knownFingerprint?.(this.imageURL);
    if (known) return known;
    try {
      const canvas = document.createElement("canvas");
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(image, 0, 0);
      return pictureFingerprint(ctx.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
    } catch {
      return null; // a picture from another origin: no fingerprint
    }
  }

  // --- state from elsewhere -------------------------------------------------------------------------------------

  poll() {
    if ((this.marksWidget.value ?? "") !== this.written) {
      // Typed or pasted into the widget, or set by the frontend (undo, workflow load): take it as one more step.
      const text = this.marksWidget.value ?? "";
      try {
        const marks = parseMarks(text);
        this.written = text;
        this.marks = marks;
        this.warning = "";
        this.history.push(serializeMarks(marks));
        if (this.image) this.adoptImageSize();
      } catch (error) {
        this.written = text;
        this.warning = error.message;
      }
      this.updateToolbar();
      this.render();
    }
    const url = this.imageSource(this.failedURLs);
    if (url !== this.imageURL) this.setImage(url);
  }

  onImageLoaded(image) {
    this.fingerprint = this.imageFingerprint(image);
    this.adoptImageSize();
    this.updateToolbar();
  }

  onImageError(url) {
    this.failedURLs.add(url);
    this.image = null;
    this.setStatus("The image could not be loaded: run the workflow once to show it again.");
    this.render();
    this.poll(); // another source, if there is one
  }

  /** The RoI tokens of the last run (the `iconmatting_roi` ui entries), or null to hide them. */
  setRoi(entries) {
    this.roi = parseRoi(entries);
    this.updateStatus();
    this.render();
  }

  // --- tools ----------------------------------------------------------------------------------------------------

  setTool(tool) {
    this.tool = tool;
    this.updateToolbar();
  }

  setPositive(positive) {
    this.positive = positive;
    this.updateToolbar();
  }

  setBrushWidth(width) {
    this.brushWidth = Math.round(Math.min(MAX_BRUSH, Math.max(MIN_BRUSH, width)));
    this.updateToolbar();
  }

  toggleRoi() {
    this.showRoi = !this.showRoi;
    this.updateToolbar();
    this.render();
  }

  /** Right click or Alt/Ctrl/Meta inverts the toolbar's polarity. */
  polarityOf(event) {
    const inverted = event.button === 2 || event.altKey || event.ctrlKey || event.metaKey;
    return inverted ? !this.positive : this.positive;
  }

  onDragStart(point, event) {
    const { naturalWidth: w, naturalHeight: h } = this.image;
    const positive = this.polarityOf(event);
    if (this.tool === "point") {
      if (insideImage(point, w, h)) this.add("points", { x: point.x, y: point.y, positive });
      return;
    }
    const start = clampToImage(point, w, h);
    this.drag = { tool: this.tool, positive, start, end: start, points: [[start.x, start.y]], width: this.brushWidth };
    this.render();
  }

  onDragMove(point) {
    if (!this.drag) return;
    const p = clampToImage(point, this.image.naturalWidth, this.image.naturalHeight);
    this.drag.end = p;
    if (this.drag.tool === "scribble") {
      const [lx, ly] = this.drag.points[this.drag.points.length - 1];
      // Keep a vertex every half canvas pixel or more: exact strokes, no redundant vertices.
      if (Math.hypot(p.x - lx, p.y - ly) * this.fit.scale >= 0.5) this.drag.points.push([p.x, p.y]);
    }
    this.render();
  }

  onDragEnd(point) {
    const drag = this.drag;
    if (!drag) return;
    if (point) this.onDragMove(point);
    this.drag = null;
    if (drag.tool === "box") {
      const box = boxFromCorners(drag.start, drag.end);
      if (box.width * this.fit.scale >= 2 && box.height * this.fit.scale >= 2) this.add("boxes", { ...box, positive: drag.positive });
      else this.render();
    } else {
      this.add("scribbles", { points: drag.points, width: drag.width, positive: drag.positive });
    }
  }

  onKey(event) {
    const step = keyAction(event);
    if (!step || step.action === "clipboard" || (step.action === "cancel" && !this.drag)) {
      // Ctrl+C / Ctrl+V go on to the copy and paste events; remember Shift for them.
      if (step?.action === "clipboard") this.copyNegative = this.pasteNegative = step.negative;
      return false;
    }
    if (step.action === "undo") this.undo();
    else if (step.action === "redo") this.redo();
    else if (step.action === "polarity") this.setPositive(!this.positive);
    else if (step.action === "narrower" || step.action === "wider") this.setBrushWidth(steppedWidth(this.brushWidth, step.action));
    else if (step.action === "roi") this.toggleRoi();
    else if (step.action === "tool") this.setTool(step.tool);
    else {
      this.drag = null; // "cancel" while dragging
      this.render();
    }
    return true;
  }

  /**
   * Ctrl+V with the canvas focused: Points Editor JSON (`[{"x": 10, "y": 20}, ...]`) adds points (negative ones with
   * Ctrl+Shift+V), `marks` JSON replaces the marks.
   */
  onPaste(event) {
    const text = event.clipboardData?.getData("text") ?? "";
    event.preventDefault();
    event.stopPropagation();
    try {
      this.commit(pasteIntoMarks(this.marks, text, this.pasteNegative));
      if (this.image) this.adoptImageSize();
    } catch (error) {
      this.warning = error.message;
      this.updateStatus();
    }
  }

  /** Ctrl+C with the canvas focused: the positive points as Points Editor JSON (Ctrl+Shift+C: the negative ones). */
  onCopy(event) {
    const { positive, negative } = toKJPoints(this.marks);
    event.clipboardData?.setData("text/plain", this.copyNegative ? negative : positive);
    event.preventDefault();
    event.stopPropagation();
  }

  // --- drawing --------------------------------------------------------------------------------------------------

  draw(ctx) {
    if (!this.fit) return;
    const dpr = window.devicePixelRatio || 1;
    const fit = this.fit;
    if (this.roi && this.showRoi) {
      const cells = roiCellsForImage(this.roi, this.image.naturalWidth, this.image.naturalHeight);
      for (const c of cells) {
        const a = imageToCanvas({ x: c.x0, y: c.y0 }, fit);
        const b = imageToCanvas({ x: c.x1, y: c.y1 }, fit);
        ctx.fillStyle = c.extension ? COLOURS.extension : COLOURS.prompt;
        ctx.strokeStyle = c.extension ? COLOURS.extensionEdge : COLOURS.promptEdge;
        ctx.lineWidth = dpr;
        ctx.fillRect(a.x, a.y, b.x - a.x, b.y - a.y);
        ctx.strokeRect(a.x + 0.5, a.y + 0.5, b.x - a.x - 1, b.y - a.y - 1);
      }
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(fit.x, fit.y, fit.width, fit.height);
    ctx.clip();
    const colour = (positive) => (positive ? COLOURS.positive : COLOURS.negative);
    const scribbles = [...this.marks.scribbles];
    const boxes = [...this.marks.boxes];
    const drag = this.drag;
    if (drag?.tool === "scribble") scribbles.push({ points: drag.points, width: drag.width, positive: drag.positive });
    if (drag?.tool === "box") boxes.push({ ...boxFromCorners(drag.start, drag.end), positive: drag.positive });
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const s of scribbles) {
      // The stroke at its true width, translucent, over a thin dark outline that keeps it visible on any image.
      const path = new Path2D();
      const [first, ...rest] = s.points.map(([x, y]) => imageToCanvas({ x, y }, fit));
      path.moveTo(first.x, first.y);
      for (const p of rest.length ? rest : [first]) path.lineTo(p.x, p.y);
      const width = s.width * fit.scale;
      ctx.globalAlpha = 0.5;
      ctx.strokeStyle = "#000";
      ctx.lineWidth = width + 2 * dpr;
      ctx.stroke(path);
      ctx.globalAlpha = 0.6;
      ctx.strokeStyle = colour(s.positive);
      ctx.lineWidth = width;
      ctx.stroke(path);
    }
    ctx.globalAlpha = 1;
    for (const b of boxes) {
      const a = imageToCanvas(b, fit);
      ctx.strokeStyle = colour(b.positive);
      ctx.fillStyle = b.positive ? "rgba(61, 220, 132, 0.12)" : "rgba(255, 90, 95, 0.12)";
      ctx.lineWidth = 2 * dpr;
      ctx.setLineDash(b.positive ? [] : [6 * dpr, 4 * dpr]);
      ctx.fillRect(a.x, a.y, b.width * fit.scale, b.height * fit.scale);
      ctx.strokeRect(a.x, a.y, b.width * fit.scale, b.height * fit.scale);
    }
    ctx.setLineDash([]);
    ctx.restore();
    for (const p of this.marks.points) {
      const c = imageToCanvas(p, fit);
      ctx.beginPath();
      ctx.arc(c.x, c.y, POINT_RADIUS * dpr, 0, 2 * Math.PI);
      ctx.fillStyle = colour(p.positive);
      ctx.fill();
      ctx.lineWidth = 1.5 * dpr;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      ctx.beginPath(); // + or - inside the dot
      ctx.moveTo(c.x - 2.5 * dpr, c.y);
      ctx.lineTo(c.x + 2.5 * dpr, c.y);
      if (p.positive) {
        ctx.moveTo(c.x, c.y - 2.5 * dpr);
        ctx.lineTo(c.x, c.y + 2.5 * dpr);
      }
      ctx.strokeStyle = "#000";
      ctx.stroke();
    }
  }
}
