// The `marks` widget value round trip and the KJNodes Points Editor JSON in and out.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addMark,
  clearMarks,
  emptyMarks,
  fitMarksToImage,
  markCount,
  nestingDepth,
  parseMarks,
  pasteIntoMarks,
  serializeMarks,
  toKJPoints,
} from "../../web/js/editor/marks.js";

const CONTRACT_EXAMPLE = {
  version: 1,
  image: { width: 640, height: 480 },
  points: [{ x: 120.5, y: 88, positive: true }],
  scribbles: [{ points: [[10, 20], [14, 26], [30, 40]], width: 12, positive: false }],
  boxes: [{ x: 40, y: 30, width: 200, height: 150, positive: true }],
};

test("the contract's example round-trips exactly", () => {
  const text = JSON.stringify(CONTRACT_EXAMPLE);
  assert.deepEqual(parseMarks(text), CONTRACT_EXAMPLE);
  assert.equal(serializeMarks(parseMarks(text)), text);
});

test('"" and "{}" are no marks; no marks serialise to the default ""', () => {
  for (const text of ["", "  ", "{}", undefined, null]) assert.equal(markCount(parseMarks(text)), 0);
  assert.equal(serializeMarks(emptyMarks({ width: 5, height: 5 })), "");
  assert.equal(serializeMarks(clearMarks(parseMarks(JSON.stringify(CONTRACT_EXAMPLE)))), "");
});

test("missing keys default: positive is true, lists are empty", () => {
  const marks = parseMarks('{"version": 1, "points": [{"x": 1, "y": 2}]}');
  assert.deepEqual(marks.points, [{ x: 1, y: 2, positive: true }]);
  assert.deepEqual(marks.boxes, []);
  assert.equal(marks.image, null);
});

test("malformed marks are an error naming marks and the faulty entry (more cases: marks_cases.test.mjs)", () => {
  assert.throws(() => parseMarks("{"), /^Error: marks: not valid JSON/);
  assert.throws(() => parseMarks("[]"), /marks: the marks must be a JSON object/);
  // A pasted mess nested far deeper than any marks: refused before JSON.parse sees it.
  assert.throws(() => parseMarks("[".repeat(100000) + "]".repeat(100000)), /nested more than 32 deep/);
});

test("nesting depth ignores brackets inside strings, escaped quotes included", () => {
  assert.equal(nestingDepth('{"a": [[1]], "b": "[[[[\\"{{"}'), 3);
  assert.equal(nestingDepth("12"), 0);
  assert.equal(nestingDepth('"[[[unterminated'), 0);
});

test("edits return new marks and leave the old ones untouched", () => {
  const before = emptyMarks({ width: 100, height: 50 });
  const after = addMark(before, "points", { x: 3, y: 4, positive: false });
  assert.equal(markCount(before), 0);
  assert.equal(markCount(after), 1);
  assert.throws(() => addMark(before, "circles", {}), /unknown mark kind/);
  const text = serializeMarks(addMark(after, "boxes", { x: 1 / 3, y: 2 / 3, width: 10, height: 5, positive: true }));
  assert.deepEqual(JSON.parse(text).boxes[0], { x: 0.33, y: 0.67, width: 10, height: 5, positive: true });
});

test("marks follow an image of the same aspect ratio at another size; another aspect ratio is an error", () => {
  const marks = parseMarks(JSON.stringify(CONTRACT_EXAMPLE));
  const { marks: half, scaled } = fitMarksToImage(marks, 320, 240);
  assert.equal(scaled, true);
  assert.deepEqual(half.points[0], { x: 60.25, y: 44, positive: true });
  assert.deepEqual(half.boxes[0], { x: 20, y: 15, width: 100, height: 75, positive: true });
  assert.deepEqual(half.scribbles[0].points[1], [7, 13]);
  assert.equal(half.scribbles[0].width, 6);
  assert.equal(fitMarksToImage(marks, 640, 480).scaled, false);
  assert.throws(() => fitMarksToImage(marks, 480, 480), /marks: drawn on a 640x480 image but the image is 480x480/);
  // Marks drawn before the image was known adopt its size.
  assert.deepEqual(fitMarksToImage(parseMarks('{"points": []}'), 7, 9).marks.image, { width: 7, height: 9 });
});

test("the fingerprint of the picture survives a rescale and the widget value", () => {
  const fingerprint = "10".repeat(64);
  const marks = parseMarks(JSON.stringify({ ...CONTRACT_EXAMPLE, image: { width: 640, height: 480, fingerprint } }));
  const { marks: half } = fitMarksToImage(marks, 320, 240, fingerprint);
  assert.deepEqual(half.image, { width: 320, height: 240, fingerprint });
  assert.equal(JSON.parse(serializeMarks(half)).image.fingerprint, fingerprint);
  assert.throws(() => fitMarksToImage(marks, 640, 480, "f0".repeat(64)), /drawn on another picture/);
});

test("points out as KJNodes Points Editor JSON, whole pixels on the image", () => {
  const marks = {
    ...emptyMarks({ width: 100, height: 50 }),
    points: [
      { x: 10.4, y: 20.6, positive: true },
      { x: 99.9, y: 49.9, positive: true },
      { x: 5, y: 6, positive: false },
    ],
  };
  assert.deepEqual(toKJPoints(marks), { positive: '[{"x":10,"y":21},{"x":99,"y":49}]', negative: '[{"x":5,"y":6}]' });
  assert.deepEqual(toKJPoints(emptyMarks()), { positive: "[]", negative: "[]" });
});

test("pasting: KJNodes points add points (negative with Shift), marks JSON replaces the marks", () => {
  const marks = { ...emptyMarks({ width: 64, height: 64 }), points: [{ x: 1, y: 1, positive: true }] };
  const pasted = pasteIntoMarks(marks, '[{"x": 10, "y": 20}, [30, 40]]');
  assert.deepEqual(pasted.points, [
    { x: 1, y: 1, positive: true },
    { x: 10, y: 20, positive: true },
    { x: 30, y: 40, positive: true },
  ]);
  assert.deepEqual(pasteIntoMarks(marks, '[{"x": 5, "y": 6}]', true).points[1], { x: 5, y: 6, positive: false });
  assert.equal(marks.points.length, 1); // unchanged
  // Copy (toKJPoints) then paste gives the same whole-pixel points back.
  const copied = toKJPoints(pasted);
  assert.deepEqual(pasteIntoMarks(emptyMarks({ width: 64, height: 64 }), copied.positive).points, pasted.points);
  // marks JSON replaces; without an image it keeps the editor's.
  const replaced = pasteIntoMarks(marks, '{"boxes": [{"x": 1, "y": 2, "width": 3, "height": 4}]}');
  assert.deepEqual(replaced.points, []);
  assert.deepEqual(replaced.image, { width: 64, height: 64 });
  assert.throws(() => pasteIntoMarks(marks, '[{"x": 0.5, "y": 0.5}]'), /positive_points are all within 0\.\.1/);
  assert.throws(() => pasteIntoMarks(marks, "[{"), /positive_points: not valid JSON/);
  assert.throws(() => pasteIntoMarks(marks, '[{"x": 1}]', true), /negative_points\[0\] must be a point/);
  assert.throws(() => pasteIntoMarks(marks, '{"point": []}'), /unknown keys "point"/);
});
