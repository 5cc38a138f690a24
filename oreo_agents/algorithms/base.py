"""What an algorithm is to the training loop: the `Algorithm` spec, and the forward-pass helpers
the specs share.

A spec says which models it needs (a frozen reference, a value model), turns episodes into
training items and collates them into micro-batches, carries its own config dataclass with the
paper's defaults, and computes one micro-batch's ``(loss, metrics)`` by running the models and
calling a pure loss from `oreo_agents.losses`. The loop (`oreo_agents.training.loop`) only asks
the spec.

Alignment in every step: logits at position t predict token t + 1, so targets and masks are
shifted by one and ``values[:, t]`` (the state ending at token t) is V of the state before
action token t + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import Field, field, fields, replace
from typing import Any

import torch

from oreo_agents.data.tokenization import TokenizedEpisode, collate
from oreo_agents.losses import sequence_logps

Batch = dict[str, Any]


def driver_set(default: Any = "") -> Any:
    """A settings field the online driver sets for each update (where its critic starts, the
    scored samples): part of a run's recorded settings, but not a user setting, so ``--set``
    refuses it and ``oreo train --help`` does not list it."""
    return field(default=default, metadata={"driver_set": True})


def user_fields(config: type) -> list[Field]:
    """The fields of an algorithm's config a user sets (all but `driver_set` ones)."""
    return [f for f in fields(config) if not f.metadata.get("driver_set")]


class Algorithm:
    """The base spec: SFT-like defaults that a subclass overrides where it differs.

    Class attributes:
        config: The algorithm's settings, a frozen dataclass whose docstring documents each
            field (``oreo train --help`` shows them; ``--set FIELD=VALUE`` sets them).
        reference: Whether the loop loads a frozen reference copy of the starting model.
        trains_value: Whether it trains a value (critic) model beside the policy (`value_model`
            builds it).
        default_lr: The policy learning rate when the user gives none.
        unit: What one training item is, for messages ("episodes", "pairs").
        log_keys: The metrics ``oreo train`` prints each step.
        online: Trains on episodes it collects itself from ``--env`` instead of on ``--data``
            (`run_online`).
        schedule: The learning-rate schedule: "cosine" (with ``warmup_ratio``) or "constant".
        epochs_setting: An online algorithm's setting of passes over each iteration's
            episodes, for messages (``--epochs`` does not apply online).
    """

    config: type = type(None)
    reference: bool = False
    trains_value: bool = False
    default_lr: float = 5e-6
    unit: str = "episodes"
    log_keys: tuple[str, ...] = ()
    online: bool = False
    schedule: str = "cosine"
    epochs_setting: str = ""

    def __init__(self, name: str, description: str):
        self.name, self.description = name, description

    def defaults(self) -> Any:
        """This algorithm's config with its paper defaults."""
        return self.config()

    def settings(self, values: dict[str, Any] | None = None) -> Any:
        """The defaults with ``values`` applied.

        Raises:
            ValueError: A key that is not a field of `config`, or a value of the wrong kind for
                a true/false or numeric field (``--set flag=True`` reads as the text "True").
        """
        values = dict(values or {})
        known = {f.name for f in user_fields(self.config)}
        internal = sorted(set(values) & ({f.name for f in fields(self.config)} - known))
        if internal:
            raise ValueError(f"{self.name}: {', '.join(internal)} is set by the online driver "
                             "for each update, not by a user")  # fmt: skip
        unknown = sorted(set(values) - known)
        if unknown:
            fields_ = ", ".join(sorted(known)) or "none"
            raise ValueError(f"{self.name} has no setting {unknown} (its settings: {fields_})")
        defaults = self.defaults()
        for name, value in values.items():
            default = getattr(defaults, name)
            if isinstance(default, bool):
                kinds, kind = (bool,), "true or false"
            elif isinstance(default, int):
                kinds, kind = (int,), "an integer"
            elif isinstance(default, float):
                kinds, kind = (int, float), "a number"
            else:
                continue
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"{self.name} setting {name} takes {kind}, got {value!r}")
        return replace(defaults, **values)

    def select(self, episodes: list[Any], settings: Any, source: str) -> list[Any]:
        """The episodes to train on (all of them unless the algorithm filters).

        Raises:
            ValueError: Nothing is left to train on.
        """
        return episodes

    def items(self, episodes: list[TokenizedEpisode], settings: Any, seed: int, source: str):
        """Training items from tokenized episodes (episodes themselves unless overridden).

        Raises:
            ValueError: The episodes cannot make a single item.
        """
        return episodes

    def finalize(self, settings: Any, items: Sequence[Any]) -> Any:
        """Settings that depend on the data (e.g. class weights), fixed once before training."""
        return settings

    def length(self, item: Any) -> int:
        """An item's length in tokens, for length-grouped batching."""
        return len(item)

    def counts(self, items: Sequence[Any]) -> dict[str, float]:
        """What this algorithm's loss averages over, counted in ``items`` (an optimizer batch):
        e.g. ``{"tokens": N}``. The loop hands the batch's totals to each micro-batch as
        ``batch["normalizers"]`` (`oreo_agents.data.batches.MicroBatches`), so that a loss
        averages over the optimizer batch, not the micro-batch. {}: the loss is a mean over
        items, which micro-batches of one size already make the batch's mean."""
        return {}

    def collate(self, items: Sequence[Any], pad_id: int, max_length: int | None = None) -> Batch:
        """A micro-batch of tensors from items; a sequence the spec builds from several items
        (KTO's mismatched pairs) is cut at ``max_length`` as the items were."""
        return collate(items, pad_id)

    def value_model(self, model: str, settings: Any) -> tuple[Any, float]:
        """The trainable value/critic model, started from ``model``, and its learning rate
        (called when `trains_value` is set)."""
        raise NotImplementedError(
            f"{self.name} declares trains_value = True but builds no value model"
        )

    def value_head_lr(self, settings: Any) -> float | None:
        """A learning rate of the value model's ``head`` apart from its backbone's (None: one
        rate for the whole value model)."""
        return None

    def run_online(self, cfg: Any, update: Any, log: Any = None) -> Any:
        """An online algorithm's whole training (``cfg.env`` given; `online`): iterations of
        collect -> score -> update through `oreo_agents.online.driver.run_online`, with the
        spec's ``score(cfg, policy, critic, folder)`` and ``update_config(cfg, policy, critic,
        folder, previous, it, steps)``. Each update is an offline run of the config it returns,
        through ``update(config, log=, end=False)`` (the loop's `run_train`). Returns the final
        policy folder. A spec overrides this only to drive its iterations otherwise."""
        if not self.online:
            raise NotImplementedError(f"{self.name} trains on logged episodes (--data)")
        from oreo_agents.online.driver import run_online  # the offline path never loads it

        return run_online(cfg, update, log=log)

    def optimizer_state(self, settings: Any) -> str | None:
        """A folder of optimizer states a fresh run starts its optimizers from (an online
        update carrying the previous update's Adam moments), or None: fresh optimizers."""
        return None

    def precomputes_reference(self, settings: Any) -> bool:
        """Whether the reference's sequence log-probs are computed once before training (and the
        reference freed); only for algorithms that use nothing else of the reference."""
        return False

    def step(self, models: dict[str, Any], batch: Batch, settings: Any):
        """``(loss, metrics)`` of one micro-batch; ``models`` holds "policy" and, as needed,
        "reference" and "value". The loss already sums what is backpropagated."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def target_tokens(item: TokenizedEpisode) -> int:
    """The action tokens of an episode that a loss predicts (`shifted` drops the first)."""
    return sum(item.action_mask[1:])


def normalizer(batch: Batch, name: str) -> torch.Tensor | None:
    """The optimizer batch's count ``name`` per micro-batch (`Algorithm.counts`); None when the
    loop asks for per-micro-batch means."""
    return batch.get("normalizers", {}).get(name)


def logits(model: Any, batch: Batch) -> torch.Tensor:
    """``[B, T-1, V]`` next-token logits of the batch's sequences."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.logits[:, :-1]


