// Pure logic (no DOM) of the picture fingerprint stored in the marks (`image.fingerprint`, docs/MARKS.md): the 8 x 8
// grey thumbnail of the picture the marks were drawn on, computed exactly as icm_model/prompts/fingerprint.py does,
// so the node can tell when the marks arrive with another picture of the same size.
import FORMAT from "./marks_format.json" with { type: "json" };

const GRID = FORMAT.fingerprint.grid;
export const FINGERPRINT_DIGITS = 2 * GRID * GRID;

function cellEdges(size) {
  const edges = [];
  for (let i = 0; i < GRID; i++) {
    const start = Math.floor((i * size) / GRID);
    edges.push([start, Math.max(start + 1, Math.floor(((i + 1) * size) / GRID))]);
  }
  return edges;
}

/**
 * The fingerprint of an RGBA picture (`data` as from getImageData, width x height, row by row): per cell of an 8 x 8
 * grid the mean of R, G and B over its pixels, rounded half up, as two hexadecimal digits, row by row.
 */
export function pictureFingerprint(data, width, height) {
  const rows = cellEdges(height);
  const columns = cellEdges(width);
  let digits = "";
  for (const [top, bottom] of rows) {
    for (const [left, right] of columns) {
      let total = 0;
      for (let y = top; y < bottom; y++) {
        for (let x = left, i = 4 * (y * width + left); x < right; x++, i += 4) total += data[i] + data[i + 1] + data[i + 2];
      }
      const count = 3 * (bottom - top) * (right - left);
      digits += Math.floor((2 * total + count) / (2 * count)).toString(16).padStart(2, "0");
    }
  }
  return digits;
}

function levels(fingerprint) {
  const values = [];
  for (let i = 0; i < fingerprint.length; i += 2) values.push(parseInt(fingerprint.slice(i, i + 2), 16));
  return values;
}

/** [mean absolute difference in grey levels, Pearson correlation (0 when either is flat)] of two fingerprints. */
export function fingerprintDifference(a, b) {
  const x = levels(a);
  const y = levels(b);
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let difference = 0;
  let cov = 0;
  let vx = 0;
  let vy = 0;
  for (let i = 0; i < n; i++) {
    difference += Math.abs(x[i] - y[i]);
    cov += (x[i] - mx) * (y[i] - my);
    vx += (x[i] - mx) ** 2;
    vy += (y[i] - my) ** 2;
  }
  return [difference / n, vx > 0 && vy > 0 ? cov / Math.sqrt(vx * vy) : 0];
}

/** Whether two fingerprints are of one picture (within the tolerances of marks_format.json). */
export function samePicture(a, b) {
  const [difference, correlation] = fingerprintDifference(a, b);
  return difference <= FORMAT.fingerprint.max_mean_difference || correlation >= FORMAT.fingerprint.min_correlation;
}
