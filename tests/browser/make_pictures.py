"""Writes the pictures of the example workflows from a real ComfyUI frontend in chromium.

    python tests/browser/make_pictures.py [--frontend current] [--vue-nodes] [NAME ...]

For each example workflow (or the NAMEs given, e.g. ``fig1_one_reference_many_domains``): loads it into the graph,
fits the view, and writes ``docs/images/<name>.png`` (the README's picture) and ``example_workflows/<name>.jpg``
(the thumbnail ComfyUI's template browser shows beside the template). Needs the environment the browser tests need
(COMFYUI_PATH, COMFYUI_PYTHON, ICM_FRONTEND_CURRENT for "current", chromium; see tests/browser/README.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]

from comfy_page import ComfyPage, launch_browser, open_page  # noqa: E402
from comfy_server import FRONTENDS, ComfyServers  # noqa: E402
from PIL import Image  # noqa: E402

PACK_ROOT = HERE.parents[1]
EXAMPLES = PACK_ROOT / "example_workflows"
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


def picture(comfy: ComfyPage, workflow: Path, png: Path) -> None:
    """The graph of ``workflow``, fitted to the canvas, as ``png``."""
    comfy.load_workflow(workflow)
    comfy.fit_view()
    comfy.page.wait_for_timeout(500)
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
    parser.add_argument("--vue-nodes", action="store_true", help="Nodes 2.0 on")
    args = parser.parse_args()
    workflows = [EXAMPLES / f"{name}.json" for name in args.names] or sorted(EXAMPLES.glob("*.json"))
    with tempfile.TemporaryDirectory() as scratch:
        servers = ComfyServers(Path(scratch), Path(scratch) / "checkpoint")
        try:
            server = servers.get(args.frontend)
            with (
                launch_browser() as browser,
                open_page(browser, server, args.frontend, args.vue_nodes, VIEWPORT, PICTURE_SETTINGS) as comfy,
            ):
                comfy.run_command("Workspace.ToggleFocusMode")  # no menus or side bars
                for workflow in workflows:
                    png = PICTURES / f"{workflow.stem}.png"
                    picture(comfy, workflow, png)
                    thumbnail(png, workflow.with_suffix(".jpg"))
                    print(png.relative_to(PACK_ROOT), workflow.with_suffix(".jpg").relative_to(PACK_ROOT))
                if comfy.errors:
                    print("console errors:", *(e.text for e in comfy.errors), sep="\n", file=sys.stderr)
        finally:
            servers.close()


if __name__ == "__main__":
    main()
