"""A ComfyUI frontend page in chromium (playwright, sync API), with helpers the browser tests and scripts share.

:func:`open_page` opens the frontend of a :class:`comfy_server.ComfyServer` in a browser with Nodes 2.0 (Vue nodes)
on or off and returns a :class:`ComfyPage`: the playwright ``page`` plus helpers to load a workflow, queue it, read
widget values and take screenshots. tests/browser/README.md documents it.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from comfy_server import PACK_FOLDER, ComfyServer, unavailable

VIEWPORT = {"width": 1600, "height": 1000}
OUR_SCRIPTS = f"/extensions/{PACK_FOLDER}/"
QUIET_SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no template browser on the first visit
    "Comfy.Workflow.ShowMissingModelsWarning": False,
}
"""Settings every page starts with, so that no first-visit dialog covers the graph."""
NODE_JS = (
    "((id) => String(id).split(':').reduce((node, part) => (node ? node.subgraph : window.app.graph)"
    "?.getNodeById(Number(part)) ?? null, null))"
)
"""A JS function expression: the node of an execution id, at any depth (``7``, or ``"12:5"`` = node 5 inside subgraph
node 12), from the root graph whichever graph the canvas shows; null if there is none."""


def chromium_path() -> str:
    """``CHROMIUM_PATH``, else a ``chromium`` on PATH (Debian package ``chromium``); skip (fail in CI) without."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        unavailable("no chromium: install Debian's chromium or set CHROMIUM_PATH")
    return path


@contextmanager
def launch_browser():
    """A headless chromium driven by playwright (its own browsers are not needed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsoleEntry:
    """A console error or uncaught exception of the page; ``ours`` when it comes from this pack's scripts."""

    text: str
    url: str

    @property
    def ours(self) -> bool:
        return OUR_SCRIPTS in self.url or OUR_SCRIPTS in self.text or "iconmatting" in self.text.lower()


