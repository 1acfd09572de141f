"""Content fingerprints of model weights, cheap enough to compute on every run.

Hashing every byte of a 1.7 GB U-Net on every run would cost seconds; instead every tensor contributes its name,
shape, dtype and ``SAMPLES`` values spread evenly over it. Two different checkpoints or fine-tunes differ in nearly
every weight, so they differ here; a cache keyed on this never confuses two models that differ by more than a few
isolated weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch

SAMPLES = 16
"""Values read from each tensor."""


def sampled_values(tensor: torch.Tensor, samples: int = SAMPLES) -> torch.Tensor:
    """Up to ``samples`` values spread evenly over ``tensor`` (flattened), as fp32 on the tensor's device."""
    flat = tensor.detach().reshape(-1)
    if flat.numel() <= samples:
        return flat.float()
    index = torch.linspace(0, flat.numel() - 1, samples, device=flat.device).long()
    return flat[index].float()


def weights_fingerprint(
    named_tensors: Iterable[tuple[str, torch.Tensor]], description: str = "", samples: int = SAMPLES
) -> str:
    """A short hex digest of named tensors (in the given order: names, shapes, dtypes and sampled values) and of a
    ``description`` of whatever else identifies the model."""
    digest = hashlib.sha1(description.encode())
    values = []
    for name, tensor in named_tensors:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        values.append(sampled_values(tensor, samples))
    on_cpu: list[torch.Tensor | None] = [None] * len(values)
    for device in {value.device for value in values}:  # one copy to the CPU per device, whatever is where
        indices = [i for i, value in enumerate(values) if value.device == device]
        pieces = torch.cat([values[i] for i in indices]).cpu().split([values[i].numel() for i in indices])
        for i, piece in zip(indices, pieces, strict=True):
            on_cpu[i] = piece
    if on_cpu:
        digest.update(torch.cat(on_cpu).numpy().tobytes())
    return digest.hexdigest()[:16]
