"""`oreo train`: one `accelerate` loop for OREO and the baselines, resumable to the micro-batch.

CPU, one GPU, or many through ``accelerate launch`` (DDP, FSDP or DeepSpeed from an accelerate
config). The algorithm picks the models and the per-micro-batch function in `algos`.
Output folder: ``policy/`` (a standard HF folder), ``value/`` (OREO), ``state/`` (optimizers,
schedulers, RNG and the position in the data, for an exact resume) and ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from oreo_agents.algos import OREO_LEVELS, STEP_FNS, precompute_reference, with_reference

ALGOS = tuple(STEP_FNS)
# Paper defaults (Wang et al. 2024, Sec. 5 and App. A.3).
DEFAULT_LR = {"dpo": 5e-7}  # others 5e-6
DEFAULT_BETA = {"oreo": 0.03, "oreo-step": 0.03, "oreo-response": 0.03, "dpo": 0.1, "kto": 0.1}
DEFAULT_ALPHA = {"oreo": 0.01, "oreo-step": 0.1, "oreo-response": 0.3}


@dataclass(frozen=True)
class TrainConfig:
    """What `oreo train` runs. Defaults follow the OREO paper unless a field says otherwise.

    Attributes:
        algo: oreo | oreo-step | oreo-response | sft | rft | dpo | kto.
        data: An episode store folder or file, or a published OREO JSON(L) file; several
            separated by commas.
        model: The starting checkpoint (hub id or folder): policy, reference and value init.
        out: Output folder; an existing run there with the same settings is resumed.
        epochs: Passes over the data (paper: 1).
        lr: Policy learning rate (paper: 5e-6; DPO 5e-7).
        value_lr: Value model learning rate (paper: 5e-6).
        batch_size: Sequences per optimizer step (paper: 128); DPO counts pairs.
        micro_batch_size: Sequences per forward pass; gradients accumulate up to batch_size.
        beta: KL coefficient in the OREO residual (0.03) / DPO and KTO beta (0.1).
        alpha: Weight of KL(pi || pi_ref) in OREO's policy loss (token 0.01, step 0.1,
            response 0.3).
        max_length: Episodes are cut to this many tokens.
        warmup_ratio: Cosine schedule warm-up fraction (3%).
        adam_betas: Adam betas (0.9, 0.95).
        weight_decay: AdamW weight decay.
        grad_clip: Gradient norm clip (1.0).
        seed: Seeds data order and initialisation.
        max_steps: Stop after this many optimizer steps (None: all epochs).
        save_every: Checkpoint every N optimizer steps (0: only at the end).
        log_every: Log every N optimizer steps.
        gradient_checkpointing: Trade compute for memory.
        mixed_precision: "no", "bf16" or "fp16" (default: bf16 on a GPU, else no).
        dpo_max_pairs_per_task: Pairs of (correct, incorrect) per task (paper: 6).
        kto_desirable_weight: KTO lambda_D; None balances the classes, lambda_D * n_D =
            lambda_U * n_U, inside the range [1, 4/3] the KTO paper recommends for that ratio
            (Ethayarajh et al. 2024, Sec. 4); unbalanced weights with mostly failed episodes
            push the policy mainly away from them.
        kto_undesirable_weight: KTO lambda_U (1.0).
        value_lora_rank: Train the value backbone through LoRA adapters of this rank (0: full
            fine-tuning; the paper used LoRA for its 7B value models). Needs peft.
        value_lora_alpha: LoRA alpha.
        report_to: "tensorboard" (OUT/runs), "none", or "auto" (tensorboard when installed).
        precompute_ref: Compute the reference's log-probs for all data before training and free
            the reference model (DPO and KTO; OREO's exact KL needs the reference's logits).
    """

    algo: str
    data: str
    model: str
    out: str
    epochs: int = 1
    lr: float | None = None
    value_lr: float = 5e-6
    batch_size: int = 128
    micro_batch_size: int = 4
    beta: float | None = None
    alpha: float | None = None
    max_length: int = 2048
    warmup_ratio: float = 0.03
    adam_betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    max_steps: int | None = None
    save_every: int = 0
    log_every: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str | None = None
    dpo_max_pairs_per_task: int = 6
    kto_desirable_weight: float | None = None
    kto_undesirable_weight: float = 1.0
    value_lora_rank: int = 0
    value_lora_alpha: int = 16
    report_to: str = "auto"
    precompute_ref: bool = False

    def __post_init__(self):
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
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
        if self.precompute_ref and self.algo not in ("dpo", "kto"):
            raise ValueError(
                "precompute_ref works for dpo and kto; OREO's KL term needs the reference's "
                "full logits, and sft/rft use no reference"
            )
        if self.value_lora_rank < 0:
            raise ValueError(f"value_lora_rank must be >= 0, got {self.value_lora_rank}")
        if self.mixed_precision not in (None, "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16: {self.mixed_precision!r}")
        set_ = object.__setattr__
        set_(self, "lr", self.lr if self.lr is not None else DEFAULT_LR.get(self.algo, 5e-6))
        set_(self, "beta", self.beta if self.beta is not None else DEFAULT_BETA.get(self.algo))
        set_(self, "alpha", self.alpha if self.alpha is not None else DEFAULT_ALPHA.get(self.algo))
        set_(self, "adam_betas", tuple(self.adam_betas))

    @property
    def is_oreo(self) -> bool:
        return self.algo in OREO_LEVELS

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown train config field(s): {sorted(unknown)}")
        return cls(**values)


def run_train(cfg: TrainConfig, *, log: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train and write ``cfg.out``; returns the policy folder. Checks inputs before any compute.

    Raises:
        ValueError: Empty or unusable data, a mismatched tokenizer, or an output folder holding
            another run.
    """
    import logging

    from accelerate import Accelerator, PartialState
    from accelerate.utils import set_seed

    # accelerate warns on every save that tied embeddings are stored once: expected, not news
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)

    from oreo_agents import train_data
    from oreo_agents.generation.hf import load_tokenizer

    out = Path(cfg.out)
    resume = _check_resume(cfg, out)
    tokenizer = load_tokenizer(cfg.model)
    world = PartialState().num_processes
    plan = train_data.prepare(cfg, tokenizer, world)  # raises on bad data before any compute
    mixed = cfg.mixed_precision or ("bf16" if torch.cuda.is_available() else "no")
    trackers = _trackers(cfg.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=plan.accumulation,
        mixed_precision=mixed,
        log_with=trackers or None,
        project_dir=str(out) if trackers else None,
    )
    if trackers:
        accelerator.init_trackers("runs", config=_flat(asdict(cfg)))
    set_seed(cfg.seed)
    models, optimizers, schedulers = _build(cfg, plan.optimizer_steps, accelerator)
    if resume:
        accelerator.load_state(str(out / "state"))
    progress = json.loads((out / "state" / "progress.json").read_text()) if resume else {}
    _truncate_metrics(out, progress.get("step", 0), accelerator)
    step_fn = STEP_FNS[cfg.algo]
    step_cfg = _with_kto_balance(cfg, plan.items)
    trainable = [m for name, m in models.items() if name != "reference"]
    step, done_micro = progress.get("step", 0), progress.get("micro_batches", 0)
    meter = _Meter()
    micro_batches = plan.micro_batches(accelerator.num_processes, accelerator.process_index)
    refs: dict[int, Any] = {}
    if cfg.precompute_ref:
        reference = models.pop("reference")
        refs = precompute_reference(reference, micro_batches, done_micro, accelerator.device)
        del reference  # the point: its memory is free for training
    for i in range(done_micro, len(micro_batches)):
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
        batch = _to(with_reference(micro_batches[i], refs.pop(i, None)), accelerator.device)
        with accelerator.accumulate(*trainable):
            loss, metrics = step_fn(models, batch, step_cfg)
            accelerator.backward(loss)
            meter.add(batch, metrics)
            if accelerator.sync_gradients:
                for model in trainable:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            for opt, sched in zip(optimizers, schedulers, strict=True):
                opt.step()
                sched.step()
                opt.zero_grad()
        if accelerator.sync_gradients:
            step += 1
            record = meter.flush(step, schedulers[0].get_last_lr()[0])
            _append_metrics(out, record, accelerator)
            if trackers:
                accelerator.log(record, step=step)
            if log is not None and step % cfg.log_every == 0:
                log(record)
            if cfg.save_every and step % cfg.save_every == 0:
                _save(cfg, out, accelerator, models, tokenizer, step, i + 1)
    _save(cfg, out, accelerator, models, tokenizer, step, len(micro_batches))
    accelerator.end_training()
    return out / "policy"