@dataclass
class ComfyPage:
    """The frontend of ``server`` in a playwright ``page``; ``errors`` collects console errors as they come."""

    page: object
    server: ComfyServer
    frontend: str
    vue_nodes: bool
    errors: list[ConsoleEntry] = field(default_factory=list)
    scripts: dict[str, int] = field(default_factory=dict)
    """URL path -> HTTP status of every script of this pack the page fetched."""
    frontend_version: str = ""
    """The version the loaded frontend reports (``window.__COMFYUI_FRONTEND_VERSION__``), e.g. ``"1.49.6"``."""

    @property
    def nodes2_preview(self) -> bool:
        """Nodes 2.0 on in frontend 1.27 (ComfyUI 0.3.64's), where it was an experimental preview: it draws no
        extension DOM widgets and no title element (1.49 and later draw both)."""
        return self.vue_nodes and self.frontend_version.startswith("1.27.")

    def evaluate(self, script: str, arg=None):
        """Runs a JS function expression (``"(arg) => ..."``) in the page; ``app`` is ``window.app``."""
        return self.page.evaluate(script, arg)

    def load_workflow(self, workflow: dict | str | Path) -> None:
        """Loads a UI-format workflow (a dict or a JSON file) into the graph, as opening a file does."""
        graph = workflow if isinstance(workflow, dict) else json.loads(Path(workflow).read_text())
        self.evaluate("async (graph) => { await window.app.loadGraphData(graph); }", graph)
        self.page.wait_for_timeout(300)  # let the canvas (and Vue nodes) draw

    def node_types(self) -> dict[int, dict]:
        """Node id -> {"type", "registered"}: whether the frontend knows the node's type (missing nodes are not)."""
        return {
            int(k): v
            for k, v in self.evaluate(
                """() => Object.fromEntries(window.app.graph._nodes.map((n) => [n.id,
                    {type: n.type, registered: n.type in LiteGraph.registered_node_types}]))"""
            ).items()
        }

    def widget_values(self, node_id: int | str) -> dict:
        """The widgets of one node (an execution id: ``7``, ``"12:5"``): name -> value."""
        return self.evaluate(
            f"(id) => Object.fromEntries(({NODE_JS}(id).widgets ?? []).map((w) => [w.name, w.value]))", node_id
        )

    def set_widget(self, node_id: int | str, name: str, value) -> None:
        """Sets one widget's value (as the user would; its callback runs); ``node_id`` as in :meth:`widget_values`."""
        self.evaluate(
            f"""([id, name, value]) => {{
                const node = {NODE_JS}(id);
                const widget = node.widgets.find((w) => w.name === name);
                if (!widget) throw new Error(`node ${{id}} has no widget ${{name}}`);
                widget.value = value;
                widget.callback?.(value, window.app.canvas, node);
                node.setDirtyCanvas(true, true);
            }}""",
            [node_id, name, value],
        )

    def queue(self) -> str:
        """Queues the graph as the Run button does; the prompt id ComfyUI gave it."""
        with self.page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST") as info:
            self.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
        response = info.value
        body = response.json()
        assert response.ok and "prompt_id" in body, f"prompt refused: {json.dumps(body)[:3000]}"
        return body["prompt_id"]

    def queue_and_wait(self, timeout: float = 600.0) -> dict:
        """Queues the graph and waits until ComfyUI finished it: the history entry (``status``, ``outputs``)."""
        result = self.server.wait(self.queue(), timeout)
        self.page.wait_for_timeout(500)  # the frontend receives the "executed" messages
        return result

    def show_outputs(self, outputs: dict[str, dict]) -> None:
        """Hands node outputs to the frontend as the "executed" messages ComfyUI sends during a run.

        ``outputs``: node id -> that node's "ui" output, as a history entry's ``outputs`` holds them
        (``{"text": [...]}``, ``{"images": [...]}``); images must exist on the server (a real run's files, or
        ``"type": "input"`` files).
        """
        self.evaluate(
            """(outputs) => { for (const [node, output] of Object.entries(outputs)) {
                window.app.api.dispatchEvent(new CustomEvent("executed",
                    {detail: {node, display_node: node, output, prompt_id: "shown"}}));
            } }""",
            outputs,
        )
        self.page.wait_for_timeout(500)

    def fit_view(self) -> None:
        """Fits the whole graph into the canvas (the frontend's "Fit view" command)."""
        self.run_command("Comfy.Canvas.FitView")

    def run_command(self, command: str) -> None:
        """Runs a frontend command by id (e.g. ``"Workspace.ToggleFocusMode"``), as its keybinding does."""
        self.evaluate("async (id) => { await window.app.extensionManager.command.execute(id); }", command)
        self.page.wait_for_timeout(300)

    def screenshot(self, path: str | Path, selector: str | None = None, **options) -> Path:
        """A PNG (or JPEG, by suffix) of the page, or of the first element matching ``selector``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        target = self.page.locator(selector).first if selector else self.page
        target.screenshot(path=str(path), **options)
        return path

    def our_errors(self) -> list[ConsoleEntry]:
        return [entry for entry in self.errors if entry.ours]


@contextmanager
def open_page(
    browser,
    server: ComfyServer,
    frontend: str,
    vue_nodes: bool,
    viewport: dict = VIEWPORT,
    settings: dict | None = None,
):
    """A :class:`ComfyPage` on ``server``'s frontend, loaded and ready (the app, the graph and our extensions).

    ``settings`` (id -> value) are stored through ComfyUI's settings API before the page loads, with
    :data:`QUIET_SETTINGS` and ``Comfy.VueNodes.Enabled`` = ``vue_nodes``.
    """
    server.post("/settings", {**QUIET_SETTINGS, **(settings or {}), "Comfy.VueNodes.Enabled": vue_nodes})
    server.clear_cache()  # a test's run executes its nodes even if an earlier test queued the same prompt
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    comfy = ComfyPage(page, server, frontend, vue_nodes)
    page.on("console", lambda m: m.type == "error" and comfy.errors.append(ConsoleEntry(m.text, m.location["url"])))
    page.on("pageerror", lambda e: comfy.errors.append(ConsoleEntry(f"{e}\n{e.stack or ''}", "")))
    page.on("response", lambda r: OUR_SCRIPTS in r.url and comfy.scripts.setdefault(r.url.split("?")[0], r.status))
    try:
        page.goto(server.url)
        page.wait_for_function(
            "() => window.app?.graph && window.app.extensionManager && window.app.vueAppReady !== false"
            " && document.querySelector('canvas')",
            timeout=60_000,
        )
        page.wait_for_timeout(1000)
        comfy.frontend_version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__")
        yield comfy
    finally:
        context.close()
