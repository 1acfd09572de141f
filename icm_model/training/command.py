"""``python -m icm_model train``: its options and the run they describe (fine-tuning or training from scratch)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path

import torch

from ..decoder.checkpoint import load_decoder
from ..decoder.config import DecoderConfig
from ..decoder.model import InContextDecoder
from ..evaluation.evaluate import discover_dataset, plan_evaluation
from ..validation import InputError
from .data import (
    DEFAULT_TRIMAP_RADIUS,
    MATTING,
    SEGMENTATION,
    DatasetSource,
    PairDataset,
    PipelineOptions,
    collect_items,
    single_image_groups,
)
from .distributed import barrier, start, stop
from .recipe import RECIPES, recipe_by_name
from .trainer import BATCHNORM_MODES, Trainer, TrainingSettings

TRAINING_PRECISIONS = ("fp32", "fp16", "bf16")


def add_train_parser(commands: argparse._SubParsersAction, device_help: str) -> None:
    """Registers the ``train`` subcommand."""
    parser = commands.add_parser(
        "train",
        help="train or fine-tune the IconMatting decoder on groups of images with alpha (torchrun for several GPUs)",
    )
    parser.add_argument("--sd", type=Path, required=True, help="Stable Diffusion 2.1 768-v: single file or folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, model, logs)")
    parser.add_argument(
        "--init", type=Path, help="IconMatting checkpoint to fine-tune (e.g. the released one); default: from scratch"
    )
    parser.add_argument(
        "--decoder-config", type=Path, help="JSON of the official decoder config, for another architecture"
    )
    parser.add_argument("--data", type=Path, action="append", default=[], help="matting dataset folder (repeat)")
    parser.add_argument(
        "--segmentation-data", type=Path, action="append", default=[], help="segmentation (0/1 mask) dataset folder"
    )
    parser.add_argument("--recipe", default="official", choices=sorted(RECIPES), help="official or corrected")
    parser.add_argument("--lr", type=float, help="base learning rate (default: the recipe's, 4e-4)")
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default: the recipe's, 250)")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps of the whole run")
    parser.add_argument("--batch-size", type=int, default=2, help="items per optimizer step over all processes")
    parser.add_argument("--micro-batch", type=int, help="items per forward; smaller: gradient accumulation")
    parser.add_argument(
        "--random-crop", type=float, help="random square crops of at least this share of the short side"
    )
    parser.add_argument(
        "--trimap-radius", type=int, default=DEFAULT_TRIMAP_RADIUS, help="unknown band of generated trimaps (px)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ensemble", type=int, default=4, help="noise ensemble size E")
    parser.add_argument("--timestep", type=int, default=200)
    parser.add_argument("--device", default="auto", help=device_help)
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=TRAINING_PRECISIONS,
        help="autocast of the training forward on CUDA (fp16 with scaling)",
    )
    parser.add_argument("--unet-precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--max-batch", type=int, default=8, help="most latents per U-Net call")
    parser.add_argument("--batchnorm", default="batch", choices=BATCHNORM_MODES, help="batch (official) or frozen")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across torchrun processes (CUDA)")
    parser.add_argument("--save-every", type=int, default=0, help="steps between checkpoints (0: at the end only)")
    parser.add_argument("--keep", type=int, default=2, help="training checkpoints kept")
    parser.add_argument("--val-data", type=Path, help="held-out dataset laid out like ICM-57, for validation")
    parser.add_argument("--validate-every", type=int, default=0, help="steps between validation passes")
    parser.add_argument("--val-references", type=int, default=1, help="references per validation group")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes")
    parser.add_argument("--resume", type=Path, help="a run's checkpoints/ folder or one step folder")


def initial_decoder(init: Path | None, config_path: Path | None, seed: int) -> InContextDecoder:
    """The decoder a run starts from: a checkpoint (fine-tuning) or freshly initialised (from scratch)."""
    config = DecoderConfig.from_official(json.loads(config_path.read_text())) if config_path else None
    if init is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return InContextDecoder(config)
    try:
        return load_decoder(init, config)
    except ValueError as error:
        raise InputError(
            f"--init {str(init)!r}: {error} To fine-tune, give the released IconMatting checkpoint or a model this "
            "command exported; for a checkpoint of another architecture add --decoder-config."
        ) from error


def run_training(args: argparse.Namespace, device: torch.device, unet_dtype: torch.dtype) -> str:
    """Runs ``train``; returns the summary line. A first SIGTERM or Ctrl-C stops after the current step (saved), a
    second one at once."""
    from ..backbone.diffusers_backbone import DiffusersBackbone

    recipe = recipe_by_name(args.recipe)
    overrides = {"learning_rate": args.lr, "warmup_steps": args.warmup_steps}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    decoder = initial_decoder(args.init, args.decoder_config, args.seed)
    sources = [DatasetSource(p, MATTING) for p in args.data] + [
        DatasetSource(p, SEGMENTATION) for p in args.segmentation_data
    ]
    items = collect_items(sources, recipe.self_pairing)
    lone = single_image_groups(items)
    if lone:
        print(
            f"warning: single-image groups are their own references (official T7): {', '.join(lone)}", file=sys.stderr
        )
    options = PipelineOptions(
        decoder.config.working_size, recipe.independent_interpolation, recipe.self_pairing, args.random_crop,
        args.trimap_radius,
    )  # fmt: skip
    validation = None
    if args.val_data is not None:
        validation = plan_evaluation(discover_dataset(args.val_data), args.val_references, args.seed)
    processes = start(device)
    try:
        backbone = DiffusersBackbone.from_pretrained(args.sd, processes.device, unet_dtype)
        settings = TrainingSettings(
            args.out, args.steps, args.batch_size, args.micro_batch, args.seed, args.ensemble, args.timestep,
            args.max_batch, args.precision, "sync" if args.sync_bn else args.batchnorm, args.save_every,
            args.validate_every, args.val_references, args.keep, args.workers,
        )  # fmt: skip
        trainer = Trainer(
            backbone, decoder, recipe, PairDataset(items, options, args.seed), settings, processes, validation
        )
        if args.resume is not None:
            trainer.resume(args.resume)
        requested = threading.Event()

        def request_stop(*_) -> None:
            if requested.is_set():  # a second signal: stop now (the last saved checkpoint stays loadable)
                raise KeyboardInterrupt
            print("\nstopping after this step (signal again to stop at once)", file=sys.stderr)
            requested.set()

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            report = trainer.run(requested)
            barrier(processes)  # before stop(): see there
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    finally:
        stop()
    what = "stopped at" if report.interrupted else "trained to"
    return (
        f"{what} step {report.step} of {args.steps} ({len(items)} images): model {report.model}, "
        f"checkpoint {report.checkpoint}; resume with --resume {args.out / 'checkpoints'}"
    )
