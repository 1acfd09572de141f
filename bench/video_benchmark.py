"""Video benchmark: peak memory against the number of frames, and flicker with and without temporal stabilisation.

    python bench/video_benchmark.py memory                      # 32 and 256 frames, tiny random model, CPU
    python bench/video_benchmark.py flicker                     # synthetic moving object, tiny random model
    python bench/video_benchmark.py flicker --sd v2-1_768-ema-pruned.safetensors --icm iconmatting.safetensors
    python bench/video_benchmark.py stability --before f849b9f  # photo clips, this stabiliser and a revision's
    python bench/video_benchmark.py speed --before f849b9f --width 480 --height 270 --frames 4

memory: every frame count runs in a fresh process (peak = that process's max RSS) through the same streaming loop as
Video In-Context Matte (icm_model.video.stream), chunk after chunk, with the stabiliser on (glibc's mmap threshold
fixed, see FIXED_MMAP_THRESHOLD). The frames' and mattes' own storage is reported beside it: what grows with the frame
count should be exactly that.

flicker: a textured disc moving over a textured static background, with known alpha. Reported inside a band around
the true edge: flicker (mean |alpha_t - alpha_t-1|; the true alpha's own value is the floor a moving object sets),
temporal error (mean |change - true change|, cf. dtSSD) and mean error. Rows: the model without and with the
stabiliser, and the stabiliser on the true mattes plus noise (model-free: what it does to flicker it can see). With
random weights the model's rows measure the pipeline, not matting quality; pass --sd and --icm for real figures.

stability: the photo clips of tests/test_video_stability.py (scikit-image's chelsea as a soft-edged object over coffee:
sub-pixel drift, rotation, scaling, an occluder, a scene cut; needs the `test` extra), the stabiliser off / 0.5 / 0.8
on noisy mattes (edge jitter + noise) and on exact mattes: mean error, edge flicker and temporal error in the edge band,
and the mean error of the two frames after the cut, averaged over --seeds. --before REV adds the same rows for the
stabiliser of a git revision (its icm_model/video/motion.py and temporal.py), e.g. the whole-pixel one of f849b9f.

speed: seconds per frame of the stabiliser alone (and of --before's) on frames of noise moving 1 px per frame.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icm_model.cli import load_matting  # noqa: E402
from icm_model.pipeline import InContextMatting  # noqa: E402
from icm_model.random_models import random_backbone, random_decoder  # noqa: E402
from icm_model.video.flicker import edge_band, flicker, mean_error, temporal_error  # noqa: E402
from icm_model.video.stream import stream_mattes  # noqa: E402
from icm_model.video.synthetic import moving_object_clip, stability_clips  # noqa: E402
from icm_model.video.temporal import DEFAULT_STRENGTH, TemporalStabiliser  # noqa: E402

MIB = 2**20
FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
"""glibc's default raises its mmap threshold as large blocks are freed, so freed chunk buffers then stay in the heap
and inflate the max RSS with memory that is free; a fixed threshold returns them, and max RSS follows live memory."""


def _matting(args: argparse.Namespace) -> InContextMatting:
    if args.sd and args.icm:
        return load_matting(args.sd, args.icm, torch.device(args.device), "auto")
    return InContextMatting(random_backbone("tiny", device=args.device), random_decoder().to(args.device))


def _matte(matting: InContextMatting, images: torch.Tensor, mask: torch.Tensor, args, strength: float) -> torch.Tensor:
    """Alpha ``[N, H, W]`` of frames ``[N, H, W, 3]`` from the marked first frame, streamed in chunks."""
    context = matting.encode_reference(images[:1].movedim(-1, 1), mask, ensemble=args.ensemble)
    stabiliser = TemporalStabiliser(strength) if strength > 0 else None
    return stream_mattes(
        images, args.chunk_size, lambda chunk: matting.matte(context, chunk, ensemble=args.ensemble)[:, 0], stabiliser
    )


def memory_run(args: argparse.Namespace) -> dict:
    """One frame count, in this process: peak RSS and the frames' and mattes' storage."""
    torch.manual_seed(0)
    matting = _matting(args)
    images = torch.rand(args.frames, args.height, args.width, 3)
    mask = torch.zeros(1, args.height, args.width)
    mask[:, args.height // 4 : 3 * args.height // 4, args.width // 4 : 3 * args.width // 4] = 1
    alpha = _matte(matting, images, mask, args, DEFAULT_STRENGTH)
    storage = images.element_size() * images.nelement() + alpha.element_size() * alpha.nelement()
    return {
        "frames": args.frames,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1),
        "frames_and_mattes_mib": round(storage / MIB, 1),
    }


def memory(args: argparse.Namespace) -> dict:
    rows = []
    for frames in args.counts:
        command = [sys.executable, __file__, "memory-run", "--frames", str(frames), "--width", str(args.width),
                   "--height", str(args.height), "--chunk-size", str(args.chunk_size), "--ensemble",
                   str(args.ensemble), "--device", args.device]  # fmt: skip
        run = subprocess.run(
            command, check=True, capture_output=True, text=True, env={**os.environ, **FIXED_MMAP_THRESHOLD}
        )
        rows.append(json.loads(run.stdout))
    for row in rows:
        row["peak_minus_frames_and_mattes_mib"] = round(row["peak_rss_mib"] - row["frames_and_mattes_mib"], 1)
    first, last = rows[0], rows[-1]
    return {
        "model": "tiny random SD2 architecture",
        "frame_size": f"{args.width}x{args.height}",
        "chunk_size": args.chunk_size,
        "ensemble": args.ensemble,
        "temporal_stability": DEFAULT_STRENGTH,
        "rows": rows,
        "peak_growth_mib": round(last["peak_rss_mib"] - first["peak_rss_mib"], 1),
        "frames_and_mattes_growth_mib": round(last["frames_and_mattes_mib"] - first["frames_and_mattes_mib"], 1),
    }


def flicker_figures(args: argparse.Namespace) -> dict:
    images, truth = moving_object_clip(args.frames, args.height, args.width, radius=min(args.height, args.width) / 4)
    band = edge_band(truth)
    mask = (truth[:1] > 0.5).float()
    matting = _matting(args)
    frames = images.movedim(-1, 1)

    def measures(alpha: torch.Tensor) -> dict:
        return {
            "flicker": round(flicker(alpha, band), 4),
            "temporal_error": round(temporal_error(alpha, truth, band), 4),
            "mean_error": round(mean_error(alpha, truth, band), 4),
        }

    noisy = (truth + args.noise * torch.randn(truth.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    rows = {"true alpha (the floor)": measures(truth)}
    rows["model, temporal_stability 0 (off)"] = measures(_matte(matting, images, mask, args, 0.0))
    for strength in args.strengths:
        rows[f"model, temporal_stability {strength}"] = measures(_matte(matting, images, mask, args, strength))
    rows[f"true alpha + noise {args.noise}, off"] = measures(noisy)
    for strength in args.strengths:
        rows[f"true alpha + noise {args.noise}, temporal_stability {strength}"] = measures(
            TemporalStabiliser(strength)(frames, noisy)
        )
    weights = "real" if args.sd and args.icm else "random (tiny SD2 architecture): model rows measure no quality"
    return {"clip": f"{args.frames} frames {args.width}x{args.height}, disc moving 3,1 px/frame", "weights": weights,
            "band_px": 6, "rows": rows}  # fmt: skip


def _stabiliser_of(revision: str) -> type:
    """The ``TemporalStabiliser`` class of a git revision (its video modules, imported from a temporary package)."""
    package = Path(tempfile.mkdtemp()) / "stabiliser_at_revision"
    package.mkdir()
    (package / "__init__.py").write_text("")
    root = Path(__file__).resolve().parents[1]
    for name in ("motion", "temporal", "cuts"):
        shown = subprocess.run(["git", "show", f"{revision}:icm_model/video/{name}.py"], cwd=root, capture_output=True)
        if shown.returncode == 0:  # (cuts.py is newer than some revisions)
            (package / f"{name}.py").write_bytes(shown.stdout)
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("stabiliser_at_revision.temporal").TemporalStabiliser


def stability(args: argparse.Namespace) -> dict:
    frames, after_cut = 10, slice(5, 7)
    versions = {"now": TemporalStabiliser}
    if args.before:
        versions[args.before] = _stabiliser_of(args.before)
    sums: dict[tuple, list[float]] = {}
    for seed in args.seeds:
        for case, clip in stability_clips(frames, seed=seed).items():
            band = edge_band(clip.alpha)
            for mattes, given in (("noisy", clip.noisy_alpha), ("exact", clip.alpha)):
                runs = [("off", given)] + [
                    (f"{version} {strength}", stabiliser(strength)(clip.frames, given))
                    for strength in args.strengths
                    for version, stabiliser in versions.items()
                ]
                for setting, alpha in runs:
                    figures = [mean_error(alpha, clip.alpha, band), flicker(alpha, band),
                               temporal_error(alpha, clip.alpha, band),
                               mean_error(alpha[after_cut], clip.alpha[after_cut], band[after_cut])]  # fmt: skip
                    total = sums.setdefault((case, mattes, setting), [0.0] * 4)
                    sums[case, mattes, setting] = [a + b for a, b in zip(total, figures, strict=True)]
    rows = []
    for (case, mattes, setting), total in sums.items():
        mean, edge_flicker, temporal, cut = (round(value / len(args.seeds), 4) for value in total)
        row = {"case": case, "mattes": mattes, "stabiliser": setting, "mean_error": mean, "edge_flicker": edge_flicker,
               "temporal_error": temporal}  # fmt: skip
        if case == "cut":
            row["two_frames_after_cut"] = cut
        rows.append(row)
    return {"clips": f"{frames} frames 144x96 (icm_model.video.synthetic.stability_clips), band 6 px, mean of seeds "
            f"{args.seeds}", "rows": rows}  # fmt: skip


def speed(args: argparse.Namespace) -> dict:
    """Seconds per frame of the stabiliser (this one and --before's) on ``--width`` x ``--height`` frames of noise
    moving 1 px per frame."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, args.height, args.width, generator=generator)
    frames = torch.stack([image.roll(t, dims=-1) for t in range(args.frames)]).to(args.device)  # 1 px per frame
    alpha = torch.rand(args.frames, args.height, args.width, generator=generator).to(args.device)
    versions = {"now": TemporalStabiliser} | ({args.before: _stabiliser_of(args.before)} if args.before else {})
    seconds = {}
    for version, stabiliser in versions.items():
        run = stabiliser(DEFAULT_STRENGTH)
        run(frames[:1], alpha[:1])
        start = time.perf_counter()
        run(frames[1:], alpha[1:])
        seconds[version] = round((time.perf_counter() - start) / (args.frames - 1), 3)
    return {"frame_size": f"{args.width}x{args.height}", "device": args.device, "threads": torch.get_num_threads(),
            "seconds_per_frame": seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["memory", "flicker", "stability", "speed", "memory-run"])
    parser.add_argument("--counts", type=int, nargs="+", default=[32, 256], help="memory: frame counts")
    parser.add_argument("--frames", type=int, default=16, help="flicker, speed: clip length")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--strengths", type=float, nargs="+", default=[DEFAULT_STRENGTH, 0.8])
    parser.add_argument("--noise", type=float, default=0.15, help="flicker: std of the noise on the true mattes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sd", type=Path, help="SD2.1 768-v checkpoint (real weights)")
    parser.add_argument("--icm", type=Path, help="IconMatting checkpoint (real weights)")
    parser.add_argument("--before", help="stability: also a git revision's stabiliser (e.g. f849b9f)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="stability: clips' noise draws")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    commands = {"memory": memory, "flicker": flicker_figures, "stability": stability, "speed": speed,
                "memory-run": memory_run}  # fmt: skip
    result = commands[args.what](args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)


if __name__ == "__main__":
    main()
