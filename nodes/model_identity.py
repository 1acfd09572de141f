"""Which SD model computed these features: the MODEL's weights plus the patches on them, by content.

A LoRA-patched clone of the MODEL shares its weights (``is_clone`` is true) but computes other features, so the identity
of a ``ModelPatcher`` is the fingerprint of its underlying weights as loaded (never the weights ComfyUI has patched in
place: those keys are read from the patcher's backup) together with the fingerprint of its weight patches (keys,
strengths, the patch tensors), object patches and model options (the patches other nodes put into the U-Net).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from weakref import WeakKeyDictionary

import torch

from ..icm_model.fingerprint import content_fingerprint, weights_fingerprint

PATCH_ATTRIBUTES = ("patches", "object_patches", "weight_wrapper_patches", "model_options")
"""What a ModelPatcher adds to its base model's weights (absent ones count as None)."""
_weights: WeakKeyDictionary[torch.nn.Module, str] = WeakKeyDictionary()
"""Base model (or VAE model) -> fingerprint of its weights as loaded; computed once per model, never keeping it
alive."""


def original_weights(model) -> Iterator[tuple[str, torch.Tensor]]:
    """The base model's weights of a ModelPatcher as loaded: where ComfyUI patched a weight in place, its backup."""
    backup = getattr(model, "backup", None) or {}
    hook_backup = getattr(model, "hook_backup", None) or {}
    for name, tensor in model.model.state_dict().items():
        if name in backup:
            tensor = backup[name].weight
        elif name in hook_backup:
            tensor = hook_backup[name][0]
        yield name, tensor


def _weights_once(module: torch.nn.Module, named_tensors: Callable[[], Iterable[tuple[str, torch.Tensor]]]) -> str:
    """The fingerprint of ``named_tensors()``, the weights of ``module``, computed once per module."""
    if module not in _weights:
        _weights[module] = weights_fingerprint(named_tensors())
    return _weights[module]


def model_identity(model) -> str:
    """``weights:patches``, two fingerprints of a ModelPatcher (see the module docstring)."""
    weights = _weights_once(model.model, lambda: original_weights(model))
    patches = content_fingerprint([getattr(model, name, None) for name in PATCH_ATTRIBUTES])
    return f"{weights}:{patches}"


def vae_identity(vae) -> str:
    """The fingerprint of a ComfyUI VAE's weights (computed once per VAE model)."""
    first_stage = vae.first_stage_model
    return _weights_once(first_stage, lambda: first_stage.state_dict().items())
