"""The mark editor of Reference Prompt (IconMatting) in the real frontends (pinned and current, Nodes 2.0 off and on).

Clicks, a box drag and a brush stroke on the editor's canvas must become exactly the expected marks (image pixels,
whatever the graph zoom and node size); undo/redo; the workflow keeps marks and image through save/load, a tab
switch and a page reload; after a real run the RoI tokens appear over the image. With ICM_EDITOR_SCREENSHOTS set to a
folder, pictures of the editor are written there (docs/images/ in the README).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_page import NODE_JS
from comfy_server import COMFYUI_VERSIONS, SD_CHECKPOINT
from PIL import Image, ImageDraw

from icm_model.prompts.fingerprint import picture_fingerprint

IMAGE = "icm_editor_scene.png"
WIDTH, HEIGHT = 512, 384
TOLERANCE = 0.1  # image pixels: pointer positions are fractional CSS pixels

# Builds a graph in the page: `add`, `set`, `link` by slot names, `encoder()` = checkpoint + IconMatting model +
# Encode Reference Context (ensemble 1, seed args.seed); BODY leaves the node with the editor (returned) in `editor`.
GRAPH = """async (args) => {
  const graph = window.app.graph;
  graph.clear();
  const add = (type, pos, size) => {
    const node = LiteGraph.createNode(type);
    node.pos = pos;
    graph.add(node);
    if (size) node.setSize(size);
    return node;
  };
  const set = (node, name, value) => { node.widgets.find((w) => w.name === name).value = value; };
  const link = (a, output, b, input) => a.connect(a.findOutputSlot(output), b, b.findInputSlot(input));
  const encoder = () => {
    const checkpoint = add("CheckpointLoaderSimple", [900, 0]);
    set(checkpoint, "ckpt_name", args.ckpt);
    const model = add("LoadIconMattingModel", [900, 160]);
    const encode = add("EncodeReferenceContext", [900, 300]);
    set(encode, "ensemble_size", 1);
    set(encode, "seed", args.seed);
    for (const name of ["MODEL", "VAE", "CLIP"]) link(checkpoint, name, encode, name.toLowerCase());
    link(model, "iconmatting_model", encode, "iconmatting_model");
    return encode;
  };
  let editor;
  BODY
  const canvas = window.app.canvas;
  canvas.ds.scale = 0.8;
  canvas.ds.offset = [300 - editor.pos[0], 140];
  canvas.setDirty(true, true);
  return editor.id;
}"""
PROMPT_GRAPH = """
  const load = add("LoadImage", [0, 0]);
  set(load, "image", args.image);
  editor = add("IconMattingReferencePrompt", [340, 0], [520, 640]);
  set(editor, "extension_top_m", 8 + args.seed);
  const encode = encoder();
  link(load, "IMAGE", editor, "reference_image");
  link(load, "IMAGE", encode, "reference_image");
  link(editor, "reference_prompt", encode, "reference_prompt");
  link(encode, "reference", add("PreviewAny", [900, 700]), "source");
"""
# The correction's reference comes from a mask; its previous alpha is empty, so only the marks select cells.
CORRECTION_GRAPH = """
  const target = add("LoadImage", [0, 0]);
  set(target, "image", args.image);
  const alpha = add("SolidMask", [0, 380]);
  set(alpha, "value", 0);
  set(alpha, "width", args.width);
  set(alpha, "height", args.height);
  const reference = add("LoadImage", [1300, 0]);
  set(reference, "image", "icm_reference.png");
  const mask = add("LoadImageMask", [1300, 380]);
  set(mask, "image", "icm_reference_mask.png");
  set(mask, "channel", "red");
  const encode = encoder();
  link(reference, "IMAGE", encode, "reference_image");
  link(mask, "MASK", encode, "reference_mask");
  editor = add("IconMattingCorrection", [340, 0], [520, 640]);
  link(encode, "reference", editor, "reference");
  link(target, "IMAGE", editor, "target_image");
  link(alpha, "MASK", editor, "previous_alpha");
  link(editor, "reference", add("PreviewAny", [900, 700]), "source");
