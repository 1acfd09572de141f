"""A template opened from the Templates menu in 0.33.0's frontends (its pinned 1.49.6 and the current one) names only
files ComfyUI lists (the example photos the pack copied into input/) and runs as it is: no file to pick."""

from __future__ import annotations

import json

import pytest
from comfy_server import COMFYUI_VERSIONS, PACK_FOLDER

TEMPLATE = "fig10_similarity_maps"
FILE_NODES = {"LoadImage": "image", "LoadImageMask": "image", "LoadVideo": "file"}


@pytest.mark.parametrize("comfy_version", [v for v in COMFYUI_VERSIONS if v.name != "0.3.64"], ids=str)
@pytest.mark.parametrize("vue_nodes", [False])
def test_template_from_the_templates_menu_runs_without_picking_a_file(comfy):
    page = comfy.page
    comfy.run_command("Comfy.BrowseTemplates")
    page.get_by_text(PACK_FOLDER, exact=True).first.click()
    page.get_by_text(TEMPLATE, exact=True).first.click()
    page.wait_for_function("() => window.app.graph.nodes.some((n) => n.type === 'IconMattingReferencePrompt')")
    files = comfy.evaluate(
        """(kinds) => window.app.graph.nodes.filter((n) => kinds[n.type]).map((n) => {
            const widget = n.widgets.find((w) => w.name === kinds[n.type]);
            return [widget.value, widget.options.values.includes(widget.value)];
        })""",
        FILE_NODES,
    )
    assert files and all(listed for _, listed in files), files  # a file ComfyUI does not list reads as missing
    assert all(value.startswith("iconmatting_") for value, _ in files), files
    for node in comfy.evaluate("() => window.app.graph.nodes.filter((n) => n.widgets?.some((w) => "
                               "w.name === 'ensemble_size')).map((n) => n.id)"):  # fmt: skip
        comfy.set_widget(node, "ensemble_size", 1)  # keep the CPU run short
    result = comfy.queue_and_wait()
    assert result["status"]["status_str"] == "success", json.dumps(result["status"])[:3000]
