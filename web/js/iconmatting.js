// ComfyUI-IconMatting frontend extension: shows what a node reported on its last run (how many query tokens the
// reference mask produced, the metrics of a matte, ...) as text under the node. Nothing is added to the node's
// widgets, so saved workflows are unaffected.
import { app } from "../../scripts/app.js";

const REPORTING_NODES = new Set([
  "EncodeReferenceContext",
  "IconMattingCombineReferences",
  "VideoInContextMatte",
  "IconMattingMetrics",
]);
const LINE_HEIGHT = 14;

function wrap(ctx, text, width) {
  const lines = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      const candidate = line ? `${line} ${word}` : word;
      if (line && ctx.measureText(candidate).width > width) {
        lines.push(line);
        line = word;
      } else {
        line = candidate;
      }
    }
    lines.push(line);
  }
  return lines;
}

app.registerExtension({
  name: "IconMatting.RunReport",
  // Re-opening a workflow tab (or loading a queue item's outputs) re-creates the nodes without calling onExecuted;
  // the frontend then hands back the outputs it kept for that workflow here.
  onNodeOutputsUpdated(nodeOutputs) {
    for (const node of app.graph?.nodes ?? app.graph?._nodes ?? []) {
      const text = REPORTING_NODES.has(node.comfyClass ?? node.type) && nodeOutputs?.[String(node.id)]?.text;
      if (!text) continue;
      node.iconmattingReport = text.join("\n");
      node.setDirtyCanvas(true, true);
    }
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!REPORTING_NODES.has(nodeData.name)) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      this.iconmattingReport = message?.text?.join("\n") || null;
      this.setDirtyCanvas(true, true);
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      if (!this.iconmattingReport || this.flags?.collapsed) return;
      ctx.save();
      ctx.font = "12px sans-serif";
      ctx.fillStyle = "#8fd3b6";
      wrap(ctx, this.iconmattingReport, this.size[0] - 12).forEach((line, i) => {
        ctx.fillText(line, 6, this.size[1] + 6 + LINE_HEIGHT * (i + 1));
      });
      ctx.restore();
    };
  },
});
