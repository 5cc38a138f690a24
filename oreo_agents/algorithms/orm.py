"""An outcome reward model (ORM): a value-model-shaped classifier trained on episodes labelled by
the verifier, to rerank K samples (rerank@K: ``oreo rollout --strategy sample --k K --reranker
OUT/value``) as Havrilla et al. 2024 do (after Cobbe et al. 2021). The policy is not trained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oreo_agents.algorithms.base import Algorithm, normalizer
from oreo_agents.losses import orm_loss


@dataclass(frozen=True)
class ORMConfig:
    """ORM's settings.

    Attributes:
        value_lr: Learning rate of the classifier (backbone + head, started from ``--model``).
    """

    value_lr: float = 1e-5


class ORM(Algorithm):
    """Per-token correctness classification on action tokens (`orm_loss`); written to
    OUT/value, loadable wherever a value model is."""

    config = ORMConfig
    value = True
    log_keys = ("orm_loss", "orm_accuracy")

    def select(self, episodes: list[Any], settings: Any, source: str) -> list[Any]:
        labels = {e.reward > 0 for e in episodes}
        if len(labels) < 2:
            raise ValueError(f"{source}: an ORM needs correct and incorrect episodes")
        return episodes

    def value_model(self, model: str, settings: ORMConfig):
        from oreo_agents.models.value import ValueModel

        # a classifier on the last state; the logprob form is OREO's (value_form)
        return ValueModel.from_pretrained(model, form="last"), settings.value_lr

    def counts(self, items: Sequence[Any]) -> dict[str, float]:
        return {"tokens": sum(sum(x.action_mask) for x in items)}  # every action token, unshifted

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: ORMConfig):
        scores = models["value"](batch["input_ids"], batch["attention_mask"])
        tokens = normalizer(batch, "tokens")
        loss, metrics = orm_loss(scores, batch["rewards"], batch["action_mask"], tokens)
        return loss, {**metrics, "orm_loss": loss.detach()}
