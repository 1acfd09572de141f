// Pure logic (no DOM) of the RoI overlay: the `iconmatting_roi` entries a run sends back in the node's "ui" output,
//   [{"width": W, "height": H, "cells": [[x0, y0, x1, y1, "prompt" | "extension"], ...]}]
// rectangles in pixels of the marked image, one per RoI token that entered the query ("prompt": selected by the
// marks, "extension": added by the reference-prompt extension).

/**
 * The overlay of a node output's `iconmatting_roi` (the first entry), or null when there is none.
 * @returns {{width: number, height: number, cells: {x0: number, y0: number, x1: number, y1: number,
 *   extension: boolean}[]} | null}
 */
export function parseRoi(entries) {
  const entry = Array.isArray(entries) ? entries[0] : entries;
  if (!entry || !Array.isArray(entry.cells) || !(entry.width > 0 && entry.height > 0)) return null;
  const cells = [];
  for (const cell of entry.cells) {
    if (!Array.isArray(cell) || cell.length < 4 || !cell.slice(0, 4).every(Number.isFinite)) continue;
    const [x0, y0, x1, y1, kind] = cell;
    cells.push({ x0, y0, x1, y1, extension: kind === "extension" });
  }
  return { width: entry.width, height: entry.height, cells };
}

/** The overlay's cells in pixels of an image of another size (the same picture shown larger or smaller). */
export function roiCellsForImage(roi, width, height) {
  const sx = width / roi.width;
  const sy = height / roi.height;
  return roi.cells.map((c) => ({ x0: c.x0 * sx, y0: c.y0 * sy, x1: c.x1 * sx, y1: c.y1 * sy, extension: c.extension }));
}

/** How many cells of each kind: {prompt, extension}. */
export function roiCounts(roi) {
  const extension = roi.cells.filter((c) => c.extension).length;
  return { prompt: roi.cells.length - extension, extension };
}
