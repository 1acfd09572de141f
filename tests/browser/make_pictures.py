"""Writes the pictures of the example workflows from a real ComfyUI frontend in chromium, after a real run.

    python tests/browser/make_pictures.py [--frontend current] [NAME ...]

For each example workflow (or the NAMEs given, e.g. ``fig1_one_reference_many_domains``): runs its API twin
(workflows/api/, ``ensemble_size`` 1) in the newest ComfyUI of the tests (0.33.0) on the small random models and the
example photos, loads the graph, shows that run's outputs (image previews, the nodes' run reports) and fits the view,
with Nodes 2.0 off and on. It writes ``docs/images/<name>.png``
and ``docs/images/<name>_nodes2.png`` (the README's pictures) and ``example_workflows/<name>.jpg`` (the thumbnail
ComfyUI's template browser shows beside the template, from the first picture). Needs the environment the browser tests
need (COMFYUI_033_PATH, COMFYUI_PYTHON, ICM_FRONTEND_CURRENT for "current", chromium; see tests/browser/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]

from comfy_page import ComfyPage, launch_browser, open_page  # noqa: E402
from comfy_server import COMFYUI_VERSIONS, FRONTENDS, ComfyServers  # noqa: E402
from PIL import Image  # noqa: E402

PACK_ROOT = HERE.parents[1]
EXAMPLES = PACK_ROOT / "example_workflows"
API_WORKFLOWS = PACK_ROOT / "workflows" / "api"
PICTURES = PACK_ROOT / "docs" / "images"
THUMBNAIL_WIDTH = 768
VIEWPORT = {"width": 2000, "height": 1150}
PICTURE_SETTINGS = {
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.Minimap.Visible": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # 1.58: full detail at every zoom
    "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1,  # 1.27: the same
}
"""Settings for clean pictures: no canvas info, no minimap, text at every zoom level."""


def run_outputs(server, name: str) -> dict[str, dict]:
    """Runs the API twin of workflow ``name`` (one noise sample and one fine-tuning step, to keep CPU runs short):
    node id -> "ui" output."""
    prompt = json.loads((API_WORKFLOWS / f"{name}.json").read_text())
    for node in prompt.values():
        if "ensemble_size" in node["inputs"]:
            node["inputs"]["ensemble_size"] = 1
        if node["class_type"] == "IconMattingFineTune":  # one fine-tuning step, also to keep CPU runs short
            node["inputs"]["steps"] = 1
    result = server.run(prompt)
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
    return result["outputs"]


def picture(comfy: ComfyPage, workflow: Path, outputs: dict[str, dict], png: Path) -> None:
    """The graph of ``workflow`` with a run's ``outputs`` shown, fitted to the canvas, as ``png``."""
    comfy.load_workflow(workflow)
    comfy.show_outputs(outputs)
    comfy.fit_view()
    comfy.page.wait_for_timeout(1000)
    comfy.screenshot(png)


def thumbnail(png: Path, jpg: Path) -> None:
    """A JPEG of ``png``, ``THUMBNAIL_WIDTH`` wide."""
    with Image.open(png) as image:
        height = round(image.height * THUMBNAIL_WIDTH / image.width)
        image.convert("RGB").resize((THUMBNAIL_WIDTH, height), Image.LANCZOS).save(jpg, quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="workflow names (default: every example workflow)")
    parser.add_argument("--frontend", choices=FRONTENDS, default="current")
    args = parser.parse_args()
    workflows = [EXAMPLES / f"{name}.json" for name in args.names] or sorted(EXAMPLES.glob("*.json"))
    with tempfile.TemporaryDirectory() as scratch:
        servers = ComfyServers(Path(scratch), Path(scratch) / "checkpoint")
        try:
            server = servers.get(COMFYUI_VERSIONS[-1], args.frontend)
            outputs = {workflow.stem: run_outputs(server, workflow.stem) for workflow in workflows}
            with launch_browser() as browser:
                for vue_nodes, suffix in ((False, ""), (True, "_nodes2")):
                    with open_page(browser, server, args.frontend, vue_nodes, VIEWPORT, PICTURE_SETTINGS) as comfy:
                        comfy.run_command("Workspace.ToggleFocusMode")  # no menus or side bars
                        for workflow in workflows:
                            png = PICTURES / f"{workflow.stem}{suffix}.png"
                            picture(comfy, workflow, outputs[workflow.stem], png)
                            print(png.relative_to(PACK_ROOT))
                            if not vue_nodes:
                                thumbnail(png, workflow.with_suffix(".jpg"))
                        if comfy.errors:
                            print("console errors:", *(e.text for e in comfy.errors), sep="\n", file=sys.stderr)
        finally:
            servers.close()


if __name__ == "__main__":
    main()
