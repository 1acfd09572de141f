// Pure logic of the marks (no DOM): the `marks` widget value of the IconMatting prompt nodes, and the KJNodes Points
// Editor JSON. The format is docs/MARKS.md; its constants (version, keys, limits, tolerances) come from
// marks_format.json, which the node reads too, and tests/fixtures/marks_cases.json holds the cases both must agree on:
//   {"version": 1, "image": {"width": W, "height": H, "fingerprint": "<128 hex digits>"},
//    "points":    [{"x": 120.5, "y": 88, "positive": true}],
//    "scribbles": [{"points": [[10, 20], [14, 26]], "width": 12, "positive": false}],
//    "boxes":     [{"x": 40, "y": 30, "width": 200, "height": 150, "positive": true}]}
// in pixels of the marked image (continuous: pixel i covers [i, i + 1)). Every key is optional; "" or "{}" means no
// marks. Marks are plain objects, never mutated: every edit returns new marks, which is what the undo history stores.
// Errors are Error objects whose message is the node's, word for word.
import { FINGERPRINT_DIGITS, fingerprintDifference, samePicture } from "./fingerprint.js";
import FORMAT from "./marks_format.json" with { type: "json" };

export const MARKS_VERSION = FORMAT.version;
export const MARK_KINDS = ["points", "scribbles", "boxes"];
const DECIMALS = 10 ** FORMAT.decimals;
const NAME = "marks";

/** Marks with nothing marked, drawn on an image of the given size (or of unknown size: null). */
export function emptyMarks(image = null) {
  return { version: MARKS_VERSION, image: image && { ...image }, points: [], scribbles: [], boxes: [] };
}

/** A parsed JSON value as errors show it: "nothing" when absent, JSON otherwise, cut at 80 characters. */
export function shown(value) {
  if (value === undefined) return "nothing";
  if (typeof value === "number") return String(value);
  const text = JSON.stringify(value);
  return text.length <= 80 ? text : `${text.slice(0, 77)}...`;
}

function fail(message, name = NAME) {
  throw new Error(`${name}: ${message}`);
}

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);

/** How deep lists and objects nest in `text` (outside string literals); 0 for a bare value. */
export function nestingDepth(text) {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
    } else if (c === "[" || c === "{") deepest = Math.max(deepest, ++depth);
    else if (c === "]" || c === "}") depth--;
  }
  return deepest;
}