def shifted(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The targets ``[B, T-1]`` of `logits` and the mask of action tokens among them."""
    labels = batch["input_ids"][:, 1:]
    mask = batch["action_mask"][:, 1:] & batch["attention_mask"][:, 1:].bool()
    return labels, mask


def ref_sequence_logps(models: dict[str, Any], batch: Batch) -> torch.Tensor:
    """The frozen reference's per-sequence log-prob of the actions ``[B]``, precomputed
    (``batch["ref_logps"]``, see `precompute_reference`) or computed now."""
    if "ref_logps" in batch:
        return batch["ref_logps"]
    labels, mask = shifted(batch)
    with torch.no_grad():
        return sequence_logps(logits(models["reference"], batch), labels, mask)


def sub_batches(batch: Batch) -> dict[str, Batch]:
    """The sequences a micro-batch carries beside its own, by key, each padded on its own and
    scored by the reference alike (KTO's ``mismatched`` pairs, DPO's ``rejected`` episodes):
    every value of the batch that is itself a batch of sequences."""
    return {k: v for k, v in batch.items() if isinstance(v, dict) and "input_ids" in v}


@torch.no_grad()
def precompute_reference(
    reference: Any, batches: Sequence[Batch], start: int, device: Any
) -> dict[int, dict[str, torch.Tensor]]:
    """The reference's sequence log-probs of micro-batches ``start..`` (and of their
    `sub_batches`), so the reference model can be freed before training (DPO, KTO). Returns
    ``{index: {"ref_logps": [B], <sub-batch key>: [B], ...}}`` for `with_reference`."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for i in range(start, len(batches)):
        batch = batches[i]
        out[i] = {}
        for key, part in (("ref_logps", batch), *sub_batches(batch).items()):
            on_device = {k: v.to(device) for k, v in part.items() if torch.is_tensor(v)}
            out[i][key] = ref_sequence_logps({"reference": reference}, on_device).cpu()
    return out


def with_reference(batch: Batch, refs: dict[str, torch.Tensor] | None) -> Batch:
    """``batch`` with precomputed reference log-probs (`precompute_reference`) filled in."""
    if refs:
        batch["ref_logps"] = refs["ref_logps"]
        for key in sub_batches(batch):
            batch[key]["ref_logps"] = refs[key]
    return batch
