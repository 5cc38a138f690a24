"""Training data for `oreo train`: load, check, tokenize and batch episodes for one algorithm
(the algorithm's spec decides which episodes, what an item is and how items collate).

Everything here runs before any model is loaded, so bad input fails fast with a clear message.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from oreo_agents.data.convert import from_oreo_agent, from_oreo_math, read_records
from oreo_agents.data.episodes import Episode, load_episodes
from oreo_agents.data.inputs import has_ids, tokenizer_id
from oreo_agents.data.tokenization import (
    length_grouped_batches,
    shuffled_batches,
    tokenize_episodes,
)


def load_training_episodes(path: str) -> list[Episode]:
    """Episodes from stores (folders or files) or published OREO math/agent files.

    ``path`` may list several sources separated by commas; their episodes are concatenated.

    Raises:
        ValueError: Nothing usable at a path.
    """
    if "," in path:
        return [ep for part in path.split(",") if part for ep in load_training_episodes(part)]
    p = Path(path)
    if not p.exists():
        raise ValueError(f"no training data at {path}")
    if p.is_file():
        first = next(read_records(p), (0, {}))[1]
        if isinstance(first, dict) and "steps" not in first:
            if "conversations" in first:
                return list(from_oreo_agent(read_records(p), "oreo/ALFWorld-v0"))
            if "response" in first:
                return list(from_oreo_math(read_records(p), "oreo/MATH-v0"))
    try:
        return load_episodes(p)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None


class MicroBatches(Sequence):
    """The micro-batches of a `TrainPlan` as a sequence of item-index groups, collated on access
    (``batches[i]`` is a fresh dict of tensors; a slice gives a list of them).

    Each micro-batch also carries ``normalizers``: for every count the algorithm's loss averages
    over (`Algorithm.counts`: target tokens, sequences with actions), that count over its whole
    optimizer batch, every process's share included, divided by the micro-batches it is split
    into (``accumulation x world``). A loss that divides its micro-batch's sum by it gives, once
    ``accelerate`` divides by the accumulation steps and DDP averages the processes, the mean
    over the optimizer batch's tokens: the gradient does not depend on ``--micro-batch-size``
    or the number of processes. The counts come from the items every process holds, so nothing
    is communicated.
    """

    def __init__(self, plan: TrainPlan, groups: list[list[int]], steps: list[list[int]]):
        self.plan, self.groups, self.steps = plan, groups, steps
        self._totals: dict[int, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        batch = self.plan._collate([self.plan.items[k] for k in self.groups[i]])
        if self.plan.batch_means:
            shares = self.plan.accumulation * self.plan.world
            batch["normalizers"] = {
                name: torch.tensor(total / shares) for name, total in self.totals(i).items()
            }
        return batch

    def totals(self, i: int) -> dict[str, float]:
        """The algorithm's counts over the optimizer batch of micro-batch ``i``."""
        step = i // self.plan.accumulation
        if step not in self._totals:
            items = [self.plan.items[k] for k in self.steps[step]]
            self._totals = {step: self.plan.spec.counts(items)}  # the current step's only
        return self._totals[step]


@dataclass
class TrainPlan:
    """Tokenized items and how to batch them; what an item is (an episode, a DPO pair) is the
    algorithm's (``spec``)."""

    items: list[Any]
    pad_id: int
    micro_batch_size: int
    accumulation: int
    epochs: int
    seed: int
    spec: Any
    world: int = 1
    length_grouping: bool = True
    token_ids: dict[str, int] | None = None  # episodes read with their logged ids / encoded
    batch_means: bool = True  # losses average over the optimizer batch (`MicroBatches`)
    max_length: int | None = None  # what the items were cut at

    @property
    def optimizer_steps(self) -> int:
        per_epoch = len(self.items) // (self.micro_batch_size * self.accumulation * self.world)
        return per_epoch * self.epochs

    def micro_batches(self, world: int = 1, rank: int = 0) -> MicroBatches:
        """This process's micro-batches, epoch after epoch, in a seeded order; each is collated
        when it is read, so the data is never held twice (as items and as padded tensors).

        Items are grouped by length (unless ``length_grouping`` is off) into whole optimizer
        batches (``micro_batch_size x accumulation x world`` items; an incomplete last one is
        dropped), and each batch is then
        split into micro-batches, so which items share an optimizer step does not depend on the
        micro-batch size or the number of processes.
        """
        groups: list[list[int]] = []
        steps: list[list[int]] = []  # the items of each optimizer batch, every process's
        lengths = [self.spec.length(x) for x in self.items]
        size = self.micro_batch_size * self.accumulation * world
        batches = length_grouped_batches if self.length_grouping else shuffled_batches
        for epoch in range(self.epochs):
            for batch in batches(lengths, size, seed=self.seed + epoch):
                if len(batch) < size:
                    continue
                micro = [
                    batch[i : i + self.micro_batch_size]
                    for i in range(0, size, self.micro_batch_size)
                ]
                groups += micro[rank::world]
                steps.append(batch)
        return MicroBatches(self, groups, steps)

    def _collate(self, items: list[Any]) -> dict[str, Any]:
        return self.spec.collate(items, self.pad_id, self.max_length)


def prepare(cfg: Any, tokenizer: Any, world: int = 1) -> TrainPlan:
    """Load, filter and tokenize the data for ``cfg.algo`` and check it can fill a batch.

    Raises:
        ValueError: Empty data, data the algorithm cannot use (no successful episode for rft,
            no pair for dpo, one-sided labels for kto), a tokenizer larger than the model's
            vocabulary, or fewer items than one optimizer batch.
    """
    spec = cfg.spec
    _check_tokenizer(cfg.model, tokenizer)
    episodes = load_training_episodes(cfg.data)
    if not episodes:
        raise ValueError(f"{cfg.data} holds no episodes")
    episodes = spec.select(episodes, cfg.settings, cfg.data)
    stored = sum(has_ids(e, tokenizer) for e in episodes)
    if stored < len(episodes):  # once per run; the count also goes to the progress file
        warnings.warn(
            f"{len(episodes) - stored} of {len(episodes)} episodes carry no token ids of this "
            f"tokenizer ({tokenizer_id(tokenizer)}): encoded from their text, segment by segment",
            stacklevel=2,
        )
    tokenized = tokenize_episodes(episodes, tokenizer, max_length=cfg.max_length)
    if not tokenized:
        raise ValueError(f"{cfg.data}: no episode has an action to learn from")
    items = spec.items(tokenized, cfg.settings, cfg.seed, cfg.data)
    accumulation = cfg.batch_size // (cfg.micro_batch_size * world)
    if accumulation < 1:
        raise ValueError(
            f"batch_size {cfg.batch_size} < micro_batch_size {cfg.micro_batch_size} x "
            f"{world} processes"
        )
    plan = TrainPlan(
        items, tokenizer.pad_token_id, cfg.micro_batch_size, accumulation, cfg.epochs, cfg.seed,
        spec, world, cfg.length_grouping, {"stored": stored, "encoded": len(episodes) - stored},
        batch_means=not cfg.per_micro_batch_mean, max_length=cfg.max_length,
    )  # fmt: skip
    if plan.optimizer_steps < 1:
        raise ValueError(
            f"{cfg.data}: {len(items)} {spec.unit} do not fill one batch of {cfg.batch_size}; "
            "lower --batch-size"
        )
    return plan


def _check_tokenizer(model: str, tokenizer: Any) -> None:
    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not read the config of {model!r}: {e}") from None
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary has {vocab}: "
            "they do not belong together"
        )
