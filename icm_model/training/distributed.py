"""Several processes through ``torchrun``: the process group, the device of each process, DDP wrapping and the
reductions the trainer logs.

``torchrun --nproc_per_node N -m icm_model train ...`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; each
process then trains on its share of every batch (NCCL on CUDA, gloo on the CPU). BatchNorm keeps per-process
statistics as the official code does; ``sync_bn`` turns them into SyncBatchNorm (CUDA only: PyTorch's SyncBatchNorm
has no CPU implementation).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (``world_size`` 1: no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Whether this process writes logs, checkpoints and models and runs the validation."""
        return self.rank == 0


def start(device: torch.device) -> Processes:
    """Joins the process group ``torchrun`` describes (if any); this process's device is ``cuda:<LOCAL_RANK>`` when
    ``device`` is CUDA, else ``device``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Processes(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(int(os.environ["RANK"]), world_size, local_rank, device)


def stop() -> None:
    """Leaves the process group. After a run that ended normally, call :func:`barrier` first: gloo's worker thread
    frees each finished collective's tensors, which needs the GIL when Python once held them, and the process group's
    destructor joins that thread while holding the GIL, so a collective still being freed then deadlocks the process
    (seen: rank 1 hung at exit after the last step's loss reduction). Waiting in a barrier (without the GIL) lets the
    thread finish freeing every earlier collective."""
    if dist.is_initialized():
        dist.destroy_process_group()


def ddp_wrapper(processes: Processes) -> Callable[[nn.Module], nn.Module] | None:
    """The wrapper of the training forward module for DDP (None for one process)."""
    if processes.world_size == 1:
        return None

    def wrap(module: nn.Module) -> nn.Module:
        device = processes.device
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    return wrap


def sum_over_processes(values: list[float], processes: Processes) -> list[float]:
    """``values`` summed element-wise over every process (float64; unchanged for one process)."""
    if processes.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=processes.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(processes: Processes) -> None:
    if processes.world_size > 1:
        dist.barrier()