"""


def _build(comfy, body: str) -> int:
    """Builds a graph (GRAPH with ``body``) on the scene image; the id of the node with the editor."""
    _scene(comfy.server.base / "input" / IMAGE)
    # A seed of its own per render mode: the same server must really run the graph again (a cached run sends no ui).
    seed = int(comfy.vue_nodes)
    args = {"ckpt": SD_CHECKPOINT, "image": IMAGE, "width": WIDTH, "height": HEIGHT, "seed": seed}
    node_id = comfy.evaluate(GRAPH.replace("BODY", body), args)
    comfy.page.wait_for_timeout(800)
    return node_id


# Image pixel -> client position, from the canvas's client rect and the letterbox rule (4 canvas pixels of padding),
# independently of the editor's own geometry code.
CLIENT_OF = """([id, x, y]) => {
  const editor = __NODE__(id).iconmattingEditor;
  const c = editor.canvas, r = c.getBoundingClientRect();
  const W = editor.image.naturalWidth, H = editor.image.naturalHeight, pad = 4;
  const s = Math.min((c.width - 2 * pad) / W, (c.height - 2 * pad) / H);
  return [r.left + ((c.width - W * s) / 2 + x * s) * r.width / c.width,
          r.top + ((c.height - H * s) / 2 + y * s) * r.height / c.height];
}""".replace("__NODE__", NODE_JS)


def _scene(path: Path) -> None:
    """A picture to mark: an orange ball and a purple box on a sky-to-ground gradient."""
    t = np.linspace(0, 1, HEIGHT)[:, None, None]
    sky, ground = np.array([90, 150, 220]), np.array([70, 120, 60])
    rows = np.where(t < 0.7, sky * (1 - t) + 255 * t * 0.6, ground)
    image = Image.fromarray(np.broadcast_to(rows, (HEIGHT, WIDTH, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 130, 220, 270), fill=(240, 140, 40), outline=(120, 60, 10), width=3)
    draw.rectangle((320, 130, 440, 250), fill=(130, 70, 170), outline=(60, 20, 90), width=3)
    image.save(path)


def _image_tensor(path: Path) -> torch.Tensor:
    """``[3, H, W]`` in 0..1 of a PNG, as LoadImage reads it."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255).permute(2, 0, 1)


def _marks(comfy, node_id: int) -> dict:
    text = comfy.widget_values(node_id)["marks"]
    return json.loads(text) if text else {}


