"""What identifies a ComfyUI MODEL or VAE by content, for caches that must never key on ``id()`` or file names.

A MODEL's identity is its weights as loaded (the originals ComfyUI keeps while LoRA patches are applied in place),
its weight patches (LoRA and the like: keys, strengths and sampled values), its object patches and the patches in its
model options (by the qualified name of their functions: their code cannot be hashed by content). Two MODELs with the
same identity give the same U-Net features.
"""

from __future__ import annotations

import torch

from ..icm_model.fingerprint import weights_fingerprint


def _describe(value, tensors: list[torch.Tensor]):
    """A hashable description of a patch or option; tensors are appended to ``tensors`` (by content)."""
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return f"tensor{len(tensors) - 1}"
    if isinstance(value, dict):
        return tuple(sorted((str(key), _describe(item, tensors)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_describe(item, tensors) for item in value)
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    if isinstance(value, torch.nn.Module):
        return (type(value).__qualname__, _describe(dict(value.state_dict()), tensors))
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if hasattr(value, "weights"):  # ComfyUI's weight adapters (LoRA, LoHa, ...) keep their tensors in .weights
        return (type(value).__qualname__, _describe(value.weights, tensors))
    return type(value).__qualname__


def model_fingerprint(model) -> str:
    """Content identity of a MODEL (a ComfyUI ``ModelPatcher``), a short hex digest."""
    backup = getattr(model, "backup", {})
    weights = [
        (name, backup[name].weight if name in backup else tensor)
        for name, tensor in model.model.state_dict(keep_vars=True).items()
    ]
    tensors: list[torch.Tensor] = []
    described = repr(
        (
            _describe(getattr(model, "patches", {}), tensors),
            _describe(getattr(model, "object_patches", {}), tensors),
            _describe(model.model_options, tensors),
        )
    )
    return weights_fingerprint(weights + [(f"patch{i}", t) for i, t in enumerate(tensors)], described)


def vae_fingerprint(vae) -> str:
    """Content identity of a VAE (a ComfyUI ``VAE``: its ``first_stage_model`` weights)."""
    return weights_fingerprint(vae.first_stage_model.state_dict(keep_vars=True).items())
