// Pure logic (no DOM) of the mark editor's keyboard: which action a key press asks for. The editor acts on it; keys
// that map to nothing go on to the frontend (and Ctrl/Cmd + C / V on to the copy and paste events).

/** Tool -> its key. */
export const TOOL_KEYS = { point: "p", box: "b", scribble: "s" };

/**
 * The action of a keydown event ({key, ctrlKey, metaKey, shiftKey}): {action: "undo" | "redo" | "clipboard" |
 * "polarity" | "narrower" | "wider" | "roi" | "cancel" | "tool", tool?, negative?}, or null for a key the editor
 * leaves alone. "clipboard" (Ctrl/Cmd + another key) is not handled either: `negative` says whether Shift was held, for
 * the copy or paste event that follows.
 */
export function keyAction(event) {
  const key = String(event.key ?? "").toLowerCase();
  const mod = event.ctrlKey || event.metaKey;
  if (mod && key === "z") return { action: event.shiftKey ? "redo" : "undo" };
  if (mod && key === "y") return { action: "redo" };
  if (mod) return { action: "clipboard", negative: !!event.shiftKey };
  if (key === "n" || key === "x") return { action: "polarity" };
  if (key === "[") return { action: "narrower" };
  if (key === "]") return { action: "wider" };
  if (key === "r") return { action: "roi" };
  if (key === "escape") return { action: "cancel" };
  const tool = Object.keys(TOOL_KEYS).find((t) => TOOL_KEYS[t] === key);
  return tool ? { action: "tool", tool } : null;
}

/** The brush width after "narrower" / "wider": a step of an eighth of the width, at least 1 pixel. */
export function steppedWidth(width, action) {
  const step = Math.max(1, Math.round(width / 8));
  return action === "narrower" ? width - step : width + step;
}