def _close(actual, expected) -> bool:
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(_close(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(_close(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, float | int) and not isinstance(expected, bool):
        return abs(actual - expected) <= TOLERANCE
    return actual == expected


def _editor_state(comfy, node_id: int) -> dict:
    return comfy.evaluate(
        """(id) => { const n = __NODE__(id), e = n.iconmattingEditor;
            return {connected: e.element.isConnected, image: e.image && [e.image.naturalWidth, e.image.naturalHeight],
                    url: e.imageURL, roi: e.roi && [e.roi.cells.filter((c) => !c.extension).length,
                    e.roi.cells.filter((c) => c.extension).length], roi_size: e.roi && [e.roi.width, e.roi.height],
                    status: e.statusLine.textContent,
                    stored: n.properties.iconmatting_image ?? null}; }""".replace("__NODE__", NODE_JS),
        node_id,
    )


def _screenshot(comfy, node_id: int, name: str) -> None:
    folder = os.environ.get("ICM_EDITOR_SCREENSHOTS")
    if not folder:
        return
    box = comfy.evaluate(
        """(id) => { const node = window.app.graph.getNodeById(id), canvas = window.app.canvas;
            const r = canvas.canvas.getBoundingClientRect(), title = LiteGraph.NODE_TITLE_HEIGHT;
            const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0], node.pos[1] - title]);
            const s = canvas.ds.scale;
            return {x: r.left + x - 4, y: r.top + y - 4, width: node.size[0] * s + 8,
                    height: (node.size[1] + title) * s + 8}; }""",
        node_id,
    )
    comfy.page.wait_for_timeout(300)
    mode = "vue" if comfy.vue_nodes else "litegraph"
    comfy.screenshot(Path(folder) / f"{name}_{comfy.frontend}_{mode}.png", clip=box)


def _pointer(comfy, node_id: int):
    """``at(x, y)``: the client position of an image pixel; ``tool(label)``: clicks a toolbar button."""

    def at(x, y):
        return comfy.evaluate(CLIENT_OF, [node_id, x, y])

    def tool(label):
        comfy.page.locator(".iconmatting-editor button", has_text=label).first.click()

    return at, tool


def _wait_for_image(comfy, node_id: int) -> None:
    """Until the editor shows the image it wants to show (loaded)."""
    shown = f"""(id) => {{ const e = {NODE_JS}(id)?.iconmattingEditor;
        return e?.image?.src.endsWith(e.imageURL); }}"""
    comfy.page.wait_for_function(shown, arg=node_id, timeout=60_000)


def _marks_text_fallback(comfy, node_id: int) -> None:
    """Frontend 1.27.10's experimental Nodes 2.0 renders no extension DOM widget (core nodes' neither): there the
    editor cannot show, and what the user has is the ``marks`` widget itself, which must keep working (set, saved,
    loaded). Everywhere else the editor must connect."""
    assert comfy.nodes2_preview, _editor_state(comfy, node_id)
    marks = {"version": 1, "image": {"width": WIDTH, "height": HEIGHT}, "points": [{"x": 5, "y": 6, "positive": True}]}
    comfy.set_widget(node_id, "marks", json.dumps(marks))
    comfy.load_workflow(comfy.evaluate("() => window.app.graph.serialize()"))
    assert _marks(comfy, node_id) == marks


def test_mark_editor(comfy):
    node_id = _build(comfy, PROMPT_GRAPH)
    if not _editor_state(comfy, node_id)["connected"]:
        _marks_text_fallback(comfy, node_id)
        return

    _wait_for_image(comfy, node_id)
    state = _editor_state(comfy, node_id)
    assert state["image"] == [WIDTH, HEIGHT], state
    assert "/view?" in state["url"] and f"filename={IMAGE}" in state["url"] and "type=input" in state["url"]

    page, mouse = comfy.page, comfy.page.mouse
    at, tool = _pointer(comfy, node_id)
    mouse.click(*at(150, 200))  # left click: a positive point on the ball
    mouse.click(*at(400.5, 300.25), button="right")  # right click: a negative point on the ground
    tool("Box")  # a box around the purple box
    mouse.move(*at(450, 260))
    mouse.down()
    mouse.move(*at(310, 120), steps=6)
    mouse.up()
    tool("Brush")  # a scribble over the ball
    mouse.move(*at(110, 230))
    mouse.down()
    mouse.move(*at(190, 250), steps=4)
    mouse.up()
    # The editor stamps the fingerprint of the picture it shows, computed in the browser exactly as the node does.
    fingerprint = picture_fingerprint(_image_tensor(comfy.server.base / "input" / IMAGE))
    expected = {
        "version": 1,
        "image": {"width": WIDTH, "height": HEIGHT, "fingerprint": fingerprint},
        "points": [{"x": 150, "y": 200, "positive": True}, {"x": 400.5, "y": 300.25, "positive": False}],
        "scribbles": [
            {"points": [[110, 230], [130, 235], [150, 240], [170, 245], [190, 250]], "width": 16, "positive": True}
        ],
        "boxes": [{"x": 310, "y": 120, "width": 140, "height": 140, "positive": True}],
    }
    marks = _marks(comfy, node_id)
    assert _close(marks, expected), marks

    # Undo / redo with the canvas focused (the frontend's own graph undo must not fire).
    page.keyboard.press("Control+z")
    assert _marks(comfy, node_id)["scribbles"] == []
    page.keyboard.press("Control+Shift+z")
    assert _close(_marks(comfy, node_id), expected)
    assert comfy.evaluate("() => window.app.graph.nodes.length") == 6
    _screenshot(comfy, node_id, "mark_editor")

    # Save and load the workflow; then a page reload (the frontend restores the open workflow).
    saved = comfy.evaluate("() => window.app.graph.serialize()")
    comfy.load_workflow(saved)
    assert _close(_marks(comfy, node_id), expected)
    _wait_for_image(comfy, node_id)

    # A real run: the prompt node shows its saved image, Encode Reference Context sends the RoI tokens back.
    result = comfy.queue_and_wait()
    assert result["status"]["status_str"] == "success", result["status"]
    roi_shown = "(id) => window.app.graph.getNodeById(id).iconmattingEditor.roi"
    page.wait_for_function(roi_shown, arg=node_id, timeout=60_000)
    state = _editor_state(comfy, node_id)
    prompt_cells, extension_cells = state["roi"]
    assert prompt_cells > 0 and extension_cells > 0 and "RoI tokens:" in state["status"], state
    assert state["roi_size"] == [WIDTH, HEIGHT], state
    assert state["stored"]["type"] == "temp" and state["stored"]["source"]["filename"] == IMAGE, state
    _wait_for_image(comfy, node_id)
    _screenshot(comfy, node_id, "mark_editor_roi")

    # A tab switch: another workflow, then back to this one.
    run_command = "async (id) => { await window.app.extensionManager.command.execute(id); }"
    comfy.evaluate(run_command, "Comfy.NewBlankWorkflow")
    page.wait_for_function("() => window.app.graph.nodes.length === 0", timeout=60_000)
    comfy.evaluate(run_command, "Workspace.PreviousOpenedWorkflow")
    page.wait_for_function("(id) => window.app.graph.getNodeById(id)?.iconmattingEditor", arg=node_id, timeout=60_000)
    _wait_for_image(comfy, node_id)
    assert _close(_marks(comfy, node_id), expected)
    switched = _editor_state(comfy, node_id)
    assert switched["stored"] == state["stored"] and switched["url"] == state["url"], switched
    assert switched["roi"] == state["roi"], switched

    page.reload()
    page.wait_for_function("(id) => window.app?.graph?.getNodeById(id)?.iconmattingEditor", arg=node_id, timeout=60_000)
    _wait_for_image(comfy, node_id)
    assert _close(_marks(comfy, node_id), expected)
    reloaded = _editor_state(comfy, node_id)
    assert reloaded["stored"] == state["stored"] and reloaded["url"] == state["url"], reloaded


def test_correction_editor(comfy):
    """Correct Target's editor: the target before a run; after it, the target with its alpha and the RoI tokens."""
    node_id = _build(comfy, CORRECTION_GRAPH)
    if not _editor_state(comfy, node_id)["connected"]:
        _marks_text_fallback(comfy, node_id)
        return
    _wait_for_image(comfy, node_id)
    before = _editor_state(comfy, node_id)
    assert before["image"] == [WIDTH, HEIGHT] and f"filename={IMAGE}" in before["url"], before
    mouse = comfy.page.mouse
    at, tool = _pointer(comfy, node_id)
    tool("Box")  # the purple box, which the (empty) previous alpha missed
    mouse.move(*at(310, 120))
    mouse.down()
    mouse.move(*at(450, 260), steps=3)
    mouse.up()
    assert _close(
        _marks(comfy, node_id)["boxes"], [{"x": 310, "y": 120, "width": 140, "height": 140, "positive": True}]
    )

    result = comfy.queue_and_wait()
    assert result["status"]["status_str"] == "success", result["status"]
    roi_shown = "(id) => window.app.graph.getNodeById(id).iconmattingEditor.roi"
    comfy.page.wait_for_function(roi_shown, arg=node_id, timeout=60_000)
    after = _editor_state(comfy, node_id)
    assert after["roi"][0] > 0 and after["roi"][1] == 0 and after["roi_size"] == [WIDTH, HEIGHT], after
    assert after["stored"]["type"] == "temp" and after["url"] != before["url"], after
    _wait_for_image(comfy, node_id)
    _screenshot(comfy, node_id, "correction_editor_roi")


# Reference Prompt and Encode Reference Context selected and converted to a subgraph as the user does (Convert
# Selection to Subgraph), then opened on the canvas: the execution ids of the inner editor and encoder.
TO_SUBGRAPH = """async (id) => {
  const graph = window.app.graph, canvas = window.app.canvas;
  const editor = graph.getNodeById(id);
  const encode = graph.nodes.find((n) => n.type === "EncodeReferenceContext");
  canvas.deselectAll();
  canvas.selectNodes([editor, encode]);
  await window.app.extensionManager.command.execute("Comfy.Graph.ConvertToSubgraph");
  const outer = graph.nodes.find((n) => n.subgraph);
  if (!outer) throw new Error("no subgraph node after Convert Selection to Subgraph");
  const inner = (type) => outer.subgraph.nodes.find((n) => n.type === type).id;
  canvas.openSubgraph(outer.subgraph, outer);
  return [`${outer.id}:${inner("IconMattingReferencePrompt")}`, `${outer.id}:${inner("EncodeReferenceContext")}`];
}"""


@pytest.mark.parametrize("comfy_version", [v for v in COMFYUI_VERSIONS if v.name != "0.3.64"], ids=str)
def test_mark_editor_inside_a_subgraph(comfy):
    """Inside a subgraph the editor shows the Load Image outside it (followed through the subgraph's input), takes
    marks, and after a run shows the RoI tokens the inner Encode Reference Context reports (execution id "12:5")."""
    root_id = _build(comfy, PROMPT_GRAPH)
    editor, encode = comfy.evaluate(TO_SUBGRAPH, root_id)
    comfy.page.wait_for_timeout(800)
    comfy.page.wait_for_function(
        f"(id) => {NODE_JS}(id)?.iconmattingEditor?.element.isConnected", arg=editor, timeout=60_000
    )
    _wait_for_image(comfy, editor)
    state = _editor_state(comfy, editor)
    assert state["image"] == [WIDTH, HEIGHT] and f"filename={IMAGE}" in state["url"], state

    at, _ = _pointer(comfy, editor)
    comfy.page.mouse.click(*at(150, 200))  # a positive point on the ball
    marks = _marks(comfy, editor)
    assert _close(marks["points"], [{"x": 150, "y": 200, "positive": True}]), marks

    result = comfy.queue_and_wait()
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
    assert "query tokens" in result["outputs"][encode]["text"][0], result["outputs"].keys()
    comfy.page.wait_for_function(f"(id) => {NODE_JS}(id).iconmattingEditor.roi", arg=editor, timeout=60_000)
    state = _editor_state(comfy, editor)
    prompt_cells, extension_cells = state["roi"]
    assert prompt_cells > 0 and extension_cells > 0 and "RoI tokens:" in state["status"], state
