"""ComfyUI-IconMatting: in-context matting (IconMatting, CVPR 2024) as ComfyUI nodes.

The node modules import ComfyUI, so they load when ComfyUI asks for the mappings (PEP 562 module ``__getattr__``);
importing this folder outside ComfyUI (test runners, tools) stays harmless.
"""

WEB_DIRECTORY = "./web/js"
_FROM_NODES = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")

__all__ = [*_FROM_NODES, "WEB_DIRECTORY"]


def __getattr__(name: str):
    if name in _FROM_NODES:
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(name)
