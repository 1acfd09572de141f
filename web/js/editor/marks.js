// Pure logic of the marks (no DOM): the `marks` widget value of the IconMatting prompt nodes, and the KJNodes Points
// Editor JSON. The `marks` JSON, in pixels of the marked image (continuous: pixel i covers [i, i + 1)):
//   {"version": 1, "image": {"width": W, "height": H},
//    "points":    [{"x": 120.5, "y": 88, "positive": true}],
//    "scribbles": [{"points": [[10, 20], [14, 26]], "width": 12, "positive": false}],
//    "boxes":     [{"x": 40, "y": 30, "width": 200, "height": 150, "positive": true}]}
// Every key but `version` is optional; "" or "{}" means no marks. Marks are plain objects, never mutated: every edit
// returns new marks, which is what the undo history stores.

export const MARKS_VERSION = 1;
export const MARK_KINDS = ["points", "scribbles", "boxes"];
const DECIMALS = 100; // coordinates are kept to 1/100 pixel

/** Marks with nothing marked, drawn on an image of the given size (or of unknown size: null). */
export function emptyMarks(image = null) {
  return { version: MARKS_VERSION, image: image && { width: image.width, height: image.height }, points: [], scribbles: [], boxes: [] };
}

function fail(message) {
  throw new Error(`marks: ${message}. Clear the marks or fix the JSON in the "marks" widget.`);
}

function number(value, what) {
  if (typeof value !== "number" || !Number.isFinite(value)) fail(`${what} must be a number, got ${JSON.stringify(value)}`);
  return value;
}

function polarity(value, what) {
  if (value === undefined) return true;
  if (typeof value !== "boolean") fail(`${what}.positive must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function list(data, key) {
  const value = data[key] ?? [];
  if (!Array.isArray(value)) fail(`"${key}" must be a list`);
  return value;
}

/** Parse a `marks` widget value. Throws an Error naming `marks` on malformed input. */
export function parseMarks(text) {
  if (text === undefined || text === null || String(text).trim() === "") return emptyMarks();
  let data;
  try {
    data = JSON.parse(text);
  } catch (error) {
    fail(`not valid JSON (${error.message})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) fail("must be a JSON object");
  if (data.version !== undefined && data.version !== MARKS_VERSION) fail(`unknown version ${JSON.stringify(data.version)}`);
  let image = null;
  if (data.image !== undefined && data.image !== null) {
    image = { width: number(data.image.width, "image.width"), height: number(data.image.height, "image.height") };
    if (image.width <= 0 || image.height <= 0) fail("image.width and image.height must be positive");
  }
  const points = list(data, "points").map((p, i) => ({
    x: number(p?.x, `points[${i}].x`),
    y: number(p?.y, `points[${i}].y`),
    positive: polarity(p?.positive, `points[${i}]`),
  }));
  const scribbles = list(data, "scribbles").map((s, i) => {
    if (!Array.isArray(s?.points)) fail(`scribbles[${i}].points must be a list of [x, y]`);
    const width = number(s.width, `scribbles[${i}].width`);
    if (width <= 0) fail(`scribbles[${i}].width must be positive`);
    return {
      points: s.points.map((q, j) => {
        if (!Array.isArray(q) || q.length !== 2) fail(`scribbles[${i}].points[${j}] must be [x, y]`);
        return [number(q[0], `scribbles[${i}].points[${j}][0]`), number(q[1], `scribbles[${i}].points[${j}][1]`)];
      }),
      width,
      positive: polarity(s.positive, `scribbles[${i}]`),
    };
  });
  const boxes = list(data, "boxes").map((b, i) => {
    const box = {
      x: number(b?.x, `boxes[${i}].x`),
      y: number(b?.y, `boxes[${i}].y`),
      width: number(b?.width, `boxes[${i}].width`),
      height: number(b?.height, `boxes[${i}].height`),
      positive: polarity(b?.positive, `boxes[${i}]`),
    };
    if (box.width < 0 || box.height < 0) fail(`boxes[${i}] must have a non-negative width and height`);
    return box;
  });
  return { version: MARKS_VERSION, image, points, scribbles, boxes };
}

const round = (v) => Math.round(v * DECIMALS) / DECIMALS;

/** The `marks` widget value of some marks: "" when nothing is marked (the node's default). */
export function serializeMarks(marks) {
  if (markCount(marks) === 0) return "";
  const data = { version: MARKS_VERSION };
  if (marks.image) data.image = { width: marks.image.width, height: marks.image.height };
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
 * The marks for an image of another size: scaled when the aspect ratio is the same (up to a pixel of rounding),
 * unchanged otherwise. Returns {marks, scaled, mismatch}: mismatch = the marks were drawn on an image of another
 * aspect ratio (the node reports that as an error naming `marks`).
 */
export function fitMarksToImage(marks, width, height) {
  const image = { width, height };
  if (!marks.image) return { marks: { ...marks, image }, scaled: false, mismatch: false };
  const { width: w0, height: h0 } = marks.image;
  if (w0 === width && h0 === height) return { marks, scaled: false, mismatch: false };
  const sx = width / w0;
  const sy = height / h0;
  if (Math.abs(w0 * sy - width) > 1 && Math.abs(h0 * sx - height) > 1) return { marks, scaled: false, mismatch: true };
  const s = Math.sqrt(sx * sy);
  return {
    marks: {
      version: MARKS_VERSION,
      image,
      points: marks.points.map((p) => ({ ...p, x: p.x * sx, y: p.y * sy })),
      scribbles: marks.scribbles.map((q) => ({ ...q, points: q.points.map(([x, y]) => [x * sx, y * sy]), width: q.width * s })),
      boxes: marks.boxes.map((b) => ({ ...b, x: b.x * sx, y: b.y * sy, width: b.width * sx, height: b.height * sy })),
    },
    scaled: true,
    mismatch: false,
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

function parseKJ(text, positive, name) {
  if (text === undefined || text === null || String(text).trim() === "") return [];
  let data;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`${name}: not valid Points Editor JSON (${error.message})`);
  }
  if (!Array.isArray(data)) throw new Error(`${name}: expected a list like [{"x": 10, "y": 20}]`);
  return data.map((p, i) => {
    if (typeof p?.x !== "number" || typeof p?.y !== "number") throw new Error(`${name}[${i}] needs numbers "x" and "y"`);
    return { x: p.x, y: p.y, positive };
  });
}

/** Points (the marks' `points` entries) from KJNodes Points Editor JSON strings; either may be empty. */
export function fromKJPoints(positiveText, negativeText = "") {
  return [...parseKJ(positiveText, true, "positive_points"), ...parseKJ(negativeText, false, "negative_points")];
}
