"""``python -m icm_model``: in-context matting of a folder of images, dataset evaluation, checkpoint conversion,
training."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from functools import reduce
from pathlib import Path

import torch

from .backbone.features import images_per_call
from .compositing import FOREGROUND_METHODS, UPSAMPLING_METHODS, estimate_foreground
from .decoder.checkpoint import convert_checkpoint, load_decoder
from .decoder.config import DecoderConfig
from .evaluation.evaluate import EvaluationSettings, discover_dataset, evaluate, plan_evaluation
from .evaluation.report import write_outputs
from .image_io import list_images, load_image, load_mask, save_alpha, save_rgba
from .pipeline import DEFAULT_ENSEMBLE, DEFAULT_MAX_BATCH, DEFAULT_TIMESTEP, InContextMatting, ReferenceContext
from .progress import TextProgress
from .training.command import add_train_parser, run_training

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE_HELP = "auto, cpu, cuda, cuda:1, ..."


def _device(name: str) -> torch.device:
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
    from .backbone.diffusers_backbone import DiffusersBackbone

    backbone = DiffusersBackbone.from_pretrained(sd, device, PRECISIONS[resolve_precision(precision, device)])
    return InContextMatting(backbone, load_decoder(checkpoint).to(device), max_batch)


def encode_references(
    matting: InContextMatting, images: Sequence[Path], masks: Sequence[Path], timestep: int, ensemble: int, seed: int
) -> ReferenceContext:
    """One context from every (reference image, mask) pair: the union of their RoIs."""
    if len(images) != len(masks):
        raise ValueError(f"give one --reference-mask per --reference ({len(images)} images, {len(masks)} masks)")
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


def _same_size_batches(paths: Sequence[Path], size: int) -> Iterator[tuple[list[Path], torch.Tensor]]:
    """Consecutive targets of the same size, up to ``size`` at a time, loaded as ``[B, 3, H, W]``."""
    batch: list[tuple[Path, torch.Tensor]] = []
    for path in paths:
        image = load_image(path, "target image")
        if batch and (len(batch) == size or batch[0][1].shape != image.shape):
            yield [p for p, _ in batch], torch.cat([i for _, i in batch])
            batch = []
        batch.append((path, image))
    if batch:
        yield [p for p, _ in batch], torch.cat([i for _, i in batch])


def matte_folder(
    matting: InContextMatting,
    context: ReferenceContext,
    targets: Sequence[Path],
    out: Path,
    ensemble: int,
    seed: int,
    upsampling: str = "guided",
    foreground: str | None = None,
) -> list[Path]:
    """Writes ``out/<target name>.png`` (alpha, white = foreground, at the target's own size) for every target, and
    with a ``foreground`` method (see :data:`FOREGROUND_METHODS`) also ``out/<target name>_rgba.png``, the cut-out
    with straight alpha."""
    out.mkdir(parents=True, exist_ok=True)
    progress = TextProgress(len(targets), "matting")
    written = []
    for paths, images in _same_size_batches(targets, images_per_call(matting.max_batch, ensemble)):
        share = len(paths) / matting.matte_steps(len(paths), ensemble)  # of a target, per U-Net block

        def advance(steps: int, share: float = share) -> None:
            progress.update(steps * share)

        alphas = matting.matte(context, images, ensemble=ensemble, seed=seed, on_step=advance, upsampling=upsampling)
        if foreground is not None:
            device = next(matting.decoder.parameters()).device
            colours = estimate_foreground(images.to(device), alphas.to(device), foreground).cpu()
        for index, (path, alpha) in enumerate(zip(paths, alphas, strict=True)):
            written.append(out / f"{path.stem}.png")
            save_alpha(written[-1], alpha)
            if foreground is not None:
                save_rgba(out / f"{path.stem}_rgba.png", colours[index], alpha)
    return written


def evaluate_dataset(args: argparse.Namespace) -> str:
    """The ``evaluate`` subcommand: tables, report and contact sheet in ``args.out``; returns a summary line."""
    settings = EvaluationSettings(args.references, args.seed, args.timestep, args.ensemble)
    if args.worst < 0:
        raise ValueError(f"--worst must be 0 (no contact sheet) or more, got {args.worst}")
    plan = plan_evaluation(discover_dataset(args.dataset), settings.references, settings.seed)
    if plan.skipped:
        print(f"warning: skipping single-image groups (no reference): {', '.join(plan.skipped)}", file=sys.stderr)
    device = _device(args.device)
    matting = load_matting(args.sd, args.icm, device, args.precision, args.max_batch)
    progress = TextProgress(plan.target_count, "evaluating")
    alpha_dir = args.out / "alpha" if args.save_alpha else None
    results = evaluate(matting, plan, settings, on_target=progress.update, alpha_dir=alpha_dir)
    details = {
        "dataset": str(args.dataset),
        "SD2.1": str(args.sd),
        "checkpoint": str(args.icm),
        "device": str(device),
        "precision": resolve_precision(args.precision, device),
    }
    write_outputs(args.out, plan, results, settings, details, args.worst)
    mean_sad = sum(r.metrics.sad for r in results) / len(results)
    return f"{len(results)} targets in {len(plan.groups)} groups, mean SAD {mean_sad:.4g}: see {args.out / 'report.md'}"


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every subcommand that runs the model."""
    parser.add_argument(
        "--sd",
        type=Path,
        required=True,
        help="Stable Diffusion 2.1 768-v: its single-file checkpoint or a diffusers folder",
    )
    parser.add_argument("--icm", type=Path, required=True, help="IconMatting checkpoint (.ckpt or .safetensors)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
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
    matte.add_argument("--targets", type=Path, required=True, help="target image or folder of images")
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
            device = _device(args.device)
            print(run_training(args, device, PRECISIONS[resolve_precision(args.unet_precision, device)]))
            return 0
        targets = list_images(args.targets)
        matting = load_matting(args.sd, args.icm, _device(args.device), args.precision, args.max_batch)
        context = encode_references(
            matting, args.reference, args.reference_mask, args.timestep, args.ensemble, args.seed
        )
        written = matte_folder(
            matting, context, targets, args.out, args.ensemble, args.seed, args.upsampling, args.foreground
        )
        cutouts = " and RGBA cut-outs" if args.foreground else ""
        print(f"{len(written)} alpha mattes{cutouts} written to {args.out}")
        return 0
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
