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


def device() -> str | None:
    """This rank's device in a multi-GPU job (``cuda:LOCAL_RANK``); None otherwise."""
    import torch

    if rank_world()[1] == 1 or not torch.cuda.is_available():
        return None
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def _state() -> Any:
    import torch
    from accelerate import PartialState

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