def _unused_fields(algo: str) -> set[str]:
    """Config fields that do not affect ``algo`` (a change to them must not block a resume)."""
    unused = set()
    if algo != "kto":
        unused |= {"kto_desirable_weight", "kto_undesirable_weight"}
    if algo != "dpo":
        unused.add("dpo_max_pairs_per_task")
    if algo not in OREO_LEVELS:
        unused |= {"value_lr", "value_lora_rank", "value_lora_alpha", "alpha"}
    return unused


def _with_kto_balance(cfg: TrainConfig, items: list[Any]) -> TrainConfig:
    """``cfg`` with KTO's lambda_D set so both classes weigh the same (when left to None)."""
    if cfg.algo != "kto" or cfg.kto_desirable_weight is not None:
        return cfg
    good = sum(1 for x in items if x.reward > 0)
    bad = len(items) - good
    return replace(cfg, kto_desirable_weight=cfg.kto_undesirable_weight * bad / good)


def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []
    import importlib.util

    available = importlib.util.find_spec("tensorboard") is not None
    if report_to == "tensorboard" and not available:
        raise ImportError("report_to='tensorboard' needs tensorboard: pip install tensorboard")
    return ["tensorboard"] if available else []


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as TensorBoard accepts them (scalars and strings only)."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}


