// The mark editor's keyboard: which key does what, and what goes on to the copy and paste events.
import assert from "node:assert/strict";
import { test } from "node:test";

import { keyAction, steppedWidth } from "../../web/js/editor/keys.js";

const key = (k, mods = {}) => keyAction({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, ...mods });

test("undo and redo with Ctrl or Cmd, Shift or Y for redo", () => {
  assert.deepEqual(key("z", { ctrlKey: true }), { action: "undo" });
  assert.deepEqual(key("Z", { ctrlKey: true, shiftKey: true }), { action: "redo" });
  assert.deepEqual(key("z", { metaKey: true }), { action: "undo" });
  assert.deepEqual(key("y", { ctrlKey: true }), { action: "redo" });
});

test("Ctrl+C / Ctrl+V go on to the clipboard events, remembering Shift (negative points)", () => {
  assert.deepEqual(key("c", { ctrlKey: true }), { action: "clipboard", negative: false });
  assert.deepEqual(key("V", { ctrlKey: true, shiftKey: true }), { action: "clipboard", negative: true });
});

test("single keys: tools, polarity, brush width, RoI, cancel; other keys are left alone", () => {
  assert.deepEqual(key("p"), { action: "tool", tool: "point" });
  assert.deepEqual(key("B"), { action: "tool", tool: "box" });
  assert.deepEqual(key("s"), { action: "tool", tool: "scribble" });
  assert.deepEqual(key("n"), { action: "polarity" });
  assert.deepEqual(key("x"), { action: "polarity" });
  assert.deepEqual(key("["), { action: "narrower" });
  assert.deepEqual(key("]"), { action: "wider" });
  assert.deepEqual(key("r"), { action: "roi" });
  assert.deepEqual(key("Escape"), { action: "cancel" });
  for (const other of ["a", "Delete", "Enter", " ", "1"]) assert.equal(key(other), null, other);
});

test("the brush width steps by an eighth, at least a pixel", () => {
  assert.equal(steppedWidth(16, "wider"), 18);
  assert.equal(steppedWidth(16, "narrower"), 14);
  assert.equal(steppedWidth(3, "narrower"), 2);
  assert.equal(steppedWidth(100, "wider"), 113);
});
