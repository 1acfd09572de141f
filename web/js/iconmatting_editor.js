// ComfyUI-IconMatting frontend extension: the mark editor inside "Reference Prompt (IconMatting)" and "Correct Target
// (IconMatting)" (web/js/editor/). The marks live in the node's `marks` STRING widget, the image it shows in
// node.properties.iconmatting_image, so save, reload and tab switches keep both. Only the extension API is used
// (registerExtension, node callbacks, addDOMWidget); the frontend's queue and prompt functions are left alone.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";
import { MarkEditor } from "./editor/mark_editor.js";
import { inputOrigin, nodeByExecutionId } from "./graph_nodes.js";

// Node id -> the input whose upstream Load Image the editor shows before a run.
const EDITOR_NODES = { IconMattingReferencePrompt: "reference_image", IconMattingCorrection: "target_image" };
// Nodes whose run reports the RoI of the IconMattingReferencePrompt linked to this input.
const ROI_FORWARDING_NODES = { EncodeReferenceContext: "reference_prompt" };
const INITIAL_SIZE = [420, 560];

/** The node feeding `node`'s input `name`, through legacy Reroute nodes and out of subgraphs; null if unlinked. */
function upstreamNode(node, name) {
  if (!node.graph) return null; // not (or no longer) in a graph
  const slot = node.findInputSlot?.(name) ?? node.inputs?.findIndex((input) => input.name === name);
  let origin = slot >= 0 ? inputOrigin(app, node, slot) : null;
  for (let hops = 0; origin && origin.type === "Reroute" && hops < 32; hops++) origin = inputOrigin(app, origin, 0);
  return origin ?? null;
}

/** The file a Load Image node shows ({filename, subfolder, type}), from its `image` widget ("sub/a.png [input]"). */
function loadImageFile(node) {
  const value = node?.widgets?.find((w) => w.name === "image")?.value;
  if (typeof value !== "string" || !value) return null;
  const [, path, type = "input"] = value.match(/^(.*?)(?: \[(input|output|temp)\])?$/);
  const cut = path.lastIndexOf("/");
  return { filename: path.slice(cut + 1), subfolder: cut < 0 ? "" : path.slice(0, cut), type };
}

function viewURL(file, rand = "") {
  const query = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder ?? "", type: file.type ?? "temp" });
  if (rand) query.set("rand", rand);
  return api.apiURL(`/view?${query}`);
}

const sameFile = (a, b) => !!a && !!b && a.filename === b.filename && a.subfolder === b.subfolder && a.type === b.type;

/**
 * The URL the editor of `node` shows: the image its last run saved (remembered in node.properties, kept while the
 * upstream Load Image still shows what it showed then), else the upstream Load Image's file; skipping URLs that
 * failed to load (a temp file is gone after a ComfyUI restart).
 */
function imageURL(node, failed) {
  const upstream = loadImageFile(upstreamNode(node, EDITOR_NODES[node.comfyClass ?? node.type]));
  const stored = node.properties?.iconmatting_image;
  if (stored && (!upstream || !stored.source || sameFile(upstream, stored.source))) {
    const url = viewURL(stored, stored.rand);
    if (!failed.has(url)) return url;
  }
  return upstream ? viewURL(upstream) : null;
}

/** The fingerprint the node's last run sent with the image at `url` (the stored run image), else null. */
function storedFingerprint(node, url) {
  const stored = node.properties?.iconmatting_image;
  return stored?.fingerprint && url === viewURL(stored, stored.rand) ? stored.fingerprint : null;
}

/**
 * Let the workflow's change tracker take the graph's state now (as it does on every mouse up), so that a reload or a
 * tab switch right after a keyboard edit or a run keeps the marks and the image.
 */
function noteGraphChange() {
  const tracker = app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
  (tracker?.captureCanvasState ?? tracker?.checkState)?.call(tracker);
}

/**
 * Apply what a run of an editor node sent back: the image to show and the RoI tokens. `fresh`: from a run that just
 * ended (its image may have overwritten the file of the same name), not outputs the frontend kept.
 */
function applyOutputs(node, output, fresh) {
  const file = output?.iconmatting_image?.[0];
  if (file) {
    const source = loadImageFile(upstreamNode(node, EDITOR_NODES[node.comfyClass ?? node.type]));
    const stored = node.properties.iconmatting_image;
    const rand = !fresh && sameFile(stored, file) ? stored.rand : String(Date.now());
    node.properties.iconmatting_image = {
      filename: file.filename,
      subfolder: file.subfolder ?? "",
      type: file.type,
      source,
      rand,
      fingerprint: file.fingerprint ?? null,
    };
    noteGraphChange();
  }
  if (output?.iconmatting_roi) node.iconmattingEditor?.setRoi(output.iconmatting_roi);
  node.iconmattingEditor?.poll();
}

function forwardRoi(node, output) {
  const input = ROI_FORWARDING_NODES[node.comfyClass ?? node.type];
  if (!input || !output?.iconmatting_roi) return;
  upstreamNode(node, input)?.iconmattingEditor?.setRoi(output.iconmatting_roi);
}

function chain(prototype, name, after) {
  const before = prototype[name];
  prototype[name] = function () {
    const result = before?.apply(this, arguments);
    after.apply(this, arguments);
    return result;
  };
}

app.registerExtension({
  name: "IconMatting.MarkEditor",
  // Re-opened workflow tabs and loaded queue items hand back the outputs the frontend kept (no onExecuted), keyed by
  // execution id: nodes inside subgraphs included.
  onNodeOutputsUpdated(nodeOutputs) {
    for (const [executionId, output] of Object.entries(nodeOutputs ?? {})) {
      const node = nodeByExecutionId(app, executionId);
      if (!node || !output) continue;
      if (node.iconmattingEditor) applyOutputs(node, output, false);
      forwardRoi(node, output);
    }
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (ROI_FORWARDING_NODES[nodeData.name]) {
      chain(nodeType.prototype, "onExecuted", function (message) {
        forwardRoi(this, message);
      });
    }
    if (!EDITOR_NODES[nodeData.name]) return;

    chain(nodeType.prototype, "onNodeCreated", function () {
      const marks = this.widgets?.find((w) => w.name === "marks");
      if (!marks) return;
      this.properties ??= {};
      this.iconmattingEditor = new MarkEditor(this, marks, {
        imageSource: (failed) => imageURL(this, failed),
        onChange: noteGraphChange,
        knownFingerprint: (url) => storedFingerprint(this, url),
      });
      const [width, height] = this.computeSize();
      this.setSize([Math.max(width, INITIAL_SIZE[0]), Math.max(height, INITIAL_SIZE[1])]);
    });
    // Loading a workflow sets the widget values after onNodeCreated: start a fresh undo history from them.
    chain(nodeType.prototype, "onConfigure", function () {
      this.iconmattingEditor?.loadFromWidget();
      this.iconmattingEditor?.poll();
    });
    chain(nodeType.prototype, "onExecuted", function (message) {
      applyOutputs(this, message, true);
    });
    chain(nodeType.prototype, "onRemoved", function () {
      this.iconmattingEditor?.destroy();
      this.iconmattingEditor = null;
    });
  },
});
