// ComfyUI-IconMatting frontend extension, for every node of this pack (found by the python module the backend
// reports for it, so new nodes need nothing here):
// - the run report: what a node said about its last run (how many query tokens the reference mask produced, the
//   metrics of a matte, ...) in a read-only text widget under its other widgets. The widget is not serialised:
//   saved workflows and the node's widget values are unchanged.
// - seeds start "fixed" on new nodes, so running again reuses the encoded reference and gives the same matte;
//   loaded workflows keep the value they saved.
// - new nodes are wide enough for their title.
// Nodes inside subgraphs get all three (ComfyUI calls onExecuted on them; kept outputs are found by execution id).
import { app } from "../../scripts/app.js";
import { nodeByExecutionId } from "./graph_nodes.js";

const PACK_MODULE = `custom_nodes.${decodeURIComponent(new URL(import.meta.url).pathname.split("/")[2])}`;
const REPORT = "iconmatting_report";
const TITLE_MARGIN = 16;
const REPORT_FONT = "12px sans-serif";
const REPORT_LINE_HEIGHT = 16;

const packTypes = new Set();

function isOurs(node) {
  return packTypes.has(node?.comfyClass ?? node?.type);
}

const measure = document.createElement("canvas").getContext("2d");

function textWidth(text, font) {
  measure.font = font;
  return measure.measureText(text).width;
}

function wrappedLines(text, width) {
  let count = 0;
  for (const paragraph of text.split("\n")) {
    let line = "";
    count += 1;
    for (const word of paragraph.split(" ")) {
      const candidate = line ? `${line} ${word}` : word;
      if (line && textWidth(candidate, REPORT_FONT) > width) {
        count += 1;
        line = word;
      } else {
        line = candidate;
      }
    }
  }
  return count;
}

function reportWidget(node) {
  const existing = node.widgets?.find((w) => w.name === REPORT);
  if (existing) return existing;
  const element = document.createElement("div");
  element.className = "iconmatting-report";
  Object.assign(element.style, {
    color: "#8fd3b6",
    font: REPORT_FONT,
    lineHeight: `${REPORT_LINE_HEIGHT}px`,
    whiteSpace: "pre-wrap",
    overflowWrap: "anywhere",
    padding: "2px 6px",
    boxSizing: "border-box",
    pointerEvents: "none",
  });
  let text = "";
  const widget = node.addDOMWidget(REPORT, REPORT, element, {
    serialize: false,
    hideOnZoom: false,
    getValue: () => text,
    setValue: (value) => {
      text = typeof value === "string" ? value : "";
      element.textContent = text;
    },
    getMinHeight: () => 8 + REPORT_LINE_HEIGHT * wrappedLines(text, node.size[0] - 40),
  });
  widget.serialize = false;
  return widget;
}

function showReport(node, lines) {
  if (!lines?.length) return;
  const widget = reportWidget(node);
  widget.value = lines.join("\n");
  const [width, height] = node.computeSize();
  node.setSize([Math.max(node.size[0], width), Math.max(node.size[1], height)]);
  node.setDirtyCanvas(true, true);
}

function fixSeeds(node) {
  for (const widget of node.widgets ?? []) {
    for (const control of widget.linkedWidgets ?? []) {
      if (control.options?.values?.includes("fixed")) control.value = "fixed";
    }
  }
}

function fitTitle(node) {
  // The canvas keeps a title-height margin on both sides of the title; Vue nodes need less.
  const title = textWidth(node.title ?? "", `${LiteGraph.NODE_TEXT_SIZE}px ${LiteGraph.NODE_FONT}`);
  const width = title + 2 * LiteGraph.NODE_TITLE_HEIGHT + TITLE_MARGIN;
  if (node.size[0] < width) node.setSize([width, node.size[1]]);
}

app.registerExtension({
  name: "IconMatting.Nodes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.python_module !== PACK_MODULE) return;
    packTypes.add(nodeData.name);
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      showReport(this, message?.text);
    };
  },
  nodeCreated(node) {
    if (!isOurs(node)) return;
    fixSeeds(node);
    fitTitle(node);
  },
  // Re-opening a workflow tab (or loading a queue item's outputs) re-creates the nodes without calling onExecuted;
  // the frontend then hands back the outputs it kept for that workflow here, keyed by execution id (nodes inside
  // subgraphs included).
  onNodeOutputsUpdated(nodeOutputs) {
    for (const [executionId, output] of Object.entries(nodeOutputs ?? {})) {
      const node = nodeByExecutionId(app, executionId);
      if (isOurs(node)) showReport(node, output?.text);
    }
  },
});
