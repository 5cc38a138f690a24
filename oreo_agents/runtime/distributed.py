"""The processes of a multi-process job (``torchrun``, ``accelerate launch``) that collect or
evaluate: which one this is, and the few collective steps those commands need.

Collection and evaluation need no process group to split work: each rank takes every
``world``-th task (``tasks[rank::world]``) and writes its own shards of the one episode store.
A group (gloo on CPU, as `oreo train` makes it) is joined only to wait for the others and to
gather an evaluation's records on rank 0.
"""

from __future__ import annotations

import os
from typing import Any


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` from the launcher's environment (``RANK``, ``WORLD_SIZE``);
    ``(0, 1)`` outside a launcher."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in a job of WORLD_SIZE={world} processes")
    return rank, world


def check_gpus() -> None:
    """Raise a clear error when this node launched more processes than it sees GPUs (the
    launcher gives process ``LOCAL_RANK`` the GPU of that index, which does not exist)."""
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if rank_world()[1] > 1 and torch.cuda.is_available() and local >= torch.cuda.device_count():
        raise ValueError(
            f"process LOCAL_RANK={local} of this node has no GPU: the node sees "
            f"{torch.cuda.device_count()}; launch at most one process per GPU "
            "(--nproc_per_node), or hide the GPUs (CUDA_VISIBLE_DEVICES=) to run on CPU"
        )


def device() -> str | None:
    """This rank's device in a multi-GPU job (``cuda:LOCAL_RANK``); None otherwise."""
    import torch

    if rank_world()[1] == 1 or not torch.cuda.is_available():
        return None
    check_gpus()
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def _state() -> Any:
    import torch
    from accelerate import PartialState

    check_gpus()
    # On CPU accelerate joins the launcher's group (gloo) only when told it runs on CPU.
    return PartialState(cpu=not torch.cuda.is_available())


def wait_for_everyone() -> None:
    """A barrier across the job's processes (nothing to do for one process)."""
    if rank_world()[1] > 1:
        _state().wait_for_everyone()


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` for one process)."""
    if rank_world()[1] == 1:
        return [value]
    import torch.distributed as dist

    _state()
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def free_memory() -> None:
    """Give back what models just deleted held: Python's garbage, and CUDA's cached blocks."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
