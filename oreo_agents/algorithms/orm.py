"""An outcome reward model (ORM): a value-model-shaped classifier trained on episodes labelled by
the verifier, to rerank K samples (rerank@K: ``oreo rollout --strategy sample --k K --reranker
OUT/value``) as Havrilla et al. 2024 do (after Cobbe et al. 2021). The policy is not trained.

`ORMRank` trains the same model to order one task's histories instead (a Bradley-Terry loss on
pairs of a correct and an incorrect episode, compared action by action): what picking among one
state's candidates needs, where a per-episode label also pays for knowing which tasks are hard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from oreo_agents.algorithms.base import Algorithm, normalizer
from oreo_agents.data.tokenization import RankedPair, collate, ranked_pairs
from oreo_agents.losses import orm_loss, rank_loss
from oreo_agents.models.value import FORMS, ValueModel


@dataclass(frozen=True)
class ORMConfig:
    """ORM's settings.

    Attributes:
        value_lr: Learning rate of the classifier (backbone + head, started from ``--model``,
            or from ``--value``).
        value_head_lr: The head's own learning rate (None: value_lr).
        value_form: "last" (a linear head on the last hidden state) or "logprob" (plus learnt
            multiples of the backbone's summed log-probabilities of the action tokens so far,
            `oreo_agents.models.value.ValueModel`).
    """

    value_lr: float = 1e-5
    value_head_lr: float | None = None
    value_form: str = "last"

    def __post_init__(self):
        if self.value_form not in FORMS:
            raise ValueError(f"value_form must be one of {', '.join(FORMS)}: {self.value_form!r}")


class ORM(Algorithm):
    """Per-token correctness classification on action tokens (`orm_loss`); written to
    OUT/value, loadable wherever a value model is."""

    config = ORMConfig
    trains_value = True
    log_keys = ("orm_loss", "orm_accuracy")

    def select(self, episodes: list[Any], settings: Any, source: str) -> list[Any]:
        labels = {e.reward > 0 for e in episodes}
        if len(labels) < 2:
            raise ValueError(f"{source}: an ORM needs correct and incorrect episodes")
        return episodes

    def value_model(self, model: str, settings: ORMConfig):
        return ValueModel.from_pretrained(model, form=settings.value_form), settings.value_lr

    def value_head_lr(self, settings: ORMConfig) -> float | None:
        return settings.value_head_lr

    def counts(self, items: Sequence[Any]) -> dict[str, float]:
        return {"tokens": sum(sum(x.action_mask) for x in items)}  # every action token, unshifted

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: ORMConfig):
        scores = models["value"](batch["input_ids"], batch["attention_mask"], batch["action_mask"])
        tokens = normalizer(batch, "tokens")
        loss, metrics = orm_loss(scores, batch["rewards"], batch["action_mask"], tokens)
        return loss, {**metrics, "orm_loss": loss.detach()}


@dataclass(frozen=True)
class ORMRankConfig(ORMConfig):
    """A ranking ORM's settings: `ORMConfig`'s, and

    Attributes:
        max_pairs_per_task: (correct, incorrect) pairs drawn per task (6, as DPO's).
    """

    max_pairs_per_task: int = 6

    def __post_init__(self):
        super().__post_init__()
        if self.max_pairs_per_task < 1:
            raise ValueError(f"max_pairs_per_task must be >= 1, got {self.max_pairs_per_task}")


class ORMRank(ORM):
    """Items are `RankedPair` s: a correct episode with its ``lost`` sub-batch, one forward
    each. At the j-th action's reading place (where value-guided acting reads a candidate),
    wherever the two histories differ, the correct one should score higher (`rank_loss`).
    The scores keep no absolute meaning: a reranker and value-guided acting only compare them."""

    config = ORMRankConfig
    unit = "pairs"
    log_keys = ("rank_loss", "rank_accuracy")

    def items(self, episodes, settings: ORMRankConfig, seed: int, source: str):
        pairs = ranked_pairs(episodes, max_pairs_per_task=settings.max_pairs_per_task, seed=seed)
        if not pairs:
            raise ValueError(
                f"{source}: no task has both a correct and an incorrect episode, so a ranking "
                "ORM has no pairs; collect more samples per task (--samples)"
            )
        return pairs

    def length(self, item: RankedPair) -> int:
        return max(len(item.won), len(item.lost))

    def counts(self, items: Sequence[RankedPair]) -> dict[str, float]:
        return {"comparisons": sum(len(x.reads) for x in items)}

    def collate(self, items, pad_id: int, max_length: int | None = None) -> dict[str, Any]:
        batch = collate([x.won for x in items], pad_id)
        batch["lost"] = collate([x.lost for x in items], pad_id)
        width = max(len(x.reads) for x in items)
        reads = torch.zeros((len(items), width, 2), dtype=torch.long)
        for i, x in enumerate(items):
            reads[i, : len(x.reads)] = torch.tensor(x.reads)
        batch["reads"] = reads
        batch["read_mask"] = torch.arange(width)[None, :] < torch.tensor(
            [len(x.reads) for x in items]
        )[:, None]
        return batch

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: ORMRankConfig):
        value, reads = models["value"], batch["reads"]
        won, lost = (
            value(b["input_ids"], b["attention_mask"], b["action_mask"]).gather(1, reads[..., i])
            for i, b in enumerate((batch, batch["lost"]))
        )  # [B, comparisons]: the correct episode's scores, then the incorrect one's
        loss, metrics = rank_loss(won, lost, batch["read_mask"], normalizer(batch, "comparisons"))
        return loss, {**metrics, "rank_loss": loss.detach()}