/** The value of the JSON `text` of input `name`; errors as the node's (deep nesting, not JSON). */
export function loadJSON(text, name, example) {
  if (nestingDepth(text) > FORMAT.max_depth) {
    fail(
      `lists and objects nested more than ${FORMAT.max_depth} deep are not marks JSON: clear the widget, or write ` +
        `e.g. ${example}`,
      name,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    return fail(`not valid JSON (${error.message}); expected e.g. ${example}`, name);
  }
}

function object(item, kind, where) {
  if (!isObject(item)) fail(`${where} must be a JSON object like ${FORMAT.examples[kind]}, got ${shown(item)}`);
  const unknown = Object.keys(item).filter((key) => !FORMAT.keys[kind].includes(key)).sort();
  if (unknown.length) {
    const listed = unknown.map((key) => JSON.stringify(key)).join(", ");
    fail(`unknown keys ${listed} in ${where}: the keys are ${FORMAT.keys[kind].join(", ")}`);
  }
  return item;
}

function number(item, key, where) {
  const value = item[key];
  if (!isNumber(value)) fail(`${where}.${key} must be a finite number, got ${shown(value)}`);
  return value;
}

function polarity(item, where) {
  const value = item.positive ?? true;
  if (typeof value !== "boolean") fail(`${where}.positive must be true or false, got ${shown(value)}`);
  return value;
}

function list(data, key) {
  const value = data[key] ?? [];
  if (data[key] === null || !Array.isArray(value)) fail(`${key} must be a list, got ${shown(data[key])}`);
  return value;
}

function readImage(data) {
  if (data.image === undefined || data.image === null) return null;
  const item = object(data.image, "image", "image");
  const image = {};
  for (const key of ["width", "height"]) {
    const value = number(item, key, "image");
    if (!(value >= 1 && Number.isInteger(value))) fail(`image.${key} must be a whole number of pixels, at least 1, got ${shown(value)}`);
    image[key] = value;
  }
  const fingerprint = item.fingerprint;
  if (fingerprint !== undefined && fingerprint !== null) {
    if (typeof fingerprint !== "string" || fingerprint.length !== FINGERPRINT_DIGITS || !/^[0-9a-f]*$/.test(fingerprint)) {
      fail(
        `image.fingerprint must be ${FINGERPRINT_DIGITS} lowercase hexadecimal digits (the editor writes it), got ` +
          `${shown(fingerprint)}: delete it to use the marks without it`,
      );
    }
    image.fingerprint = fingerprint;
  }
  return image;
}

function readScribble(item, where) {
  object(item, "scribble", where);
  const width = number(item, "width", where);
  if (width <= 0) fail(`${where}.width must be above 0 pixels, got ${shown(width)}`);
  const vertices = item.points;
  if (!Array.isArray(vertices) || vertices.length === 0) {
    fail(`${where}.points must be a non-empty list of [x, y] pairs, got ${shown(vertices)}`);
  }
  const points = vertices.map((vertex, j) => {
    if (!(Array.isArray(vertex) && vertex.length === 2 && isNumber(vertex[0]) && isNumber(vertex[1]))) {
      fail(`${where}.points[${j}] must be an [x, y] pair of finite numbers, got ${shown(vertex)}`);
    }
    return [vertex[0], vertex[1]];
  });
  return { points, width, positive: polarity(item, where) };
}

function readBox(item, where) {
  object(item, "box", where);
  const [x, y, width, height] = ["x", "y", "width", "height"].map((key) => number(item, key, where));
  if (!(width > 0 && height > 0)) fail(`${where} is ${shown(width)}x${shown(height)} pixels: a box needs a width and a height above 0`);
  return { x, y, width, height, positive: polarity(item, where) };
}

/**
 * Parse a `marks` widget value (checked for form, not yet against an image). Throws an Error naming `marks` for deep
 * nesting, malformed JSON, another version, unknown keys, values that are not finite numbers (booleans included),
 * images, scribble widths or boxes without a size, scribbles without points.
 */
export function parseMarks(text) {
  if (text === undefined || text === null || String(text).trim() === "") return emptyMarks();
  const data = object(loadJSON(String(text), NAME, FORMAT.examples.marks), "marks", "the marks");
  const version = data.version ?? MARKS_VERSION;
  if (!(isNumber(version) && version === MARKS_VERSION)) {
    fail(`version must be ${MARKS_VERSION} (the version this pack reads), got ${shown(version)}`);
  }
  const image = readImage(data);
  const points = list(data, "points").map((item, i) => {
    object(item, "point", `points[${i}]`);
    return { x: number(item, "x", `points[${i}]`), y: number(item, "y", `points[${i}]`), positive: polarity(item, `points[${i}]`) };
  });
  const scribbles = list(data, "scribbles").map((item, i) => readScribble(item, `scribbles[${i}]`));
  const boxes = list(data, "boxes").map((item, i) => readBox(item, `boxes[${i}]`));
  return { version: MARKS_VERSION, image, points, scribbles, boxes };
}

const round = (v) => Math.round(v * DECIMALS) / DECIMALS;

/** The `marks` widget value of some marks: "" when nothing is marked (the node's default). */
export function serializeMarks(marks) {
  if (markCount(marks) === 0) return "";
  const data = { version: MARKS_VERSION };
  if (marks.image) {
    data.image = { width: marks.image.width, height: marks.image.height };
    if (marks.image.fingerprint) data.image.fingerprint = marks.image.fingerprint;
  }
  data.points = marks.points.map((p) => ({ x: round(p.x), y: round(p.y), positive: p.positive }));
  data.scribbles = marks.scribbles.map((s) => ({
    points: s.points.map(([x, y]) => [round(x), round(y)]),
    width: round(s.width),
    positive: s.positive,
  }));
  data.boxes = marks.boxes.map((b) => ({
    x: round(b.x),
    y: round(b.y),
    width: round(b.width),
    height: round(b.height),
    positive: b.positive,
  }));
  return JSON.stringify(data);
}

/** How many marks (points + scribbles + boxes). */
export function markCount(marks) {
  return marks.points.length + marks.scribbles.length + marks.boxes.length;
}

/** New marks with one more mark of `kind` ("points", "scribbles" or "boxes"). */
export function addMark(marks, kind, mark) {
  if (!MARK_KINDS.includes(kind)) throw new Error(`unknown mark kind ${kind}`);
  return { ...marks, [kind]: [...marks[kind], mark] };
}

/** New marks with nothing marked, on the same image. */
export function clearMarks(marks) {
  return emptyMarks(marks.image);
}

/**
 * Whether images of sizes `drawn` and `size` ({width, height}) show one picture: resizing the larger to the smaller's
 * size is exact up to `aspect_rounding_px` on each side, |w0 h - h0 w| <= a (w + h) of the larger.
 */
export function sameAspectRatio(drawn, size) {
  const { width: w0, height: h0 } = drawn;
  const { width: w, height: h } = size;
  return Math.abs(w0 * h - h0 * w) <= FORMAT.aspect_rounding_px * Math.max(w0 + h0, w + h);
}

function checkInside(marks, width, height) {
  const tolerance = FORMAT.edge_tolerance_px;
  const check = (pairs, what) => {
    for (const [x, y] of pairs) {
      if (!(x >= -tolerance && y >= -tolerance && x <= width + tolerance && y <= height + tolerance)) {
        fail(`${what} at (${shown(x)}, ${shown(y)}) lies outside the ${width}x${height} image: marks must lie on the image they were drawn on`);
      }
    }
  };
  marks.points.forEach((p, i) => check([[p.x, p.y]], `points[${i}]`));
  marks.scribbles.forEach((s, i) => check(s.points, `scribbles[${i}]`));
  marks.boxes.forEach((b, i) => check([[b.x, b.y], [b.x + b.width, b.y + b.height]], `boxes[${i}]`));
}

function checkPicture(marks, fingerprint) {
  const drawn = marks.image?.fingerprint;
  if (!drawn || !fingerprint || samePicture(drawn, fingerprint)) return;
  const [difference, correlation] = fingerprintDifference(drawn, fingerprint);
  fail(
    `drawn on another picture (its 8x8 grey thumbnail differs from this image's by ${difference.toFixed(0)} grey ` +
      `levels on average, above ${FORMAT.fingerprint.max_mean_difference}, and correlates ${correlation.toFixed(2)}, ` +
      `below ${FORMAT.fingerprint.min_correlation}): clear the marks and mark this image, or delete image.fingerprint ` +
      "from the marks to use them on it anyway",
  );
}

/**
 * The marks on an image of `width` x `height` pixels whose fingerprint is `fingerprint` (null: unknown), as the node
 * reads them: rescaled from the image they were drawn on (x * width / w0, scribble widths by the geometric mean of the
 * two scales) and snapped onto the image when float rounding put them up to `edge_tolerance_px` off it. Returns
 * {marks, scaled}; throws the node's error for marks outside the image they were drawn on, an image of another aspect
 * ratio or another picture.
 */
export function fitMarksToImage(marks, width, height, fingerprint = null) {
  const drawn = marks.image ?? { width, height };
  const { width: w0, height: h0 } = drawn;
  checkInside(marks, w0, h0);
  const scaled = w0 !== width || h0 !== height;
  if (scaled && !sameAspectRatio(drawn, { width, height })) {
    fail(`drawn on a ${w0}x${h0} image but the image is ${width}x${height}, another aspect ratio: redraw the marks on this image`);
  }
  checkPicture(marks, fingerprint);
  const stroke = Math.sqrt((width / w0) * (height / h0));
  const x = (v) => Math.min(Math.max((v * width) / w0, 0), width);
  const y = (v) => Math.min(Math.max((v * height) / h0, 0), height);
  const image = { ...drawn, width, height };
  if (!image.fingerprint) delete image.fingerprint;
  return {
    marks: {
      version: MARKS_VERSION,
      image,
      points: marks.points.map((p) => ({ ...p, x: x(p.x), y: y(p.y) })),
      scribbles: marks.scribbles.map((s) => ({ ...s, points: s.points.map(([u, v]) => [x(u), y(v)]), width: s.width * stroke })),
      boxes: marks.boxes.map((b) => {
        const [bx, by] = [x(b.x), y(b.y)];
        return { ...b, x: bx, y: by, width: Math.min((b.width * width) / w0, width - bx), height: Math.min((b.height * height) / h0, height - by) };
      }),
    },
    scaled,
  };
}

/**
 * The points of some marks as KJNodes Points Editor JSON (`[{"x": int, "y": int}, ...]`, image pixels), one string for
 * the positive and one for the negative points; rounded to whole pixels and kept on the image when its size is known.
 */
export function toKJPoints(marks) {
  const clamp = (v, size) => (size ? Math.min(size - 1, Math.max(0, v)) : v);
  const convert = (positive) =>
    JSON.stringify(
      marks.points
        .filter((p) => p.positive === positive)
        .map((p) => ({ x: clamp(Math.round(p.x), marks.image?.width), y: clamp(Math.round(p.y), marks.image?.height) })),
    );
  return { positive: convert(true), negative: convert(false) };
}

/**
 * Pixel points [[x, y], ...] of KJNodes Points Editor JSON (`[{"x": 10, "y": 20}, ...]` or `[[10, 20], ...]`) given
 * to input `name`, on an image of `width` x `height` pixels (null: unknown); "" means none. Throws the node's errors,
 * also for points all within 0..1 (normalised coordinates, refused as the node refuses them).
 */
export function parsePoints(text, name, width = null, height = null) {
  if (text === undefined || text === null || String(text).trim() === "") return [];
  let data = loadJSON(String(text), name, FORMAT.examples.kjnodes_points);
  if (isObject(data)) data = [data];
  const points = (Array.isArray(data) ? data : [null]).map((item, i) => {
    const [x, y] = Array.isArray(item) && item.length === 2 ? item : isObject(item) ? [item.x, item.y] : [null, null];
    if (!(isNumber(x) && isNumber(y))) throw new Error(`${name}[${i}] must be a point like {"x": 10, "y": 20} (pixels), got ${shown(item)}`);
    return [x, y];
  });
  if (points.length && width && height && Math.max(width, height) > 2 && points.every(([x, y]) => x >= 0 && x <= 1 && y >= 0 && y <= 1)) {
    throw new Error(
      `${name} are all within 0..1: they look like normalized coordinates, but they must be pixels of the ` +
        `${width}x${height} image (multiply x by ${width} and y by ${height})`,
    );
  }
  return points;
}

/**
 * Marks with text pasted into the editor: KJNodes Points Editor JSON (a list) adds points, positive or (`negative`)
 * negative ones; `marks` JSON replaces the marks (keeping the image when it names none). Throws on malformed text.
 */
export function pasteIntoMarks(marks, text, negative = false) {
  if (String(text).trim().startsWith("[")) {
    const name = negative ? "negative_points" : "positive_points";
    const points = parsePoints(text, name, marks.image?.width, marks.image?.height);
    return { ...marks, points: [...marks.points, ...points.map(([x, y]) => ({ x, y, positive: !negative }))] };
  }
  const pasted = parseMarks(text);
  return { ...pasted, image: pasted.image ?? marks.image };
}
