"""The Ray engine: the planned batches of a job spread over an actor pool of a Ray cluster (``pip install -e
".[distributed]"``; nothing in the ComfyUI pack imports it).

The reference is encoded once, by one task, and shared with every worker as an object reference (a few hundred
query vectors). Each worker (an actor of a Ray Data ``map_batches`` pool) loads SD2.1 and the decoder once, on its
own GPU where it has one (fp16 there by default), and mattes whole planned batches: the same batches the
single-process engine runs, with the same shared ensemble draws, so every alpha equals the single-process one.
Outputs are written by the workers themselves (atomically) to the output location, local or any pyarrow file system
the cluster reaches.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TextIO

from ..backbone.features import images_per_call
from ..pipeline import InContextMatting, ReferenceContext
from ..progress import TextProgress
from ..validation import InputError
from .job import BatchResult, JobSummary, MatteSettings, matte_batch
from .loading import encode_references, load_matting, resolve_device
from .plan import Failure, Target, plan_batches, plan_targets
from .storage import Storage


@dataclass(frozen=True)
class ModelSpec:
    """What every worker loads: the SD2.1 and IconMatting files (at the same path on every node, or on shared
    storage), the device (``auto``: the worker's GPU where Ray gave it one, else the CPU) and the U-Net precision."""

    sd: str
    icm: str
    device: str = "auto"
    precision: str = "auto"
    max_batch: int = 8

    def load(self) -> InContextMatting:
        return load_matting(Path(self.sd), Path(self.icm), resolve_device(self.device), self.precision, self.max_batch)


@dataclass(frozen=True)
class RayOptions:
    """The cluster and the pool: ``address`` None starts a local cluster (``ray.init()``), ``auto`` joins the running
    one, ``ray://host:10001`` connects a client; ``workers`` actors, each with ``gpus_per_worker`` GPUs (None: 1 where
    the cluster has GPUs, else 0) and ``cpus_per_worker`` CPUs."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0


class UNetCalls:
    """Counts the forward calls of a model's U-Net (a job's figure: the reference is encoded once)."""

    def __init__(self, matting: InContextMatting) -> None:
        self.count = 0
        matting.backbone.unet.register_forward_pre_hook(self._called)

    def _called(self, *_) -> None:
        self.count += 1


def encode_reference_once(
    spec: ModelSpec, images: list[str], masks: list[str], timestep: int, ensemble: int, seed: int
) -> tuple[ReferenceContext, int]:
    """The job's reference context (tensors on the CPU, to share), and the U-Net calls it took."""
    matting = spec.load()
    calls = UNetCalls(matting)
    context = encode_references(matting, [Path(i) for i in images], [Path(m) for m in masks], timestep, ensemble, seed)
    return replace(context, query=context.query.cpu(), token_masks=[m.cpu() for m in context.token_masks]), calls.count


class MatteWorker:
    """One actor of the pool: the model loaded once, then one planned batch per call (a row of the dataset)."""

    def __init__(self, spec: dict, context: list, out: str, settings: dict) -> None:
        import ray

        self.matting = ModelSpec(**spec).load()
        self.calls = UNetCalls(self.matting)
        self.context = ray.get(context[0])
        self.out, self.settings = out, MatteSettings(**settings)
        self.storage = Storage.for_location(out)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, rows):
        import pandas as pd

        records = []
        for batch_json in rows["batch"]:
            batch = [Target(location, name, tuple(size)) for location, name, size in json.loads(batch_json)]
            before, start = self.calls.count, time.perf_counter()
            result = matte_batch(self.matting, self.context, batch, self.storage, self.out, self.settings)
            seconds = time.perf_counter() - start
            records.extend(
                {"location": location, "reason": "", "worker": self.name, "seconds": seconds / len(batch)}
                for location in result.written
            )
            records.extend(
                {"location": f.location, "reason": f.reason, "worker": self.name, "seconds": seconds / len(batch)}
                for f in result.failures
            )
            records[-1]["unet_calls"] = self.calls.count - before
        frame = pd.DataFrame.from_records(records)
        frame["unet_calls"] = frame.get("unet_calls", 0)
        return frame.fillna({"unet_calls": 0}).astype({"unet_calls": int})


@dataclass
class RayJobSummary(JobSummary):
    """A Ray job's summary, with the U-Net calls of the reference task and of the workers (the reference is encoded
    once: the workers' calls are the targets' alone)."""

    reference_unet_calls: int = 0
    worker_unet_calls: int = 0

    def lines(self) -> list[str]:
        return [
            *super().lines(),
            f"reference encoded once ({self.reference_unet_calls} U-Net calls); workers: "
            f"{self.worker_unet_calls} U-Net calls",
        ]


def _pool(options: RayOptions, cluster_gpus: float) -> tuple[int, float]:
    """``(workers, gpus per worker)`` with the defaults resolved against the cluster."""
    gpus = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if cluster_gpus >= 1 else 0.0)
    default_workers = max(1, int(cluster_gpus // gpus)) if gpus > 0 else 1
    workers = default_workers if options.workers is None else options.workers
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if gpus > cluster_gpus:
        raise InputError(
            f"--gpus-per-worker {gpus:g} but the Ray cluster has {cluster_gpus:g} GPUs: use --gpus-per-worker 0 "
            "to run on CPUs"
        )
    return workers, gpus


def run_ray(
    spec: ModelSpec,
    references: list[str],
    masks: list[str],
    timestep: int,
    locations: list[str],
    out: str,
    settings: MatteSettings,
    options: RayOptions,
    stream: TextIO | None = None,
) -> RayJobSummary:
    """Mattes every target not already done into ``out`` on a Ray cluster; unreadable targets are reported by name,
    the rest goes on. Progress (targets done / total, targets/s) is drawn on the driver's ``stream``."""
    try:
        import ray
    except ImportError as error:
        raise InputError('--engine ray needs Ray: pip install -e ".[distributed]"') from error
    storage = Storage.for_location(out)
    storage.make_folder(out)
    targets, done, failures = plan_targets(storage, locations, out, settings.foreground is not None)
    summary = RayJobSummary(len(locations), skipped=done, failures=failures)
    if not targets:
        return summary.finish()
    if not ray.is_initialized():
        ray.init(address=options.address, log_to_driver=False, include_dashboard=False)
    workers, gpus = _pool(options, ray.cluster_resources().get("GPU", 0.0))
    encode = ray.remote(num_gpus=gpus, num_cpus=options.cpus_per_worker, num_returns=2)(encode_reference_once)
    context, reference_calls = encode.remote(spec, references, masks, timestep, settings.ensemble, settings.seed)
    batches = plan_batches(targets, images_per_call(spec.max_batch, settings.ensemble))
    dataset = ray.data.from_items(
        [{"batch": json.dumps([[t.location, t.name, list(t.size)] for t in batch])} for batch in batches],
        override_num_blocks=len(batches),
    )
    results = dataset.map_batches(
        MatteWorker,
        batch_size=1,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=gpus,
        num_cpus=options.cpus_per_worker,
        fn_constructor_kwargs={"spec": asdict(spec), "context": [context], "out": out, "settings": asdict(settings)},
    )
    progress = TextProgress(len(targets), "matting", stream or sys.stderr, per_second=True)
    for row in results.iter_rows():
        result = BatchResult()
        if row["reason"]:
            result.failures.append(Failure(row["location"], row["reason"]))
        else:
            result.written.append(row["location"])
        summary.add(result, row["worker"], row["seconds"])
        summary.worker_unet_calls += int(row["unet_calls"])
        progress.update(1)
    summary.reference_unet_calls = ray.get(reference_calls)
    return summary.finish()
