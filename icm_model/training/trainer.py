"""The training loop: batches from the pair dataset, gradient accumulation, several processes, mixed precision,
periodic checkpoints, validation with the project's evaluator, logs, and a clean stop.

Batches: optimizer step ``s`` trains on items ``s * B ... (s + 1) * B - 1`` of the run's endless item sequence
(:func:`~icm_model.training.data.step_keys`); process ``r`` of ``W`` takes the ``r``-th contiguous share of ``B / W``
items and splits it into micro-batches of ``micro_batch`` items whose gradients accumulate. The noise of each item
comes from a generator seeded by (seed, its position in the sequence), so a step sees the same items with the same
noise whatever ``W`` and ``micro_batch`` are, and a resumed run repeats an uninterrupted one.

Loss scale: DDP averages gradients over the processes, while the official loss sums its terms over the batch (T4).
Each micro-batch's loss is multiplied by ``W`` for a ``sum`` recipe and by ``micro_batch * W / B`` for a ``mean``
recipe, so that the gradient the optimizer sees is that of the whole batch's loss, whatever ``W`` and the
accumulation. BatchNorm (``batchnorm="batch"``, official) normalises each micro-batch with its own statistics, so
only that part of the computation depends on how the batch is split; ``"sync"`` uses SyncBatchNorm across processes
(CUDA only), ``"frozen"`` keeps BatchNorm in eval mode (running statistics used and not updated; its weight and bias
still train) -- the choice for fine-tuning on batches of 1 or 2.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..backbone.features import VAE_DOWNSCALE, Backbone, PerImageNoise
from ..decoder.model import InContextDecoder
from ..evaluation.evaluate import METRIC_NAMES, EvaluationPlan, EvaluationSettings, evaluate
from ..pipeline import InContextMatting
from ..progress import TextProgress
from ..validation import InputError
from .checkpoint_io import TrainingState, export_model, load_training_checkpoint, save_training_checkpoint
from .data import PairDataset, step_keys
from .distributed import Processes, ddp_wrapper, sum_over_processes
from .log import CsvLog, draw_curve
from .losses import MATTING_TERMS
from .recipe import TrainingRecipe
from .step import HeadTrainer, StepNoise, TrainingBatch, convert_sync_batchnorm

BATCHNORM_MODES = ("batch", "sync", "frozen")
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}
RESUME_KEYS = ("recipe", "batch_size", "seed", "ensemble", "timestep", "steps", "size")
"""Settings a resumed run must share with the run that wrote the checkpoint."""


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how a run trains, and where it writes.

    Attributes:
        out: run folder: ``checkpoints/``, ``model.safetensors``, ``loss.csv``, ``loss.png``, ``validation.csv``.
        steps: optimizer steps of the whole run.
        batch_size: items per optimizer step, over all processes.
        micro_batch: items per forward (gradient accumulation when smaller than the per-process share); None = the
            whole per-process share.
        precision: ``fp32``, or ``fp16`` / ``bf16`` autocast of the decoder on CUDA (fp16 with a gradient scaler).
        batchnorm: ``batch`` (official), ``sync`` or ``frozen`` (see the module docstring).
        save_every: steps between checkpoints and exported models (0: only at the end).
        validate_every: steps between validation passes (0: never).
        keep: training checkpoints kept.
        workers: DataLoader worker processes (0: load in the main process).
    """

    out: Path
    steps: int
    batch_size: int = 2
    micro_batch: int | None = None
    seed: int = 42
    ensemble: int = 4
    timestep: int = 200
    max_batch: int = 8
    precision: str = "fp32"
    batchnorm: str = "batch"
    save_every: int = 0
    validate_every: int = 0
    validation_references: int = 1
    keep: int = 2
    workers: int = 0

    def check(self, processes: Processes) -> int:
        """The micro-batch size; raises ValueError for settings that do not fit together."""
        if self.steps < 1 or self.batch_size < 1:
            raise InputError(f"--steps and --batch-size must be at least 1, got {self.steps} and {self.batch_size}")
        if self.batchnorm not in BATCHNORM_MODES:
            raise InputError(f"batchnorm must be one of {', '.join(BATCHNORM_MODES)}, got {self.batchnorm!r}")
        share, rest = divmod(self.batch_size, processes.world_size)
        micro = self.micro_batch or share
        if rest or share == 0 or share % micro:
            raise InputError(
                f"--batch-size {self.batch_size} must split evenly over {processes.world_size} process(es) and then "
                f"into micro-batches of {micro}: choose a batch size that is a multiple of both"
            )
        if self.precision != "fp32" and processes.device.type != "cuda":
            raise InputError(f"--precision {self.precision} needs a CUDA device; use fp32 on {processes.device}")
        if self.batchnorm == "sync" and processes.device.type != "cuda" and processes.world_size > 1:
            raise InputError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU implementation)")
        return micro

    def identity(self, recipe: TrainingRecipe, size: int) -> dict[str, object]:
        return {
            "recipe": recipe.name,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "ensemble": self.ensemble,
            "timestep": self.timestep,
            "steps": self.steps,
            "size": size,
        }


