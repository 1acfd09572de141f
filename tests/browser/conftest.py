"""Browser fixtures: ``comfy_version`` (tests/conftest.py) x ``frontend`` x ``vue_nodes`` parametrise every test that
uses ``comfy`` (or ``page``).

See tests/browser/README.md. Skipped without COMFYUI_PATH / COMFYUI_033_PATH, ICM_FRONTEND_CURRENT (for "current"),
playwright or chromium; failed instead when CI is set.
"""

from __future__ import annotations

import pytest
from comfy_page import launch_browser, open_page
from comfy_server import FRONTENDS


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session."""
    with launch_browser() as browser:
        yield browser


@pytest.fixture(params=FRONTENDS)
def frontend(request) -> str:
    """``"pinned"`` (ComfyUI's own frontend) or ``"current"`` (``--front-end-root $ICM_FRONTEND_CURRENT``)."""
    return request.param


@pytest.fixture(params=[False, True], ids=["litegraph", "vue"])
def vue_nodes(request) -> bool:
    """Nodes 2.0 (setting ``Comfy.VueNodes.Enabled``) off or on."""
    return request.param


@pytest.fixture
def server(comfy_servers, comfy_version, frontend):
    """The ComfyServer (tests/comfy_server.py) of ``comfy_version`` serving ``frontend``; started once per session."""
    return comfy_servers.get(comfy_version, frontend)


@pytest.fixture
def comfy(browser, server, frontend, vue_nodes):
    """A ComfyPage, ready; the test fails if this pack's scripts log a console error or throw."""
    with open_page(browser, server, frontend, vue_nodes) as comfy:
        yield comfy
        ours = comfy.our_errors()
    assert not ours, "console errors from this pack:\n" + "\n".join(f"{e.text} ({e.url})" for e in ours)


@pytest.fixture
def page(comfy):
    """The playwright Page of ``comfy``."""
    return comfy.page
