"""``python -m icm_model``: in-context matting of a folder of images, dataset evaluation, checkpoint conversion,
training."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .compositing import FOREGROUND_METHODS, UPSAMPLING_METHODS
from .decoder.checkpoint import convert_checkpoint
from .decoder.config import DecoderConfig
from .engines.job import JobSummary, MatteSettings
from .engines.loading import PRECISIONS, encode_references, load_matting, resolve_device, resolve_precision
from .engines.local import run_local
from .engines.storage import Storage
from .evaluation.evaluate import EvaluationSettings, discover_dataset, evaluate, plan_evaluation
from .evaluation.report import write_outputs
from .pipeline import DEFAULT_ENSEMBLE, DEFAULT_MAX_BATCH, DEFAULT_TIMESTEP
from .progress import TextProgress
from .training.command import add_train_parser, run_training
from .validation import InputError

DEVICE_HELP = "auto, cpu, cuda, cuda:1, ..."


def matte_targets(args: argparse.Namespace) -> JobSummary:
    """The ``matte`` subcommand on the chosen engine: targets already done are skipped, unreadable ones reported."""
    settings = MatteSettings(args.ensemble, args.seed, args.upsampling, args.foreground)
    out = args.out
    locations = Storage.for_location(str(args.targets)).list_images(str(args.targets))
    if args.engine == "ray":
        from .engines.ray_engine import ModelSpec, RayOptions, run_ray

        spec = ModelSpec(str(args.sd), str(args.icm), args.device, args.precision, args.max_batch)
        options = RayOptions(args.address, args.workers, args.gpus_per_worker)
        references = [str(p) for p in args.reference]
        masks = [str(p) for p in args.reference_mask]
        return run_ray(spec, references, masks, args.timestep, locations, out, settings, options)
    matting = load_matting(args.sd, args.icm, resolve_device(args.device), args.precision, args.max_batch)
    context = encode_references(matting, args.reference, args.reference_mask, args.timestep, args.ensemble, args.seed)
    return run_local(matting, context, locations, out, settings)


def evaluate_dataset(args: argparse.Namespace) -> str:
    """The ``evaluate`` subcommand: tables, report and contact sheet in ``args.out``; returns a summary line."""
    settings = EvaluationSettings(args.references, args.seed, args.timestep, args.ensemble)
    if args.worst < 0:
        raise InputError(f"--worst must be 0 (no contact sheet) or more, got {args.worst}")
    plan = plan_evaluation(discover_dataset(args.dataset), settings.references, settings.seed)
    if plan.skipped:
        print(f"warning: skipping single-image groups (no reference): {', '.join(plan.skipped)}", file=sys.stderr)
    device = resolve_device(args.device)
    matting = load_matting(args.sd, args.icm, device, args.precision, args.max_batch)
    progress = TextProgress(plan.target_count, "evaluating")
    out = Path(args.out)
    alpha_dir = out / "alpha" if args.save_alpha else None
    results = evaluate(matting, plan, settings, on_target=progress.update, alpha_dir=alpha_dir)
    details = {
        "dataset": str(args.dataset),
        "SD2.1": str(args.sd),
        "checkpoint": str(args.icm),
        "device": str(device),
        "precision": resolve_precision(args.precision, device),
    }
    write_outputs(out, plan, results, settings, details, args.worst)
    mean_sad = sum(r.metrics.sad for r in results) / len(results)
    return f"{len(results)} targets in {len(plan.groups)} groups, mean SAD {mean_sad:.4g}: see {out / 'report.md'}"


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every subcommand that runs the model."""
    parser.add_argument(
        "--sd",
        type=Path,
        required=True,
        help="Stable Diffusion 2.1 768-v: its single-file checkpoint or a diffusers folder",
    )
    parser.add_argument("--icm", type=Path, required=True, help="IconMatting checkpoint (.ckpt or .safetensors)")
    parser.add_argument("--out", required=True, help="output folder (matte --engine ray: also s3://... and the like)")
    parser.add_argument("--timestep", type=int, default=DEFAULT_TIMESTEP)
    parser.add_argument("--ensemble", type=int, default=DEFAULT_ENSEMBLE, help="noise ensemble size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS], help="U-Net precision")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most latents per U-Net call")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m icm_model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    matte = commands.add_parser("matte", help="matte every target image like the marked reference object")
    _add_model_arguments(matte)
    matte.add_argument(
        "--reference", type=Path, action="append", required=True, help="reference image (repeat for several references)"
    )
    matte.add_argument(
        "--reference-mask",
        type=Path,
        action="append",
        required=True,
        help="mask of the object on the reference (white = object), one per --reference",
    )
    matte.add_argument(
        "--targets",
        required=True,
        help="target image or folder of images (with --engine ray also any location pyarrow reads, e.g. s3://...)",
    )
    matte.add_argument(
        "--upsampling",
        default="guided",
        choices=UPSAMPLING_METHODS,
        help="alpha from the 768 canvas to larger targets: guided by the full-resolution image (sharp edges) or "
        "bilinear",
    )
    matte.add_argument(
        "--foreground",
        nargs="?",
        const="multilevel",
        choices=FOREGROUND_METHODS,
        help="also write OUT/<name>_rgba.png, the cut-out with straight alpha; its colour in soft edges by "
        "METHOD (default multilevel: estimated without the old background)",
    )
    matte.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help='local: this process, one device; ray: an actor pool on a Ray cluster (pip install -e ".[distributed]")',
    )
    matte.add_argument("--address", help="Ray cluster: auto (the running one), ray://host:10001; default: a local one")
    matte.add_argument("--workers", type=int, help="Ray actors (default: one per GPU of the cluster, else 1)")
    matte.add_argument(
        "--gpus-per-worker", type=float, help="GPUs per Ray actor (default: 1 where the cluster has GPUs, else 0)"
    )
    evaluation = commands.add_parser(
        "evaluate", help="measure SAD, MSE, Grad and Conn on a dataset laid out like ICM-57 (image/, alpha/, trimap/)"
    )
    _add_model_arguments(evaluation)
    evaluation.add_argument("--dataset", type=Path, required=True, help="folder with image/, alpha/, optional trimap/")
    evaluation.add_argument("--references", type=int, default=1, help="references per group, 1 to 4 (seeded choice)")
    evaluation.add_argument("--worst", type=int, default=8, help="images of highest SAD on worst.png (0: none)")
    evaluation.add_argument("--save-alpha", action="store_true", help="also save the predicted alphas in OUT/alpha/")
    add_train_parser(commands, DEVICE_HELP)
    convert = commands.add_parser("convert", help="convert an IconMatting checkpoint to .safetensors")
    convert.add_argument("source", type=Path)
    convert.add_argument("destination", type=Path)
    convert.add_argument(
        "--config",
        type=Path,
        help="JSON of the official decoder config, for a model that is not "
        "the released architecture (keys in_context_fusion and detail_decoder)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "convert":
            config = DecoderConfig.from_official(json.loads(args.config.read_text())) if args.config else None
            print(convert_checkpoint(args.source, args.destination, config))
            return 0
        if args.command == "evaluate":
            print(evaluate_dataset(args))
            return 0
        if args.command == "train":
            device = resolve_device(args.device)
            print(run_training(args, device, PRECISIONS[resolve_precision(args.unet_precision, device)]))
            return 0
        summary = matte_targets(args)
        print("\n".join(summary.lines()))
        cutouts = " and RGBA cut-outs" if args.foreground else ""
        print(f"{summary.written} alpha mattes{cutouts} written to {args.out}")
        return 1 if summary.failures else 0
    except (InputError, ImportError) as error:  # the user's input or environment; anything else is a bug: traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
