"""Benchmark: seconds per target, U-Net passes per target and peak memory, for N targets and one reference.

    python bench/benchmark.py                       # tiny random SD2-architecture model on the CPU
    python bench/benchmark.py --size sd21 --device cuda --targets 8

"U-Net passes per target" counts every latent sent through the U-Net, weighted by the share of a full U-Net pass's
FLOPs that the capture pass actually ran (it stops early), and divides by N: the reference is encoded once. The
official code runs 2 x E = 8 full passes per target, as it re-encodes the reference for every target.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from diffusers.models.attention_processor import AttnProcessor
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icm_model.backbone.capture import UNetCapture  # noqa: E402
from icm_model.backbone.diffusers_backbone import DiffusersBackbone  # noqa: E402
from icm_model.pipeline import InContextMatting  # noqa: E402
from icm_model.random_models import DECODER_CONFIGS, random_backbone, random_decoder  # noqa: E402

TIMESTEP = 200


def unet_share(backbone: DiffusersBackbone, with_attention: bool) -> float:
    """FLOPs of one capture pass over one latent, as a share of a full uninstrumented U-Net pass.

    Both passes count attention as explicit matmuls (diffusers' AttnProcessor), so no kernel hides its FLOPs.
    """
    unet = backbone.unet
    size = unet.config.sample_size
    latent = torch.randn(1, 4, size, size, device=backbone.device, dtype=unet.dtype)
    context = backbone.prompt_embeds[:1]
    originals = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as full:
            unet(latent, TIMESTEP, encoder_hidden_states=context)
        with FlopCounterMode(display=False) as captured:
            backbone.run(latent, TIMESTEP, UNetCapture(with_attention))
    finally:
        unet.set_attn_processor(originals)
    return captured.get_total_flops() / full.get_total_flops()


class CountingBackbone:
    """Counts the latents each kind of capture pass sends through the U-Net."""

    def __init__(self, backbone: DiffusersBackbone) -> None:
        self.backbone = backbone
        self.latents = {True: 0, False: 0}

    def __getattr__(self, name):
        return getattr(self.backbone, name)

    def run(self, noisy_latents, timestep, capture):
        self.latents[capture.with_attention] += noisy_latents.shape[0]
        return self.backbone.run(noisy_latents, timestep, capture)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB -> MiB, whole process


def benchmark(size: str, device: torch.device, dtype: torch.dtype, targets: int, ensemble: int, max_batch: int) -> dict:
    backbone = random_backbone(size, device=device, dtype=dtype)
    decoder = random_decoder(DECODER_CONFIGS[size]).to(device)
    share = {plan: unet_share(backbone, plan) for plan in (False, True)}
    counting = CountingBackbone(backbone)
    matting = InContextMatting(counting, decoder, max_batch)
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, 720, 1280, generator=generator)
    mask = torch.zeros(1, 720, 1280)
    mask[:, 200:520, 400:880] = 1
    images = torch.rand(targets, 3, 720, 1280, generator=generator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    context = matting.encode_reference(reference, mask, ensemble=ensemble)
    encoded = time.perf_counter()
    matting.matte(context, images, ensemble=ensemble)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    done = time.perf_counter()
    passes = counting.latents[False] * share[False] + counting.latents[True] * share[True]
    return {
        "model": size,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "targets": targets,
        "ensemble": ensemble,
        "image": "1280x720",
        "reference_seconds": round(encoded - start, 3),
        "seconds_per_target": round((done - encoded) / targets, 3),
        "seconds_per_target_incl_reference": round((done - start) / targets, 3),
        "unet_share_reference_pass": round(share[False], 4),
        "unet_share_target_pass": round(share[True], 4),
        "unet_passes_per_target": round(passes / targets, 4),
        "bound_E_share_plus_E_over_n": round(ensemble * share[True] + ensemble / targets, 4),
        "official_unet_passes_per_target": 2 * ensemble,
        "peak_memory_mib": round(peak_memory_mib(device), 1),
        "peak_memory_scope": "CUDA allocator" if device.type == "cuda" else "process max RSS",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "sd21"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", choices=["fp32", "fp16", "bf16"], default=None, help="default: fp16 on CUDA, fp32 on the CPU"
    )
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--ensemble", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("fp16" if device.type == "cuda" else "fp32")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    result = benchmark(args.size, device, dtype, args.targets, args.ensemble, args.max_batch)
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
