"""Matting a planned batch of targets and summing up a job: shared by the single-process and the Ray engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..compositing import estimate_foreground
from ..image_io import alpha_png, load_image, rgba_png
from ..pipeline import InContextMatting, ReferenceContext
from .plan import ALPHA_SUFFIX, RGBA_SUFFIX, Failure, Target
from .storage import Storage


@dataclass(frozen=True)
class MatteSettings:
    """What every target of a job is matted with (the same for every worker).

    Attributes:
        ensemble: noise ensemble size E; seed: the seed of the shared target ensemble (one draw for every target).
        upsampling: ``guided`` or ``bilinear`` (see :mod:`icm_model.compositing.upsample`).
        foreground: a foreground method for RGBA cut-outs, or None for alpha only.
    """

    ensemble: int
    seed: int
    upsampling: str = "guided"
    foreground: str | None = None


@dataclass
class BatchResult:
    """What one batch produced: the targets written and those that failed."""

    written: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _load(batch: list[Target]) -> tuple[list[Target], list[torch.Tensor], list[Failure]]:
    """The batch's images ``[1, 3, H, W]``; targets that cannot be read (or are not the planned size) fail alone."""
    loaded, images, failures = [], [], []
    for target in batch:
        try:
            with Storage.for_location(target.location).open_read(target.location) as stream:
                image = load_image(stream, "target image", target.location)
        except (ValueError, OSError) as error:
            failures.append(Failure(target.location, str(error)))
            continue
        if tuple(image.shape[-2:]) != target.size:
            failures.append(Failure(target.location, f"target image {target.location!r} changed while the job ran"))
            continue
        loaded.append(target)
        images.append(image)
    return loaded, images, failures


def matte_batch(
    matting: InContextMatting,
    context: ReferenceContext,
    batch: list[Target],
    storage: Storage,
    out: str,
    settings: MatteSettings,
    on_progress: Callable[[float], None] | None = None,
) -> BatchResult:
    """Mattes one planned batch (targets of one size) in one call and writes each target's alpha PNG (and RGBA
    cut-out) atomically to ``out`` on ``storage`` (the targets are read wherever they are).

    ``on_progress(n)`` advances by ``n`` targets (fractions within the U-Net pass; a failed target counts 1); it may
    raise to cancel.
    """
    targets, images, failures = _load(batch)
    result = BatchResult(failures=failures)
    progress = on_progress or (lambda _: None)
    progress(len(failures))
    if not targets:
        return result
    share = len(targets) / matting.matte_steps(len(targets), settings.ensemble)
    stacked = torch.cat(images)
    alphas = matting.matte(
        context,
        stacked,
        ensemble=settings.ensemble,
        seed=settings.seed,
        on_step=lambda steps: progress(steps * share),
        upsampling=settings.upsampling,
    )
    if settings.foreground is not None:
        device = next(matting.decoder.parameters()).device
        colours = estimate_foreground(stacked.to(device), alphas.to(device), settings.foreground).cpu()
    for index, (target, alpha) in enumerate(zip(targets, alphas, strict=True)):
        if settings.foreground is not None:  # the cut-out first: a target is done once its alpha exists
            storage.write_atomic(storage.join(out, target.name + RGBA_SUFFIX), rgba_png(colours[index], alpha))
        storage.write_atomic(storage.join(out, target.name + ALPHA_SUFFIX), alpha_png(alpha))
        result.written.append(target.location)
    return result


@dataclass
class JobSummary:
    """A job's totals, printed at its end.

    Attributes:
        total: targets found; skipped: already done by an earlier run; written: matted now; failures: by name.
        seconds: wall-clock time of the job; workers: per worker, ``(targets matted, seconds busy)``.
    """

    total: int
    skipped: int = 0
    written: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    workers: dict[str, tuple[int, float]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter, repr=False)

    def add(self, result: BatchResult, worker: str, seconds: float) -> None:
        self.written += len(result.written)
        self.failures.extend(result.failures)
        count, busy = self.workers.get(worker, (0, 0.0))
        self.workers[worker] = (count + len(result.written), busy + seconds)

    def finish(self) -> JobSummary:
        self.seconds = time.perf_counter() - self.started
        return self

    def lines(self) -> list[str]:
        """The summary as text: totals, per-worker throughput, then every failure with its reason."""
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.written} targets matted, {self.skipped} already done, {len(self.failures)} failed, of "
            f"{self.total} in {self.seconds:.1f} s ({rate:.2f} targets/s)"
        ]
        for worker, (count, busy) in sorted(self.workers.items()):
            lines.append(f"  worker {worker}: {count} targets, {count / busy if busy > 0 else 0.0:.2f} targets/s")
        lines.extend(f"failed: {failure.location}: {failure.reason}" for failure in self.failures)
        return lines
