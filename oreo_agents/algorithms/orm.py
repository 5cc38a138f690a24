"""An outcome reward model (ORM): a value-model-shaped classifier trained on episodes labelled by
the verifier, to rerank K samples (rerank@K: ``oreo rollout --strategy sample --k K --reranker
OUT/value``) as Havrilla et al. 2024 do (after Cobbe et al. 2021). The policy is not trained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oreo_agents.algorithms.base import Algorithm, normalizer
from oreo_agents.losses import orm_loss
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