@dataclass
class TrainingReport:
    """What a run did: the step it reached, whether it was stopped early, and the files it wrote."""

    step: int
    interrupted: bool
    model: Path | None
    checkpoint: Path | None


def item_noise(positions: list[int], latent_size: int, ensemble: int, seed: int) -> StepNoise:
    """Reference and target noise of the items at these sequence positions, each from its own seeded generator."""
    parts = []
    for position in positions:
        generator = torch.Generator().manual_seed(random.Random(f"{seed}/noise/{position}").getrandbits(63))
        parts.append(StepNoise.draw(1, latent_size, ensemble, generator))

    def joined(side: str) -> PerImageNoise:
        noises = [getattr(part, side) for part in parts]
        return PerImageNoise(
            torch.cat([n.posterior for n in noises]), torch.cat([n.diffusion for n in noises]), ensemble
        )

    return StepNoise(joined("reference"), joined("target"))


def to_batch(items: dict[str, torch.Tensor], device: torch.device) -> TrainingBatch:
    """The collated dataset dicts (:class:`~icm_model.training.data.PairDataset`) as a :class:`TrainingBatch`."""
    return TrainingBatch(
        items["reference_image"], items["guidance_on_reference_image"], items["source_image"], items["alpha"],
        items["trimap"], items["segmentation"],
    ).to(device)  # fmt: skip


def set_batchnorm(decoder: nn.Module, mode: str) -> None:
    """Train mode for the decoder, with every BatchNorm in eval mode when ``mode`` is ``frozen``."""
    decoder.train()
    if mode == "frozen":
        for module in decoder.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


