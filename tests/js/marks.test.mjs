// The `marks` widget value round trip and the KJNodes Points Editor JSON in and out.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addMark,
  clearMarks,
  emptyMarks,
  fitMarksToImage,
  fromKJPoints,
  markCount,
  parseMarks,
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

test("malformed marks are an error naming marks and the faulty entry", () => {
  assert.throws(() => parseMarks("{"), /^Error: marks: not valid JSON/);
  assert.throws(() => parseMarks("[]"), /marks: must be a JSON object/);
  assert.throws(() => parseMarks('{"version": 2}'), /unknown version 2/);
  assert.throws(() => parseMarks('{"points": [{"x": "1", "y": 2}]}'), /points\[0\]\.x must be a number/);
  assert.throws(() => parseMarks('{"scribbles": [{"points": [[1]], "width": 3}]}'), /scribbles\[0\]\.points\[0\]/);
  assert.throws(() => parseMarks('{"scribbles": [{"points": [], "width": 0}]}'), /width must be positive/);
  assert.throws(() => parseMarks('{"boxes": [{"x": 0, "y": 0, "width": -1, "height": 2}]}'), /boxes\[0\]/);
  assert.throws(() => parseMarks('{"points": [{"x": 1, "y": 2, "positive": "no"}]}'), /positive must be true or false/);
  assert.throws(() => parseMarks('{"image": {"width": 0, "height": 3}}'), /must be positive/);
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

test("marks follow an image of the same aspect ratio at another size; another aspect ratio is flagged", () => {
  const marks = parseMarks(JSON.stringify(CONTRACT_EXAMPLE));
  const { marks: half, scaled, mismatch } = fitMarksToImage(marks, 320, 240);
  assert.equal(scaled, true);
  assert.equal(mismatch, false);
  assert.deepEqual(half.points[0], { x: 60.25, y: 44, positive: true });
  assert.deepEqual(half.boxes[0], { x: 20, y: 15, width: 100, height: 75, positive: true });
  assert.deepEqual(half.scribbles[0].points[1], [7, 13]);
  assert.equal(half.scribbles[0].width, 6);
  assert.equal(fitMarksToImage(marks, 640, 480).marks, marks);
  const other = fitMarksToImage(marks, 480, 480);
  assert.equal(other.mismatch, true);
  assert.equal(other.marks, marks);
  // Marks drawn before the image was known adopt its size.
  assert.deepEqual(fitMarksToImage(parseMarks('{"points": []}'), 7, 9).marks.image, { width: 7, height: 9 });
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

test("KJNodes Points Editor JSON in, and whole-pixel points round-trip", () => {
  const positive = '[{"x": 10, "y": 20}, {"x": 30, "y": 40}]';
  const negative = '[{"x": 1, "y": 2}]';
  const points = fromKJPoints(positive, negative);
  assert.deepEqual(points, [
    { x: 10, y: 20, positive: true },
    { x: 30, y: 40, positive: true },
    { x: 1, y: 2, positive: false },
  ]);
  const out = toKJPoints({ ...emptyMarks({ width: 64, height: 64 }), points });
  assert.deepEqual(JSON.parse(out.positive), JSON.parse(positive));
  assert.deepEqual(JSON.parse(out.negative), JSON.parse(negative));
  assert.deepEqual(fromKJPoints("", ""), []);
  assert.throws(() => fromKJPoints("{}"), /positive_points: expected a list/);
  assert.throws(() => fromKJPoints("[]", '[{"x": 1}]'), /negative_points\[0\]/);
  assert.throws(() => fromKJPoints("[{"), /positive_points: not valid/);
});
