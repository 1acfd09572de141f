"""Benchmark of the Ray engine: targets per second for 1 and 2 workers, and the scaling ratio.

    python bench/ray_benchmark.py                          # tiny random model, local cluster, CPU workers
    python bench/ray_benchmark.py --size sd21 --device cuda --gpus-per-worker 1 --workers 1 2 --targets 64

Each run is a fresh job (no finished targets) on a local Ray cluster (``--address`` joins another); the reference is
encoded once per job. Targets/s counts the whole job (model loading on the workers included) and, separately, the
workers' busy time, which is what more targets amortise towards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import ray
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icm_model.decoder.checkpoint import save_decoder  # noqa: E402
from icm_model.engines.job import MatteSettings  # noqa: E402
from icm_model.engines.ray_engine import ModelSpec, RayOptions, run_ray  # noqa: E402
from icm_model.random_models import DECODER_CONFIGS, random_decoder, write_diffusers_folder  # noqa: E402


def write_inputs(root: Path, size: str, targets: int, side: int, device: str) -> tuple[ModelSpec, list[str]]:
    """Random-weight models, a reference with its mask (``root/ref.png``, ``root/mask.png``) and ``targets`` random
    targets of ``side``² under ``root``: the workers' model and the targets' locations."""
    write_diffusers_folder(root / "sd", size)
    save_decoder(random_decoder(DECODER_CONFIGS[size]), root / "icm.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(root / "ref.png")
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 255
    Image.fromarray(mask).save(root / "mask.png")
    (root / "targets").mkdir()
    for index in range(targets):
        image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "targets" / f"{index:05d}.png")
    spec = ModelSpec(str(root / "sd"), str(root / "icm.safetensors"), device)
    return spec, sorted(str(p) for p in (root / "targets").iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=sorted(DECODER_CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--targets", type=int, default=64)
    parser.add_argument("--side", type=int, default=256, help="target side in pixels")
    parser.add_argument("--ensemble", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--address", help="a running Ray cluster (default: a local one)")
    args = parser.parse_args()
    repo = str(Path(__file__).resolve().parents[1])
    ray.init(address=args.address, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": repo}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    results = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec, locations = write_inputs(root, args.size, args.targets, args.side, args.device)
        reference = ([str(root / "ref.png")], [str(root / "mask.png")])
        settings = MatteSettings(args.ensemble, 0)
        for workers in args.workers:
            options = RayOptions(workers=workers, gpus_per_worker=args.gpus_per_worker)
            summary = run_ray(spec, *reference, 200, locations, str(root / f"out{workers}"), settings, options)
            busy = sum(count / seconds for count, seconds in summary.workers.values() if seconds > 0)
            results.append(
                {
                    "workers": workers,
                    "targets_per_s": summary.written / summary.seconds,
                    "busy_targets_per_s": busy,
                    "seconds": summary.seconds,
                    "workers_used": len(summary.workers),
                }
            )
    base = results[0]
    for result in results:
        result["scaling"] = result["targets_per_s"] / base["targets_per_s"]
        result["busy_scaling"] = result["busy_targets_per_s"] / base["busy_targets_per_s"]
    print(json.dumps({"size": args.size, "device": args.device, "threads": torch.get_num_threads(), "runs": results}))


if __name__ == "__main__":
    main()
