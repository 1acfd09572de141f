// The RoI overlay data a run sends back (`iconmatting_roi`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseRoi, roiCellsForImage, roiCounts } from "../../web/js/editor/roi.js";

const UI = [{ width: 64, height: 32, cells: [[0, 0, 16, 16, "prompt"], [16, 0, 32, 16, "extension"], [1, 2, 3]] }];

test("cells of both kinds; malformed cells are skipped", () => {
  const roi = parseRoi(UI);
  assert.deepEqual(roi.cells, [
    { x0: 0, y0: 0, x1: 16, y1: 16, extension: false },
    { x0: 16, y0: 0, x1: 32, y1: 16, extension: true },
  ]);
  assert.deepEqual(roiCounts(roi), { prompt: 1, extension: 1 });
});

test("no overlay without an entry, cells or size", () => {
  assert.equal(parseRoi(undefined), null);
  assert.equal(parseRoi([]), null);
  assert.equal(parseRoi([{ width: 0, height: 3, cells: [] }]), null);
});

test("cells scale to the image shown", () => {
  assert.deepEqual(roiCellsForImage(parseRoi(UI), 128, 64)[1], { x0: 32, y0: 0, x1: 64, y1: 32, extension: true });
});
