"""One capture pass run as several smaller U-Net calls: to fit the device's free memory, and again smaller after an
out-of-memory error instead of failing.

Every sample of a capture pass is independent of the others in its batch (the U-Net has no batch-wide layer, and
:meth:`UNetCapture.attend` works one sample at a time), so the parts' captures, concatenated along the batch, are the
capture of the whole pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .capture import UNetCapture

OOM_ERRORS = (torch.cuda.OutOfMemoryError,)
"""What an out-of-memory error of the accelerator raises (``torch.OutOfMemoryError`` is the same class)."""


class _SharedProgress:
    """Turns the block ticks of the part passes into exactly one tick per block of the whole pass.

    A part of ``size`` latents ticking one block does ``size`` of the ``latents * blocks`` units of work; the whole
    pass ticks once per ``latents`` units done. Work lost to an out-of-memory error is taken back (its ticks are
    not repeated).
    """

    def __init__(self, on_block: Callable[[], None] | None, latents: int) -> None:
        self.on_block, self.latents = on_block, latents
        self.units = self.ticked = 0

    def part(self, size: int) -> Callable[[], None]:
        def tick() -> None:
            self.units += size
            while self.ticked < self.units // self.latents:
                self.ticked += 1
                if self.on_block is not None:
                    self.on_block()

        return tick


def run_split(
    run: Callable[[torch.Tensor, UNetCapture], torch.Tensor | None],
    noisy_latents: torch.Tensor,
    capture: UNetCapture,
    latents_per_call: int,
    on_oom: Callable[[], None] | None = None,
) -> tuple[torch.Tensor | None, int]:
    """Runs ``run(latents, capture)`` (one U-Net call) over ``noisy_latents`` ``[N, 4, h, w]`` in parts of at most
    ``latents_per_call`` latents, filling ``capture`` as one call over all ``N`` would.

    On an out-of-memory error a part is run again in halves (after ``on_oom``, e.g. emptying the allocator's cache);
    a single latent that does not fit raises the error.

    Returns:
        The U-Net output over all latents (None when the passes stopped early) and the part size reached (smaller
        than ``latents_per_call`` after an out-of-memory error).
    """
    total = noisy_latents.shape[0]
    progress = _SharedProgress(capture.on_block, total)
    parts: list[tuple[UNetCapture, torch.Tensor | None]] = []
    cap = max(1, min(latents_per_call, total))
    start = 0
    while start < total:
        size = min(cap, total - start)
        part = UNetCapture(
            capture.with_attention, capture.stop_early, capture.reference_attention, on_block=progress.part(size)
        )
        units = progress.units
        try:
            output = run(noisy_latents[start : start + size], part)
        except OOM_ERRORS:
            if size == 1:
                raise
            output = part = None
        if part is None:  # out of memory; outside the except block, so the failed call's tensors can be freed
            progress.units = units
            if on_oom is not None:
                on_oom()
            cap = size // 2
            continue
        parts.append((part, output))
        start += size
    _merge(capture, [part for part, _ in parts])
    outputs = [output for _, output in parts]
    return (None if any(o is None for o in outputs) else torch.cat(outputs)), cap


def _merge(capture: UNetCapture, parts: list[UNetCapture]) -> None:
    """Fills ``capture`` with the parts' captures concatenated along the batch."""
    if len(parts) == 1:
        capture.up_features, capture.attention_sums = parts[0].up_features, parts[0].attention_sums
    else:
        capture.up_features = {i: torch.cat([p.up_features[i] for p in parts]) for i in parts[0].up_features}
        capture.attention_sums = {g: torch.cat([p.attention_sums[g] for p in parts]) for g in parts[0].attention_sums}
    capture.attention_layers = parts[0].attention_layers
