"""The IconMatting checkpoint: its model folder, loading, and ComfyUI's model management of the decoder."""

from __future__ import annotations

import os
import pickle
import weakref

import comfy.model_management
import comfy.model_patcher
import comfy.utils
import folder_paths
from safetensors import SafetensorError

from ..icm_model.decoder.checkpoint import config_of, decoder_from_state_dict, unreadable_checkpoint
from ..icm_model.decoder.model import InContextDecoder
from ..icm_model.fingerprint import weights_fingerprint
from .common import CATEGORY

MODEL_FOLDER = "icon_matting"
MODEL_TYPE = "ICON_MATTING_MODEL"
CHECKPOINT_SUFFIXES = {".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin"}


def register_model_folder() -> None:
    """``models/icon_matting`` (plus any extra_model_paths.yaml entries), listing checkpoint files only."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
    folder_paths.folder_names_and_paths[MODEL_FOLDER][1].update(CHECKPOINT_SUFFIXES)


class IconMattingModel:
    """A loaded IconMatting decoder, managed by ComfyUI like its own models: a ``ModelPatcher`` that
    ``load_models_gpu`` moves to the compute device when used, offloads when memory is needed and unloads on "free
    memory". ``fingerprint`` identifies the weights by content."""

    def __init__(self, decoder: InContextDecoder, name: str) -> None:
        self.decoder, self.name = decoder, name
        self.fingerprint = weights_fingerprint(decoder.state_dict().items(), decoder.config.to_json())
        """Of the weights and configuration, computed once: guidance of another checkpoint has another one."""
        self.patcher = comfy.model_patcher.ModelPatcher(
            decoder,
            load_device=comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device(),
        )

    @property
    def working_size(self) -> int:
        return self.decoder.config.working_size

    def describe(self) -> str:
        """The checkpoint's file name and fingerprint, for errors."""
        return f"{self.name} (weights {self.fingerprint})"

    def load(self) -> InContextDecoder:
        """The decoder, on the compute device."""
        comfy.model_management.load_models_gpu([self.patcher])
        return self.decoder


_loaded: weakref.WeakValueDictionary[tuple, IconMattingModel] = weakref.WeakValueDictionary()
"""File (device, inode, mtime, size) -> the model loaded from it, while anything else (ComfyUI's output cache) still
holds it: loader nodes naming one file share one decoder, and the pack never keeps it alive itself."""


def load_icon_matting_model(path: str) -> IconMattingModel:
    """Reads and strictly checks a checkpoint through ComfyUI's loader (``weights_only`` for pickles); a file still
    loaded elsewhere gives the same model."""
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    model = _loaded.get(key)
    if model is not None:
        return model
    name = os.path.basename(path)
    try:
        state_dict, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise unreadable_checkpoint(name, error) from error
    state_dict = {k: v for k, v in state_dict.items() if hasattr(v, "shape")}
    model = IconMattingModel(decoder_from_state_dict(state_dict, config_of(metadata or {}), name), name)
    _loaded[key] = model
    return model


class LoadIconMattingModel:
    """Loads the trained IconMatting decoder (similarity norm + matting head) from models/icon_matting."""

    DESCRIPTION = (
        "Loads the IconMatting checkpoint (the released icm.ckpt or a .safetensors conversion) from "
        "models/icon_matting. The Stable Diffusion 2.1 768-v model it works with is loaded separately, with Load "
        "Checkpoint."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("iconmatting_model",)
    OUTPUT_TOOLTIPS = (
        "The IconMatting decoder, for Encode Reference Context, In-Context Similarity and Matting Head.",
    )
    FUNCTION = "load"
    SEARCH_ALIASES = ["load matting model", "iconmatting", "in-context matting", "matting"]

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (
                    folder_paths.get_filename_list(MODEL_FOLDER),
                    {"tooltip": "Checkpoint in models/icon_matting (.safetensors preferred; .ckpt loads safely)."},
                ),
            }
        }

    def load(self, model_name: str):
        return (load_icon_matting_model(folder_paths.get_full_path_or_raise(MODEL_FOLDER, model_name)),)
