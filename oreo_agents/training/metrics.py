"""`oreo train`'s metrics: the per-step meter and ``OUT/metrics.jsonl`` (appended by the main
process, cut back to the checkpoint on resume)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from oreo_agents.algorithms.base import sub_batches


class Meter:
    """Averages metrics over the micro-batches of one optimizer step; tokens/s and padding."""

    def __init__(self):
        self.sums: dict[str, Any] = {}
        self.n = 0
        self.tokens = self.slots = 0
        self.t0 = time.perf_counter()

    def add(self, batch: dict[str, Any], metrics: dict[str, Any]) -> None:
        # Sum tensors on their device: float() here would wait for the GPU every micro-batch.
        for k, v in metrics.items():
            v = v.detach() if torch.is_tensor(v) else v
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.n += 1
        for part in (batch, *sub_batches(batch).values()):  # DPO's rejected, KTO's mismatched
            self.tokens += int(part["attention_mask"].sum())
            self.slots += part["attention_mask"].numel()

    def flush(self, step: int, lr: float, accelerator: Any) -> dict[str, Any]:
        """The step's record, averaged over all processes (tokens summed over them)."""
        dt = max(time.perf_counter() - self.t0, 1e-9)
        names = sorted(self.sums)
        device = accelerator.device
        means = torch.stack([torch.as_tensor(self.sums[k], device=device).float() for k in names])
        means = means / max(self.n, 1)
        counts = torch.tensor([self.tokens, self.slots], device=device, dtype=torch.float64)
        if accelerator.num_processes > 1:
            means = accelerator.reduce(means, reduction="mean")
            counts = accelerator.reduce(counts, reduction="sum")
        tokens, slots = counts.tolist()
        record = {"step": step, "lr": lr}
        record.update(dict(zip(names, means.tolist(), strict=True)))
        record["tokens_per_s"] = tokens / dt
        record["pad_fraction"] = 1 - tokens / max(slots, 1)

        if torch.cuda.is_available():
            record["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.__init__()
        return record


class Pace:
    """Seconds left to ``total`` optimizer steps, at the pace of this process's steps after its
    first (which also pays for warm-up: allocations, caches, a compile); call once per step."""

    def __init__(self, step: int):
        self.first, self.t0 = step, time.monotonic()
        self.t1: float | None = None  # when the first step ended

    def eta(self, step: int, total: int) -> float:
        now = time.monotonic()
        if self.t1 is None:
            self.t1 = now
            per_step = now - self.t0
        else:
            per_step = (now - self.t1) / max(step - self.first - 1, 1)
        return per_step * max(total - step, 0)


def append_metrics(out: Path, record: dict[str, Any], accelerator: Any) -> None:
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


def truncate_metrics(out: Path, step: int, accelerator: Any) -> None:
    """Drop metrics logged after the checkpoint we resume from (they will be logged again), and
    a last line torn by a kill.

    Raises:
        ValueError: A line other than the last is not JSON (the file is not this run's log).
    """
    path = out / "metrics.jsonl"
    if not (accelerator.is_main_process and path.exists()):
        return
    lines = path.read_text(errors="replace").splitlines()
    keep = []
    for n, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                break  # torn by a kill mid-write
            raise ValueError(f"{path}:{n}: not a JSON metrics record") from None
        if record["step"] <= step:
            keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))
