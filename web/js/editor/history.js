// Pure undo/redo history (no DOM) of immutable states compared with ===; the mark editor keeps `marks` widget values
// (strings) in it, so an edit that changes nothing adds no step.

export class History {
  /** @param initial the first state; @param limit how many undo steps are kept (oldest dropped first). */
  constructor(initial, limit = 200) {
    this.limit = limit;
    this.reset(initial);
  }

  /** Forget every step: `state` becomes the only one. */
  reset(state) {
    this.past = [];
    this.future = [];
    this.current = state;
  }

  /** Record a new state (after an edit); drops the redo steps. Returns false if it equals the current state. */
  push(state) {
    if (state === this.current) return false;
    this.past.push(this.current);
    if (this.past.length > this.limit) this.past.shift();
    this.current = state;
    this.future = [];
    return true;
  }

  get canUndo() {
    return this.past.length > 0;
  }

  get canRedo() {
    return this.future.length > 0;
  }

  /** Step back; returns the state now current, or undefined if there is nothing to undo. */
  undo() {
    if (!this.canUndo) return undefined;
    this.future.push(this.current);
    this.current = this.past.pop();
    return this.current;
  }

  /** Step forward again; returns the state now current, or undefined if there is nothing to redo. */
  redo() {
    if (!this.canRedo) return undefined;
    this.past.push(this.current);
    this.current = this.future.pop();
    return this.current;
  }
}
