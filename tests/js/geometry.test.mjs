// Image <-> canvas coordinates of the mark editor: exact image pixels at any zoom, aspect ratio and node size.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  boxFromCorners,
  canvasToImage,
  clampToImage,
  clientToCanvas,
  fitImage,
  imageToCanvas,
  insideImage,
} from "../../web/js/editor/geometry.js";

test("a wide image is letterboxed top and bottom, a tall one left and right", () => {
  assert.deepEqual(fitImage(640, 320, 400, 400), { scale: 0.625, x: 0, y: 100, width: 400, height: 200 });
  assert.deepEqual(fitImage(100, 400, 400, 200), { scale: 0.5, x: 175, y: 0, width: 50, height: 200 });
  assert.deepEqual(fitImage(100, 100, 120, 120, 10), { scale: 1, x: 10, y: 10, width: 100, height: 100 });
});

test("fitImage refuses an image without a size", () => {
  assert.throws(() => fitImage(0, 10, 100, 100), /positive/);
});

// The canvas backing store is canvasW x canvasH; the browser shows it at rect (graph zoom, device pixel ratio).
const cases = [];
for (const [imageW, imageH] of [[640, 480], [1920, 200], [37, 1000], [1, 1]]) {
  for (const [canvasW, canvasH] of [[400, 300], [256, 700], [1000, 120]]) {
    for (const zoom of [0.25, 1, 1.7, 4]) cases.push({ imageW, imageH, canvasW, canvasH, zoom });
  }
}

test("client -> image -> client is exact for every zoom, aspect ratio and node size", () => {
  for (const { imageW, imageH, canvasW, canvasH, zoom } of cases) {
    const fit = fitImage(imageW, imageH, canvasW, canvasH, 6);
    const rect = { left: 33, top: -12, width: canvasW * zoom * 0.5, height: canvasH * zoom * 0.5 }; // dpr 2
    for (const [u, v] of [[0, 0], [0.5, 0.25], [1, 1], [0.999, 0.001]]) {
      const image = { x: u * imageW, y: v * imageH };
      const canvas = imageToCanvas(image, fit);
      const client = {
        x: rect.left + (canvas.x * rect.width) / canvasW,
        y: rect.top + (canvas.y * rect.height) / canvasH,
      };
      const back = canvasToImage(clientToCanvas(client.x, client.y, rect, canvasW, canvasH), fit);
      assert.ok(Math.abs(back.x - image.x) < 1e-9 * Math.max(1, imageW), `${JSON.stringify({ imageW, canvasW, zoom })}`);
      assert.ok(Math.abs(back.y - image.y) < 1e-9 * Math.max(1, imageH));
    }
  }
});

test("the image's corners land on the fitted rectangle's corners", () => {
  const fit = fitImage(640, 480, 500, 500);
  assert.deepEqual(imageToCanvas({ x: 0, y: 0 }, fit), { x: 0, y: 62.5 });
  assert.deepEqual(imageToCanvas({ x: 640, y: 480 }, fit), { x: 500, y: 437.5 });
  // A click in the letterbox band is off the image.
  const p = canvasToImage({ x: 250, y: 10 }, fit);
  assert.equal(insideImage(p, 640, 480), false);
  assert.deepEqual(clampToImage(p, 640, 480), { x: 320, y: 0 });
});

test("the pixel under a given client position, at graph zoom 2 on a canvas shown at half its backing size", () => {
  // 200 x 100 image in a 400 x 200 backing store (scale 2), the element shown at 200 x 100 CSS px scaled by zoom 2.
  const fit = fitImage(200, 100, 400, 200);
  const rect = { left: 10, top: 20, width: 400, height: 200 };
  const p = canvasToImage(clientToCanvas(10 + 101, 20 + 51, rect, 400, 200), fit);
  assert.deepEqual(p, { x: 50.5, y: 25.5 });
});

test("a box from two corners in any drag direction", () => {
  const box = { x: 10, y: 5, width: 30, height: 15 };
  assert.deepEqual(boxFromCorners({ x: 40, y: 20 }, { x: 10, y: 5 }), box);
  assert.deepEqual(boxFromCorners({ x: 10, y: 20 }, { x: 40, y: 5 }), box);
});
