"""Loads the pack the way ComfyUI does, against the test doubles in tests/comfy_doubles."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import torch

DOUBLES = Path(__file__).resolve().parent / "comfy_doubles"
PACK_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui_iconmatting_under_test"


def load_pack(models_dir: Path) -> ModuleType:
    """Imports the pack's root ``__init__.py`` as a package (ComfyUI's load_custom_node does the same)."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    os.environ["ICM_TEST_MODELS_DIR"] = str(models_dir)
    if str(DOUBLES) not in sys.path:
        sys.path.insert(0, str(DOUBLES))
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def pack_module(name: str) -> ModuleType:
    """A module of the pack as loaded by :func:`load_pack`, e.g. ``pack_module("nodes.comfy_backbone")``."""
    return importlib.import_module(f"{PACK_NAME}.{name}")


def comfy_model(unet, family: str = "SD20", model_type: str = "V_PREDICTION"):
    """A MODEL (ModelPatcher double) around a diffusers U-Net driven in the LDM block layout."""
    from comfy import model_base, model_patcher, model_sampling, supported_models
    from comfy.ldm_unet import LDMUNet

    config_class = getattr(supported_models, family)
    config = config_class({**config_class.unet_config, "in_channels": 4, "num_res_blocks": [2, 2, 2, 2]})
    base = model_base.BaseModel(
        config, model_base.ModelType[model_type], LDMUNet(unet), model_sampling.ModelSamplingDiscrete()
    )
    return model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
