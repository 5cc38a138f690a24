"""OREO (Wang et al. 2024, arXiv 2412.16145): a value model and the policy fitted to the soft
Bellman residual at token, step or response level."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from oreo_agents.algorithms.base import Algorithm, logits, normalizer, shifted, target_tokens
from oreo_agents.losses import kl_penalty, oreo_loss, token_logps
from oreo_agents.models.value import FORMS, ValueModel


@dataclass(frozen=True)
class OREOConfig:
    """OREO's settings (Wang et al. 2024, Sec. 5 and App. A.3).

    Attributes:
        beta: KL coefficient in the soft Bellman residual (0.03).
        alpha: Weight of KL(pi || pi_ref) in the policy loss (token level 0.01, step 0.1,
            response 0.3).
        value_lr: Value model learning rate (5e-6, as the policy's).
        value_head_lr: The value head's own learning rate (None: value_lr). A head that starts at
            zero moves by about one learning rate per Adam step, so with a small value_lr and a
            short run it barely leaves zero.
        value_lora_rank: Train the value backbone through LoRA adapters of this rank (0: full
            fine-tuning; the paper used LoRA for its 7B value models). Needs peft.
        value_lora_alpha: LoRA alpha.
        value_form: "last" (a linear head on the last hidden state, the paper's) or "logprob"
            (plus learnt multiples of the summed log-probabilities and the number of the action
            tokens under the value backbone's own LM head; `oreo_agents.models.value.ValueModel`).
    """

    beta: float = 0.03
    alpha: float = 0.01
    value_lr: float = 5e-6
    value_head_lr: float | None = None
    value_lora_rank: int = 0
    value_lora_alpha: int = 16
    value_form: str = "last"

    def __post_init__(self):
        if self.value_lora_rank < 0:
            raise ValueError(f"value_lora_rank must be >= 0, got {self.value_lora_rank}")
        if self.value_form not in FORMS:
            raise ValueError(f"value_form must be one of {', '.join(FORMS)}: {self.value_form!r}")


class OREO(Algorithm):
    """OREO at one level: "token" (Eq. 8, 9), "step" (states at step starts) or "response"
    (one residual per response, Eq. 10).

    The value and policy losses are one squared residual under two stop-gradients (Eq. 8 and 9
    differ in what is held fixed, not in value), so the log shows it once, as ``residual``;
    ``metrics.jsonl`` keeps both names, and the KL term apart.
    """

    config = OREOConfig
    reference = True
    trains_value = True
    log_keys = ("residual", "kl")

    def __init__(self, name: str, description: str, *, level: str, alpha: float):
        super().__init__(name, description)
        if level not in ("token", "step", "response"):
            raise ValueError(f"level must be token, step or response, got {level!r}")
        self.level, self.alpha = level, alpha

    def defaults(self) -> OREOConfig:
        return replace(OREOConfig(), alpha=self.alpha)

    def value_model(self, model: str, settings: OREOConfig):
        value = ValueModel.from_pretrained(model, form=settings.value_form)
        if settings.value_lora_rank:
            value.add_lora(settings.value_lora_rank, settings.value_lora_alpha)
        return value, settings.value_lr

    def value_head_lr(self, settings: OREOConfig) -> float | None:
        return settings.value_head_lr

    def counts(self, items: list[Any]) -> dict[str, float]:
        """The losses are means over the sequences that have states (any action to predict)."""
        return {"sequences": sum(target_tokens(x) > 0 for x in items)}

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: OREOConfig):
        """Value residuals with the policy's log-ratios held fixed, policy residuals with the
        values from before this update, plus alpha * exact reverse KL."""
        labels, mask = shifted(batch)
        policy_logits = logits(models["policy"], batch)
        with torch.no_grad():
            ref_logits = logits(models["reference"], batch)
        policy_lp = token_logps(policy_logits, labels)
        ref_lp = token_logps(ref_logits, labels)
        value = models["value"]
        values = value(batch["input_ids"], batch["attention_mask"], batch["action_mask"])[:, :-1]
        starts = batch["step_starts"][:, 1:] & mask if self.level == "step" else None
        sequences = normalizer(batch, "sequences")
        kwargs = {"beta": settings.beta, "level": self.level, "step_starts": starts,
                  "normalizer": sequences}  # fmt: skip
        value_loss, _, value_metrics = oreo_loss(
            policy_lp.detach(), ref_lp, values, batch["rewards"], mask, **kwargs
        )
        _, policy_loss, metrics = oreo_loss(
            policy_lp, ref_lp, values.detach(), batch["rewards"], mask, **kwargs
        )
        kl, kl_metrics = kl_penalty(policy_logits, ref_logits, mask, sequences)
        metrics = {
            **metrics,
            **kl_metrics,
            "residual": value_loss.detach(),  # = policy_loss in value (class docstring)
            "value_loss": value_loss.detach(),
            "policy_loss": policy_loss.detach(),
            "kl": kl.detach(),
            "value_residual_mean": value_metrics["value_residual_mean"],
        }
        return value_loss + policy_loss + settings.alpha * kl, metrics