class Trainer:
    """A training run of the decoder against a frozen backbone (see the module docstring).

    Args:
        backbone: the frozen SD2.1 U-Net and VAE, on ``processes.device``.
        decoder: the decoder to train in place (fine-tuned from a checkpoint or freshly initialised).
        recipe: the training recipe.
        dataset: reference/target pairs.
        settings: run length, batch, precision, logging.
        processes: this process among the training processes.
        validation: held-out groups measured every ``settings.validate_every`` steps (main process only).
    """

    def __init__(
        self,
        backbone: Backbone,
        decoder: InContextDecoder,
        recipe: TrainingRecipe,
        dataset: PairDataset,
        settings: TrainingSettings,
        processes: Processes | None = None,
        validation: EvaluationPlan | None = None,
    ) -> None:
        processes = processes or Processes()
        self.micro = settings.check(processes)
        self.backbone, self.recipe, self.dataset = backbone, recipe, dataset
        self.settings, self.processes, self.validation = settings, processes, validation
        decoder.to(processes.device)
        if settings.batchnorm == "sync":
            decoder = convert_sync_batchnorm(decoder)
        self.decoder = decoder
        self.head = HeadTrainer(
            backbone, decoder, recipe, ensemble=settings.ensemble, timestep=settings.timestep,
            total_steps=settings.steps, max_batch=settings.max_batch, wrap=ddp_wrapper(processes),
        )  # fmt: skip
        set_batchnorm(decoder, settings.batchnorm)
        self.scaler = torch.amp.GradScaler("cuda") if settings.precision == "fp16" else None
        self.step = 0
        self.size = dataset.options.size

    # --- state ---------------------------------------------------------------------------------------------------

    @property
    def checkpoints(self) -> Path:
        return self.settings.out / "checkpoints"

    def resume(self, location: Path) -> None:
        """Restores decoder, optimizer, scheduler, scaler, step and RNG states from a training checkpoint.

        Raises:
            ValueError: the checkpoint is unreadable or was written with other settings (naming them).
        """
        state = load_training_checkpoint(location, self.decoder)
        current = self.settings.identity(self.recipe, self.size)
        different = [
            f"{key} {state.settings.get(key)!r} -> {current[key]!r}"
            for key in RESUME_KEYS
            if state.settings.get(key) != current[key]
        ]
        if different:
            raise InputError(
                f"the checkpoint in {str(location)!r} was written with other settings ({'; '.join(different)}): "
                "resume with the run's own settings, or start a new run with --init from its exported model"
            )
        self.head.optimizer.load_state_dict(state.optimizer)
        self.head.scheduler.load_state_dict(state.scheduler)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.step = state.step

    def save(self) -> Path | None:
        """A training checkpoint and the exported model of the current step (main process only)."""
        if not self.processes.main:
            return None
        state = TrainingState(
            self.step,
            self.head.optimizer.state_dict(),
            self.head.scheduler.state_dict(),
            None if self.scaler is None else self.scaler.state_dict(),
            self.settings.identity(self.recipe, self.size),
        )
        folder = save_training_checkpoint(self.checkpoints, self.decoder, state, self.settings.keep)
        export_model(self.decoder, self.settings.out / "model.safetensors")
        return folder

    # --- batches -------------------------------------------------------------------------------------------------

    def _share(self, step: int) -> list[tuple[int, tuple[int, int]]]:
        """(sequence position, dataset key) of this process's items of optimizer step ``step``."""
        batch, world, rank = self.settings.batch_size, self.processes.world_size, self.processes.rank
        keys = step_keys(step, batch, len(self.dataset), self.recipe.shuffle, self.settings.seed)
        share = batch // world
        first = rank * share
        return [(step * batch + first + j, keys[first + j]) for j in range(share)]

    def _micro_batches(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.step, self.settings.steps):
            share = self._share(step)
            for start in range(0, len(share), self.micro):
                yield [key for _, key in share[start : start + self.micro]]

    # --- the loop ------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, on_step: Callable[[int], None] | None = None) -> TrainingReport:
        """Trains from the current step to ``settings.steps``; stops after the current step once ``stop`` is set
        (the state is saved first). ``on_step(step)`` is called after each optimizer step."""
        out, settings = self.settings.out, self.settings
        out.mkdir(parents=True, exist_ok=True)
        terms = list(dict.fromkeys((*MATTING_TERMS, self.recipe.segmentation_key)))
        main = self.processes.main
        columns = ["step", "lr", "loss", "grad_norm", *terms, "seconds"]
        loss_log = CsvLog(out / "loss.csv", columns, self.step) if main else None
        validation_log = (
            CsvLog(out / "validation.csv", ["step", *METRIC_NAMES], self.step)
            if main and self.validation is not None and settings.validate_every
            else None
        )
        loader = DataLoader(self.dataset, batch_sampler=self._micro_batches(), num_workers=settings.workers)
        batches = iter(loader)
        progress = TextProgress(settings.steps - self.step, "training") if main else None
        interrupted, checkpoint = False, None
        while self.step < settings.steps:
            started = time.perf_counter()
            row = self._optimizer_step(batches, terms)
            self.step += 1
            if loss_log is not None:
                loss_log.append({**row, "step": self.step, "seconds": time.perf_counter() - started})
            if progress is not None:
                progress.update(1)
            if on_step is not None:
                on_step(self.step)
            if validation_log is not None and self.step % settings.validate_every == 0:
                validation_log.append({"step": self.step, **self.validate()})
            requested = sum_over_processes([float(stop is not None and stop.is_set())], self.processes)[0] > 0
            periodic = settings.save_every and self.step % settings.save_every == 0
            if requested or periodic or self.step == settings.steps:
                checkpoint = self.save() or checkpoint
                if loss_log is not None:
                    draw_curve(out / "loss.png", *loss_log.column("loss"), f"training loss ({self.recipe.name})")
            if requested:
                interrupted = True
                break
        model = out / "model.safetensors" if main else None
        return TrainingReport(self.step, interrupted, model, checkpoint)

    def _optimizer_step(self, batches: Iterator[dict[str, torch.Tensor]], terms: list[str]) -> dict[str, float]:
        """Forward and backward of this process's micro-batches, then the optimizer step; the logged values are
        those of the whole batch (summed over the processes)."""
        settings, world = self.settings, self.processes.world_size
        share = self._share(self.step)
        scale = float(world) if self.recipe.batch_reduction == "sum" else self.micro * world / settings.batch_size
        logged = [0.0] * (1 + len(terms))
        device = self.processes.device
        latent = self.size // VAE_DOWNSCALE
        starts = list(range(0, len(share), self.micro))
        for index, start in enumerate(starts):
            batch = to_batch(next(batches), device)
            positions = [position for position, _ in share[start : start + self.micro]]
            noise = item_noise(positions, latent, settings.ensemble, settings.seed)
            last = index == len(starts) - 1
            sync = nullcontext() if last or world == 1 else self.head.forward.no_sync()
            autocast = (
                torch.autocast("cuda", dtype=AUTOCAST[settings.precision])
                if settings.precision in AUTOCAST
                else nullcontext()
            )
            with sync:
                with autocast:
                    try:
                        _, losses = self.head.loss(batch, noise)
                    except InputError as error:
                        pairs = "; ".join(self.dataset.describe(key) for _, key in share[start : start + self.micro])
                        raise InputError(f"step {self.step + 1} ({pairs}): {error}") from error
                loss = losses.total * scale
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            values = [float(losses.total.detach()), *(float(losses.terms[key].detach()) for key in terms)]
            logged = [total + value * scale / world for total, value in zip(logged, values, strict=True)]
        if self.scaler is not None:
            self.scaler.unscale_(self.head.optimizer)
        grad_norm = math.sqrt(
            sum(float(p.grad.double().pow(2).sum()) for p in self.decoder.parameters() if p.grad is not None)
        )
        lr = self.head.lr
        if self.scaler is not None:
            self.scaler.step(self.head.optimizer)
            self.scaler.update()
            self.head.scheduler.step()
            self.head.optimizer.zero_grad(set_to_none=True)
        else:
            self.head.apply()
        logged = sum_over_processes(logged, self.processes)
        return {"lr": lr, "loss": logged[0], "grad_norm": grad_norm, **dict(zip(terms, logged[1:], strict=True))}

    def validate(self) -> dict[str, float]:
        """Mean SAD, MSE, Grad and Conn over the validation plan's targets (decoder in eval mode meanwhile)."""
        assert self.validation is not None
        self.decoder.eval()
        try:
            settings = EvaluationSettings(
                self.settings.validation_references, self.settings.seed, self.settings.timestep, self.settings.ensemble
            )
            matting = InContextMatting(self.backbone, self.decoder, self.settings.max_batch)
            results = evaluate(matting, self.validation, settings)
        finally:
            set_batchnorm(self.decoder, self.settings.batchnorm)
        return {name: sum(getattr(r.metrics, name) for r in results) / len(results) for name in METRIC_NAMES}
