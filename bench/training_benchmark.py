"""Benchmark: seconds per training step and peak memory of ``python -m icm_model train``'s loop.

    python bench/training_benchmark.py                                    # tiny random model, CPU, batch 2
    python bench/training_benchmark.py --size sd21 --device cuda          # full SD2.1 architecture at 768x768
    python bench/training_benchmark.py --size sd21 --device cuda --unet-precision fp16 --precision bf16

The whole loop runs (data loading and the crop-resize pipeline from image files, U-Net features of reference and
target under no_grad, the decoder forward and backward, Adam, the loss log) on random weights and a generated dataset
of 1000x800 images; the first step (warm-up, allocation) is left out of the means. Seconds: wall clock per step (from
the run's loss log) and CPU time of this process per step (the telling figure on a shared CPU; data loading runs in
the process). Peak memory: CUDA's max_memory_allocated on a GPU, else the peak resident set of the whole process.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icm_model.random_models import DECODER_CONFIGS, random_backbone, random_decoder  # noqa: E402
from icm_model.training.data import DatasetSource, PairDataset, PipelineOptions, collect_items  # noqa: E402
from icm_model.training.distributed import Processes  # noqa: E402
from icm_model.training.recipe import recipe_by_name  # noqa: E402
from icm_model.training.trainer import Trainer, TrainingSettings  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def write_dataset(root: Path, images: int = 4) -> Path:
    """Two groups of random 1000x800 images with a soft disc alpha each."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:800, :1000]
    alpha = (np.clip((300 - np.hypot(y - 400, x - 500)) / 8 + 0.5, 0, 1) * 255).astype(np.uint8)
    for index in range(images):
        group = root / f"group{index % 2}"
        group.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (800, 1000, 3), dtype=np.uint8)).save(group / f"{index}.png")
        Image.fromarray(alpha).save(group / f"{index}_alpha.png")
    return root


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB -> MiB


def benchmark(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    backbone = random_backbone(args.size, device=device, dtype=DTYPES[args.unet_precision])
    decoder = random_decoder(DECODER_CONFIGS[args.size])
    recipe = recipe_by_name(args.recipe)
    with tempfile.TemporaryDirectory() as folder:
        items = collect_items([DatasetSource(write_dataset(Path(folder) / "data"))], recipe.self_pairing)
        options = PipelineOptions(decoder.config.working_size, recipe.independent_interpolation, recipe.self_pairing)
        settings = TrainingSettings(
            Path(folder) / "run", args.steps, args.batch, args.micro_batch, ensemble=args.ensemble,
            max_batch=args.max_batch, precision=args.precision,
        )  # fmt: skip
        trainer = Trainer(backbone, decoder, recipe, PairDataset(items, options, 0), settings, Processes(device=device))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        stamps = [time.process_time()]
        trainer.run(on_step=lambda step: stamps.append(time.process_time()))
        with (settings.out / "loss.csv").open() as file:
            seconds = [float(row["seconds"]) for row in csv.DictReader(file)]
    return {
        "size": args.size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "canvas": decoder.config.working_size,
        "batch": args.batch,
        "micro_batch": args.micro_batch or args.batch,
        "ensemble": args.ensemble,
        "unet_precision": args.unet_precision,
        "decoder_precision": args.precision,
        "seconds_per_step": statistics.mean(seconds[1:]),
        "first_step_seconds": seconds[0],
        "cpu_seconds_per_step": statistics.mean(b - a for a, b in zip(stamps[1:-1], stamps[2:], strict=True)),
        "peak_memory_mib": peak_memory_mib(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=["tiny", "sd21"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--micro-batch", type=int)
    parser.add_argument("--steps", type=int, default=4, help="steps run; the first is left out of the mean")
    parser.add_argument("--ensemble", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--recipe", default="official")
    parser.add_argument("--unet-precision", default="fp32", choices=list(DTYPES))
    parser.add_argument("--precision", default="fp32", choices=list(DTYPES), help="decoder autocast (CUDA)")
    print(json.dumps(benchmark(parser.parse_args()), indent=1))


if __name__ == "__main__":
    main()
