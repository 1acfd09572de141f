// Pure geometry of the mark editor (no DOM): where the image sits in the editor's canvas and how a pointer position
// maps to exact image pixels, at any graph zoom, image aspect ratio and node size.
//
// Image coordinates are continuous pixels of the image as stored (pixel i covers [i, i + 1)). The canvas has a backing
// store of canvasWidth x canvasHeight pixels; the browser may show it at another size (graph zoom is a CSS transform,
// Nodes 2.0 lays it out with CSS), which is why every pointer position is read through the element's client rect.

/**
 * The largest rectangle of the image's aspect ratio that fits, centred, in a box (letterbox, never cropped).
 * @returns {{scale: number, x: number, y: number, width: number, height: number}} canvas pixels per image pixel and
 *   the image's rectangle in canvas pixels.
 */
export function fitImage(imageWidth, imageHeight, boxWidth, boxHeight, padding = 0) {
  if (!(imageWidth > 0 && imageHeight > 0)) throw new Error(`image size must be positive, got ${imageWidth}x${imageHeight}`);
  const innerWidth = Math.max(1, boxWidth - 2 * padding);
  const innerHeight = Math.max(1, boxHeight - 2 * padding);
  const scale = Math.min(innerWidth / imageWidth, innerHeight / imageHeight);
  const width = imageWidth * scale;
  const height = imageHeight * scale;
  return { scale, x: (boxWidth - width) / 2, y: (boxHeight - height) / 2, width, height };
}

/** Client (CSS) coordinates -> canvas backing-store pixels, for a canvas shown in `rect` (getBoundingClientRect). */
export function clientToCanvas(clientX, clientY, rect, canvasWidth, canvasHeight) {
  return {
    x: ((clientX - rect.left) * canvasWidth) / rect.width,
    y: ((clientY - rect.top) * canvasHeight) / rect.height,
  };
}

/** Canvas pixels -> continuous image pixels for the placement `fit` (from fitImage). Not clamped. */
export function canvasToImage(point, fit) {
  return { x: (point.x - fit.x) / fit.scale, y: (point.y - fit.y) / fit.scale };
}

/** Continuous image pixels -> canvas pixels. */
export function imageToCanvas(point, fit) {
  return { x: fit.x + point.x * fit.scale, y: fit.y + point.y * fit.scale };
}

/** Whether an image point lies on the image. */
export function insideImage(point, width, height) {
  return point.x >= 0 && point.y >= 0 && point.x <= width && point.y <= height;
}

/** Clamp an image point onto the image [0, width] x [0, height]. */
export function clampToImage(point, width, height) {
  return { x: Math.min(width, Math.max(0, point.x)), y: Math.min(height, Math.max(0, point.y)) };
}

/** The axis-aligned box spanned by two image points: {x, y, width, height}, width and height >= 0. */
export function boxFromCorners(a, b) {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.abs(a.x - b.x), height: Math.abs(a.y - b.y) };
}
