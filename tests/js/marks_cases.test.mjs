// The shared marks cases (tests/fixtures/marks_cases.json), read by the editor's parser; tests/test_marks_cases.py
// runs the node's parser on the same file, so the two cannot disagree.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { pictureFingerprint, samePicture } from "../../web/js/editor/fingerprint.js";
import { fitMarksToImage, parseMarks, parsePoints } from "../../web/js/editor/marks.js";

const CASES = JSON.parse(readFileSync(new URL("../fixtures/marks_cases.json", import.meta.url), "utf8"));

const text = (c) => (typeof c.marks === "string" ? c.marks : JSON.stringify(c.marks));
const read = (c) => fitMarksToImage(parseMarks(text(c)), c.image[0], c.image[1], c.fingerprint ?? null).marks;

/** Nested equality, numbers within 1e-9. */
function assertClose(got, expected, path = "") {
  if (typeof expected === "number") {
    assert.ok(Math.abs(got - expected) <= 1e-9, `${path}: ${got} != ${expected}`);
  } else if (Array.isArray(expected)) {
    assert.equal(got.length, expected.length, `${path}: length`);
    expected.forEach((v, i) => assertClose(got[i], v, `${path}[${i}]`));
  } else if (typeof expected === "object" && expected !== null) {
    assert.deepEqual(Object.keys(got).sort(), Object.keys(expected).sort(), `${path}: keys`);
    for (const key of Object.keys(expected)) assertClose(got[key], expected[key], `${path}.${key}`);
  } else {
    assert.equal(got, expected, path);
  }
}

for (const c of CASES.valid) {
  test(`valid: ${c.name}`, () => {
    const { points, scribbles, boxes } = read(c);
    assertClose({ points, scribbles, boxes }, c.expected);
  });
}

for (const c of CASES.invalid) {
  test(`invalid: ${c.name}`, () => {
    assert.throws(() => read(c), (error) => {
      assert.ok(error.message.includes(c.error), `${JSON.stringify(error.message)} lacks ${JSON.stringify(c.error)}`);
      return true;
    });
  });
}

for (const c of CASES.points) {
  test(`points: ${c.name}`, () => {
    const parse = () => parsePoints(c.text, "positive_points", c.image[0], c.image[1]);
    if (c.error === undefined) assert.deepEqual(parse(), c.expected);
    else assert.throws(parse, (error) => error.message.includes(c.error));
  });
}

for (const c of CASES.fingerprints.pictures) {
  test(`fingerprint: ${c.name}`, () => {
    const rgba = new Uint8ClampedArray(4 * c.width * c.height);
    c.rgb.forEach(([r, g, b], i) => rgba.set([r, g, b, 255], 4 * i));
    assert.equal(pictureFingerprint(rgba, c.width, c.height), c.fingerprint);
  });
}

test("fingerprint pairs: one picture or two", () => {
  const pairs = CASES.fingerprints.pairs;
  assert.deepEqual(pairs.map((p) => samePicture(p.a, p.b)), pairs.map((p) => p.same));
});
