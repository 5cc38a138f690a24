"""A job's processes and devices (`oreo_agents.runtime.distributed`), without launching one: the
launcher's environment is set by hand. The launched paths are tests/cli/test_distributed*.py."""

from __future__ import annotations

import pytest
import torch

from oreo_agents.runtime import distributed


def launched(monkeypatch, rank, world, gpus):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


def test_each_process_of_a_gpu_node_gets_its_own_gpu(monkeypatch):
    launched(monkeypatch, rank=1, world=2, gpus=2)
    assert distributed.device() == "cuda:1"


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    # torchrun --nproc_per_node 2 on a one-GPU machine: CUDA's own error is "invalid device
    # ordinal" from inside a barrier
    launched(monkeypatch, rank=1, world=2, gpus=1)
    with pytest.raises(ValueError, match=r"LOCAL_RANK=1 .* sees 1.*CUDA_VISIBLE_DEVICES="):
        distributed.device()
    with pytest.raises(ValueError, match="no GPU"):
        distributed.check_gpus()


def test_without_gpus_or_a_launcher_there_is_no_device_to_pick(monkeypatch):
    launched(monkeypatch, rank=1, world=2, gpus=0)
    assert distributed.device() is None
    distributed.check_gpus()  # CPU processes: gloo, nothing to check
    launched(monkeypatch, rank=0, world=1, gpus=1)
    assert distributed.device() is None


def test_a_rank_outside_the_job_is_refused(monkeypatch):
    launched(monkeypatch, rank=2, world=2, gpus=0)
    with pytest.raises(ValueError, match="RANK=2 is not in a job of WORLD_SIZE=2"):
        distributed.rank_world()
