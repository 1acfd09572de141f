"""Benchmark: seconds and peak memory of foreground colour estimation and of guided upsampling of alpha; with
``--quality``, their errors on scikit-image photos with a known alpha (needs the ``test`` extra).

    python bench/compositing.py                          # 1024^2 and 4096^2 on the CPU
    python bench/compositing.py --sizes 2048 --device cuda
    python bench/compositing.py --quality                # 2048x1536 from the 768 canvas

Each measurement runs in a fresh subprocess, so the peak memory it reports (process peak RSS above what the inputs
already held, or CUDA peak allocation) belongs to that one call. Inputs are a synthetic soft-edged composite; the
time is one call after a small warm-up call: wall seconds, and the process's CPU seconds (all threads), which say more
than wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from icm_model.compositing import estimate_foreground, guided_upsample  # noqa: E402
from icm_model.geometry import resize  # noqa: E402

WORKING = 768
OPERATIONS = ("multilevel", "blur_fusion", "guided_upsample", "bilinear_upsample")


def _inputs(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 4, 8, 8, generator=generator)
    fields = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    alpha = torch.sigmoid((fields[:, 3:] - 0.5) * 40)
    image = (alpha * fields[:, :3] + (1 - alpha) * fields[:, :3].flip(1)).clamp(0, 1)
    return image.to(device), alpha.to(device)


def _call(operation: str, image: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    if operation in ("multilevel", "blur_fusion"):
        return estimate_foreground(image, alpha, operation)
    working = resize(alpha, (WORKING, WORKING))
    if operation == "bilinear_upsample":
        return resize(working, image.shape[-2:])
    return guided_upsample(working, resize(image, (WORKING, WORKING)), image)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _reset_peak_rss() -> None:
    """Resets the kernel's peak RSS (VmHWM) to the current RSS, so that making the inputs does not count."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def measure(operation: str, size: int, device: str) -> dict:
    """One measurement in this process: ``{"seconds": wall, "cpu_seconds": process CPU time, "peak_mb": ...}``."""
    device = torch.device(device)
    _call(operation, *_inputs(64 if operation in ("multilevel", "blur_fusion") else WORKING * 2, device))  # warm up
    image, alpha = _inputs(size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        base = _rss_bytes()
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.no_grad():
        _call(operation, image, alpha)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda" else _peak_rss_bytes()) - base
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mb": max(0, peak) / 2**20}


def quality(height: int, width: int) -> None:
    """Prints the quality tables: guided vs bilinear upsampling of a perfect working-canvas matte, blur fusion vs Forte
    & Pitie's published code, and the old background's share each foreground estimate keeps."""
    import compositing_cases as cases  # the test extra: scikit-image photos, OpenCV

    print(f"upsampling {height}x{width} from the {WORKING} canvas: guided / bilinear")
    print("| case | bilinear SAD | guided SAD | SAD ratio | bilinear gradient | guided gradient | gradient ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, case in {**cases.LOW_CONTRAST_CASES, **cases.CONTRASTING_CASES}.items():
        alpha, image = case(height, width)
        working_alpha, working_image = cases.working_inputs(alpha, image, WORKING)
        bilinear = resize(working_alpha, (height, width)).clamp(0, 1)
        guided = guided_upsample(working_alpha, working_image, image)
        sads = cases.sad(bilinear, alpha), cases.sad(guided, alpha)
        gradients = cases.gradient_error(bilinear, alpha), cases.gradient_error(guided, alpha)
        print(
            f"| {name} | {sads[0]:.2f} | {sads[1]:.2f} | {sads[1] / sads[0]:.2f} | {gradients[0]:.3f} | "
            f"{gradients[1]:.3f} | {gradients[1] / gradients[0]:.2f} |",
            flush=True,
        )
    print(f"\nforeground colours {height}x{width}: blur fusion vs published code; old background's share kept")
    print("| case | blur fusion - published (mean abs, alpha > 0.01) | multilevel | blur_fusion | multiply |")
    print("|---|---|---|---|---|")
    for name, case in cases.FOREGROUND_CASES.items():
        foreground, alpha, old = case(height, width)
        image = cases.composite(foreground, alpha, old)
        estimates = {method: estimate_foreground(image, alpha, method) for method in ("multilevel", "blur_fusion")}
        published = cases.forte_blur_fusion(image[0].permute(1, 2, 0).double().numpy(), alpha[0, 0].double().numpy())
        ours = estimates["blur_fusion"][0].permute(1, 2, 0).double().numpy()
        difference = abs(ours - published)[alpha[0, 0].numpy() > 0.01].mean()
        shares = [cases.background_share(estimates[m], foreground, alpha, old) for m in estimates]
        print(f"| {name} | {difference:.1e} | {shares[0]:.2f} | {shares[1]:.2f} | 1 |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096], help="image sides (square images)")
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quality", action="store_true", help="errors on photos instead of speed")
    parser.add_argument("--quality-size", type=int, nargs=2, default=[1536, 2048], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--one", nargs=2, metavar=("OPERATION", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quality:
        quality(*args.quality_size)
        return
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.device)))
        return
    load = os.getloadavg()[0]
    threads = torch.get_num_threads()
    print(f"device {args.device}, {threads} threads, torch {torch.__version__}, load average {load:.1f}")
    print("| operation | size | seconds | CPU seconds | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for operation in args.operations:
            command = [sys.executable, __file__, "--device", args.device, "--one", operation, str(size)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(
                f"| {operation} | {size}x{size} | {result['seconds']:.2f} | {result['cpu_seconds']:.2f} | "
                f"{result['peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
