// Undo/redo of the mark editor.
import assert from "node:assert/strict";
import { test } from "node:test";

import { History } from "../../web/js/editor/history.js";

test("undo and redo walk the edits; a new edit drops the redo steps", () => {
  const history = new History("");
  assert.equal(history.canUndo, false);
  assert.equal(history.undo(), undefined);
  history.push("a");
  history.push("ab");
  assert.equal(history.undo(), "a");
  assert.equal(history.undo(), "");
  assert.equal(history.undo(), undefined);
  assert.equal(history.redo(), "a");
  assert.equal(history.canRedo, true);
  history.push("ac");
  assert.equal(history.canRedo, false);
  assert.equal(history.redo(), undefined);
  assert.equal(history.current, "ac");
  assert.equal(history.undo(), "a");
});

test("an edit that changes nothing adds no step", () => {
  const history = new History("x");
  assert.equal(history.push("x"), false);
  assert.equal(history.canUndo, false);
});

test("the oldest steps are dropped beyond the limit; reset forgets everything", () => {
  const history = new History(0, 3);
  for (let i = 1; i <= 5; i++) history.push(i);
  const seen = [];
  while (history.canUndo) seen.push(history.undo());
  assert.deepEqual(seen, [4, 3, 2]);
  history.reset(9);
  assert.equal(history.current, 9);
  assert.equal(history.canRedo, false);
});
