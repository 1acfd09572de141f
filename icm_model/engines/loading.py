"""Loading the standalone model and encoding the job's reference: what every engine does before matting."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from pathlib import Path

import torch

from ..decoder.checkpoint import load_decoder
from ..image_io import load_image, load_mask
from ..pipeline import DEFAULT_MAX_BATCH, InContextMatting, ReferenceContext
from ..validation import InputError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA where available, else the CPU; any other name as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``precision`` with 'auto' resolved: fp16 on CUDA, fp32 elsewhere."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def load_matting(
    sd: Path, checkpoint: Path, device: torch.device, precision: str, max_batch: int = DEFAULT_MAX_BATCH
) -> InContextMatting:
    """SD2.1 (single file or diffusers folder) + IconMatting checkpoint; "auto" precision: fp16 on CUDA."""
    from ..backbone.diffusers_backbone import DiffusersBackbone

    backbone = DiffusersBackbone.from_pretrained(sd, device, PRECISIONS[resolve_precision(precision, device)])
    return InContextMatting(backbone, load_decoder(checkpoint).to(device), max_batch)


def encode_references(
    matting: InContextMatting, images: Sequence[Path], masks: Sequence[Path], timestep: int, ensemble: int, seed: int
) -> ReferenceContext:
    """One context from every (reference image, mask) pair: the union of their RoIs."""
    if len(images) != len(masks):
        raise InputError(f"give one --reference-mask per --reference ({len(images)} images, {len(masks)} masks)")
    contexts = [
        matting.encode_reference(
            load_image(image, "reference image"),
            load_mask(mask, "reference mask"),
            timestep=timestep,
            ensemble=ensemble,
            seed=seed,
        )
        for image, mask in zip(images, masks, strict=True)
    ]
    return reduce(ReferenceContext.union, contexts)
