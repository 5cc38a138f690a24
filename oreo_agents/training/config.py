"""What `oreo train` runs (`TrainConfig`): the loop's settings and the algorithm's own, from
the CLI's options, a config file or a recipe; what a resumed run must match."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

# The algorithms load inside the methods: the CLI builds its options from TrainConfig when it
# starts, and `oreo --help` should not wait for torch.
# Fields a resumed run may change: when to stop, save and log, not what it trains.
RESUME_FREE = frozenset({"max_steps", "save_every", "save_minutes", "log_every"})


@dataclass(frozen=True)
class TrainConfig:
    """What `oreo train` runs: the loop's settings, and the algorithm's own (``settings``).
    Defaults follow the OREO paper (Wang et al. 2024, App. A.3) unless a field says otherwise.

    Attributes:
        algo: The algorithm (`oreo_agents.algorithms`: oreo | oreo-step | oreo-response | sft |
            rft | dpo | kto | rcrl | orm | orm-rank | ppo, and plug-ins).
        data: An episode store folder or file, or a published OREO JSON(L) file; several
            separated by commas (None for an online algorithm).
        model: The starting checkpoint (hub id or folder): policy, reference and value init.
        value: Start the value model (OREO's value, PPO's critic, the ORM) from this causal-LM
            or value folder instead of ``model``: a separate, e.g. larger, backbone. It must
            use the policy's tokenizer, since it reads the policy's token ids (None: ``model``).
        out: Output folder; an existing run there with the same settings is resumed.
        epochs: Passes over the data (paper: 1).
        lr: Policy learning rate (None: the algorithm's default; paper: 5e-6, DPO 5e-7).
        batch_size: Sequences per optimizer step (paper: 128); DPO counts pairs.
        micro_batch_size: Sequences per forward pass; gradients accumulate up to batch_size.
            A loss that averages over tokens (SFT) or sequences (OREO) averages over the whole
            optimizer batch, every process's share included, so this changes memory and speed,
            not the gradient (`oreo_agents.data.batches.MicroBatches`).
        per_micro_batch_mean: Average each micro-batch's loss over its own tokens instead, and
            the micro-batches' losses with equal weight (oreo before 2026-12; what
            transformers' Trainer did before its 2024 accumulation fix).
        max_length: Episodes are cut to this many tokens.
        length_grouping: Batch episodes of similar lengths together (less padding; the order of
            batches stays random); off: a plain seeded shuffle.
        warmup_ratio: Cosine schedule warm-up fraction (3%).
        adam_betas: Adam betas (0.9, 0.95).
        weight_decay: AdamW weight decay.
        grad_clip: Gradient norm clip (1.0).
        seed: Seeds data order and initialisation.
        max_steps: Stop after this many optimizer steps (None: all epochs).
        save_every: Checkpoint every N optimizer steps (0: off).
        save_minutes: Also checkpoint when this many minutes have passed since the last save
            (0: off). Checkpoints are also written at the end and on SIGINT / SIGTERM.
        log_every: Log every N optimizer steps.
        gradient_checkpointing: Trade compute for memory.
        mixed_precision: "no", "bf16" or "fp16" (default: bf16 on a GPU, else no).
        report_to: "tensorboard" (OUT/runs), "none", or "auto" (tensorboard when installed).
        env: The env an online algorithm (ppo) collects its episodes from.
        env_options: Keyword arguments of that env (``split`` among them).
        settings: The algorithm's config (e.g. `OREOConfig`), or a dict of its fields; None
            takes its defaults.
    """

    algo: str
    data: str | None
    model: str
    out: str
    value: str | None = None
    epochs: int = 1
    lr: float | None = None
    batch_size: int = 128
    micro_batch_size: int = 4
    per_micro_batch_mean: bool = False
    max_length: int = 2048
    length_grouping: bool = True
    warmup_ratio: float = 0.03
    adam_betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    max_steps: int | None = None
    save_every: int = 0
    save_minutes: float = 10.0
    log_every: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str | None = None
    report_to: str = "auto"
    env: str | None = None
    env_options: dict[str, Any] = field(default_factory=dict)
    settings: Any = None

    def __post_init__(self):
        spec = self.spec
        for name in ("epochs", "batch_size", "micro_batch_size", "max_length", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size})"
            )
        if self.report_to not in ("auto", "none", "tensorboard"):
            raise ValueError(f"report_to must be auto, none or tensorboard: {self.report_to!r}")
        if self.mixed_precision not in (None, "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16: {self.mixed_precision!r}")
        if (self.data is None) == (self.env is None):
            raise ValueError("give --data (logged episodes) or --env (online algorithms), not both")
        if self.env_options and self.env is None:
            raise ValueError("env options (-o, --split) need an --env")
        if self.env is not None and not spec.online:
            raise ValueError(f"{self.algo} trains on logged episodes: give --data, not --env")
        if self.value is not None and not spec.trains_value:
            raise ValueError(f"--value: {self.algo} trains no value model")
        if self.env is not None and self.epochs != 1:
            setting = spec.epochs_setting or "one of its settings (oreo train --help)"
            raise ValueError(f"{self.algo}: passes over each iteration's episodes are "
                             f"{setting}; leave --epochs at 1")  # fmt: skip
        settings = self.settings
        if settings is None or isinstance(settings, dict):
            settings = spec.settings(settings)
        elif not isinstance(settings, spec.config):
            raise ValueError(
                f"settings of {self.algo} must be a {spec.config.__name__} or a dict, "
                f"got {type(settings).__name__}"
            )
        set_ = object.__setattr__
        set_(self, "settings", settings)
        set_(self, "lr", self.lr if self.lr is not None else spec.default_lr)
        set_(self, "adam_betas", tuple(self.adam_betas))

    @property
    def spec(self) -> Any:
        """The algorithm's spec (`oreo_agents.algorithms.Algorithm`)."""
        from oreo_agents.algorithms import get_algorithm

        return get_algorithm(self.algo)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from one flat mapping: loop fields by name, and every other key a field of
        the algorithm's settings (what ``--set`` and config files give).

        Raises:
            ValueError: ``algo`` is missing or unknown, or a key is neither kind of field.
        """
        values = dict(values)
        if "algo" not in values:
            raise ValueError("missing algo")
        values.setdefault("data", None)
        loop = {f.name for f in fields(cls)} - {"settings"}
        settings = {k: values.pop(k) for k in list(values) if k not in loop}
        settings = {**(values.pop("settings", None) or {}), **settings}
        return cls(**values, settings=settings)

    def flat(self) -> dict[str, Any]:
        """The loop fields and the algorithm's settings in one JSON-safe mapping."""
        loop = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        return _jsonable({**loop, **asdict(self.settings)})

    def fixed(self) -> dict[str, Any]:
        """The settings of `flat` a resumed run must keep (all but RESUME_FREE): what a run
        records to check a resume against."""
        return {k: v for k, v in self.flat().items() if k not in RESUME_FREE}

    def changed(self, recorded: dict[str, Any]) -> list[str]:
        """The settings (of `flat`, less RESUME_FREE) that differ from a run's ``recorded`` ones.
        A setting the run did not record (one added to oreo since) counts as its default, so a
        run started before it existed resumes unless it is set otherwise now."""
        defaults = {}
        for f in (*fields(self), *fields(self.settings)):
            if f.default is not MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not MISSING:
                defaults[f.name] = f.default_factory()
        defaults = _jsonable(defaults)
        return [
            k
            for k, v in self.flat().items()
            if k not in RESUME_FREE and recorded.get(k, defaults.get(k, MISSING)) != v
        ]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