def _check_resume(cfg: TrainConfig, out: Path) -> bool:
    progress_file = out / "state" / "progress.json"
    if not progress_file.exists():
        if (out / "policy").exists():
            raise ValueError(f"{out} already holds a finished run; choose another --out")
        return False
    old = json.loads(progress_file.read_text())["config"]
    new = _jsonable(asdict(cfg))
    free = {"max_steps", "save_every", "log_every"} | _unused_fields(cfg.algo)
    changed = [k for k in new if k not in free and old.get(k) != new[k]]
    if changed:
        raise ValueError(
            f"{out} holds a run with other settings ({', '.join(changed)}; e.g. algo "
            f"{old.get('algo')!r}); resume with the same settings or choose another --out"
        )
    return True


def _build(cfg: TrainConfig, total_steps: int, accelerator: Any):
    from transformers import get_cosine_schedule_with_warmup

    from oreo_agents.models import ValueModel, load_policy

    models: dict[str, Any] = {"policy": load_policy(cfg.model)}
    groups = [("policy", cfg.lr)]
    if cfg.algo not in ("sft", "rft"):
        models["reference"] = load_policy(cfg.model, trainable=False)
    if cfg.is_oreo:
        models["value"] = ValueModel.from_pretrained(cfg.model)
        if cfg.value_lora_rank:
            models["value"].add_lora(cfg.value_lora_rank, cfg.value_lora_alpha)
        groups.append(("value", cfg.value_lr))
    if cfg.gradient_checkpointing:
        for name, _ in groups:
            models[name].gradient_checkpointing_enable()
    optimizers, schedulers = [], []
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    for name, lr in groups:
        opt = torch.optim.AdamW(
            models[name].parameters(), lr=lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay
        )
        optimizers.append(opt)
        schedulers.append(get_cosine_schedule_with_warmup(opt, warmup, max(total_steps, 1)))
    for name, _ in groups:
        models[name] = accelerator.prepare_model(models[name])
    if "reference" in models:
        models["reference"] = accelerator.prepare_model(models["reference"], evaluation_mode=True)
    optimizers = [accelerator.prepare_optimizer(o) for o in optimizers]
    schedulers = [accelerator.prepare_scheduler(s) for s in schedulers]
    return models, optimizers, schedulers


def _save(cfg, out: Path, accelerator, models, tokenizer, step: int, micro_batches: int) -> None:
    accelerator.wait_for_everyone()
    accelerator.save_state(str(out / "state"))
    if accelerator.is_main_process:
        policy = accelerator.unwrap_model(models["policy"])
        policy.save_pretrained(out / "policy")
        tokenizer.save_pretrained(out / "policy")
        if "value" in models:
            accelerator.unwrap_model(models["value"]).save_pretrained(out / "value")
            tokenizer.save_pretrained(out / "value")
        progress = {
            "algo": cfg.algo,
            "step": step,
            "micro_batches": micro_batches,
            "config": _jsonable(asdict(cfg)),
        }
        (out / "state" / "progress.json").write_text(json.dumps(progress, indent=2) + "\n")


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: (_to(v, device) if isinstance(v, dict) else v.to(device)) for k, v in batch.items()}


class _Meter:
    """Averages metrics over the micro-batches of one optimizer step; tokens/s and padding."""

    def __init__(self):
        self.sums: dict[str, Any] = {}
        self.n = 0
        self.tokens = self.slots = 0
        self.t0 = time.perf_counter()

    def add(self, batch: dict[str, torch.Tensor], metrics: dict[str, Any]) -> None:
        # Sum tensors on their device: float() here would wait for the GPU every micro-batch.
        for k, v in metrics.items():
            v = v.detach() if torch.is_tensor(v) else v
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.n += 1
        self.tokens += int(batch["attention_mask"].sum())
        self.slots += batch["attention_mask"].numel()

    def flush(self, step: int, lr: float) -> dict[str, Any]:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        record = {"step": step, "lr": lr}
        record.update({k: float(v) / max(self.n, 1) for k, v in self.sums.items()})
        record["tokens_per_s"] = self.tokens / dt
        record["pad_fraction"] = 1 - self.tokens / max(self.slots, 1)
        if torch.cuda.is_available():
            record["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.__init__()
        return record


def _append_metrics(out: Path, record: dict[str, Any], accelerator: Any) -> None:
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


def _truncate_metrics(out: Path, step: int, accelerator: Any) -> None:
    """Drop metrics logged after the checkpoint we resume from (they will be logged again)."""
    path = out / "metrics.jsonl"
    if accelerator.is_main_process and path.exists():
        keep = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
