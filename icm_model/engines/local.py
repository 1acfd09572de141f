"""The single-process engine: every planned batch in turn, on one device."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..backbone.features import images_per_call
from ..pipeline import InContextMatting, ReferenceContext
from ..progress import TextProgress
from .job import JobSummary, MatteSettings, matte_batch
from .plan import plan_batches, plan_targets
from .storage import Storage


def run_local(
    matting: InContextMatting,
    context: ReferenceContext,
    locations: list[str],
    out: str,
    settings: MatteSettings,
    stream: TextIO | None = None,
) -> JobSummary:
    """Mattes every target not already done into ``out``; unreadable targets are reported, not fatal.

    The progress bar on ``stream`` (default stderr) moves within each U-Net pass and counts targets.
    """
    storage = Storage.for_location(out)
    storage.make_folder(out)
    targets, done, failures = plan_targets(storage, locations, out, settings.foreground is not None)
    summary = JobSummary(len(locations), skipped=done, failures=failures)
    progress = TextProgress(len(targets), "matting", stream or sys.stderr, per_second=True)
    for batch in plan_batches(targets, images_per_call(matting.max_batch, settings.ensemble)):
        start = time.perf_counter()
        result = matte_batch(matting, context, batch, storage, out, settings, progress.update)
        summary.add(result, "local", time.perf_counter() - start)
    return summary.finish()
