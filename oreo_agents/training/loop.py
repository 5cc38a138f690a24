"""`oreo train`: one `accelerate` loop for OREO and the baselines, resumable to the micro-batch.

CPU, one GPU, or many through ``accelerate launch`` (DDP, FSDP or DeepSpeed from an accelerate
config). The loop never looks at the algorithm's name: it asks the spec
(`oreo_agents.algorithms`) which models to build, how to batch the data and what one
micro-batch's loss is.
Output folder: ``policy/`` (a standard HF folder), ``value/`` (OREO), ``state/`` (optimizers,
schedulers, RNG and the position in the data, for an exact resume) and ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# torch and the algorithms load inside the functions: the CLI builds its options from
# TrainConfig when it starts, and `oreo --help` should not wait for torch.


# Fields a resumed run may change: when to stop, save and log, not what it trains.
RESUME_FREE = frozenset({"max_steps", "save_every", "save_minutes", "log_every"})


@dataclass(frozen=True)
class TrainConfig:
    """What `oreo train` runs: the loop's settings, and the algorithm's own (``settings``).
    Defaults follow the OREO paper (Wang et al. 2024, App. A.3) unless a field says otherwise.

    Attributes:
        algo: The algorithm (`oreo_agents.algorithms`: oreo | oreo-step | oreo-response | sft |
            rft | dpo | kto | rcrl | orm | ppo, and plug-ins).
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
        if self.value is not None and not spec.value:
            raise ValueError(f"--value: {self.algo} trains no value model")
        if self.env is not None and self.epochs != 1:
            raise ValueError(f"{self.algo}: passes over each iteration's episodes are "
                             "--set ppo_epochs=N; leave --epochs at 1")  # fmt: skip
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


def run_train(
    cfg: TrainConfig, *, log: Callable[[dict[str, Any]], None] | None = None, end: bool = True
) -> Path:
    """Train and write ``cfg.out``; returns the policy folder. Checks inputs before any compute.

    ``end=False`` keeps the process group of a multi-process job alive afterwards (trackers are
    still closed), for a caller that trains again in the same processes (`run_online`).

    Checkpoints (`oreo_agents.training.checkpoint`) are written every ``save_every`` steps, every
    ``save_minutes``, at the end, and on SIGINT / SIGTERM, each atomically; re-running the same
    command resumes from the last one exactly.

    Raises:
        ValueError: Empty or unusable data, a mismatched tokenizer, an output folder holding
            another run, or a checkpoint that could not be written (the previous one is kept).
        TrainingInterrupted: A signal stopped training after its checkpoint was saved.
    """
    import torch
    from accelerate import PartialState

    from oreo_agents.runtime.distributed import check_gpus
    from oreo_envs.files import WriterLock

    check_gpus()
    # On a machine without CUDA, accelerate joins a torchrun / accelerate launch process group
    # (gloo) only when told it runs on CPU; otherwise every process would be "rank 0 of 1".
    state = PartialState(cpu=not torch.cuda.is_available())
    # One run writes OUT at a time: two would interleave metrics and overwrite each other's
    # checkpoints, and both would exit 0.
    with WriterLock(cfg.out, rank=state.process_index, world=state.num_processes):
        if cfg.env is not None:  # an online algorithm: collect -> score -> update, per iteration
            from oreo_agents.online.driver import run_online

            return run_online(cfg, log=log)
        return _train(cfg, state, log=log, end=end)


def _train(cfg: TrainConfig, state: Any, *, log: Callable[[dict[str, Any]], None] | None,
           end: bool) -> Path:  # fmt: skip
    """`run_train` of an offline algorithm, with the output folder locked (``state``: the
    process group's `accelerate.PartialState`)."""
    import logging

    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    from oreo_agents.data import batches
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.training.build import build
    from oreo_agents.training.checkpoint import CheckpointDir, load_first, note, resume_points
    from oreo_agents.training.metrics import truncate_metrics

    # accelerate warns on every save that tied embeddings are stored once: expected, not news
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)

    out = Path(cfg.out)
    ckpts = CheckpointDir(out)
    points = resume_points(ckpts, cfg)
    tokenizer = load_tokenizer(cfg.model)
    cpu = not torch.cuda.is_available()
    plan = batches.prepare(cfg, tokenizer, state.num_processes)  # bad data fails before compute
    mixed = cfg.mixed_precision or ("no" if cpu else "bf16")
    trackers = _trackers(cfg.report_to)
    accelerator = Accelerator(
        cpu=cpu,
        gradient_accumulation_steps=plan.accumulation,
        mixed_precision=mixed,
        log_with=trackers or None,
        project_dir=str(out) if trackers else None,
        # batch_size is global and each process already reads only its share of every
        # optimizer batch (TrainPlan.micro_batches): with split_batches the prepared schedulers
        # step once per optimizer step, not once per process (which ran the cosine N x fast).
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        ckpts.repair()  # what a kill inside a save left: partial folders, missing exports
    if trackers:
        accelerator.init_trackers("runs", config=_flat(cfg.flat()))
    set_seed(cfg.seed)
    models, optimizers, schedulers = build(cfg, plan.optimizer_steps, accelerator)
    progress = load_first(ckpts, points, accelerator, _agree) if points else None
    total = plan.optimizer_steps  # the steps this run does (max_steps may stop it sooner)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    if progress and accelerator.is_main_process:
        note(_resume_line(out, progress["step"], total))
    if not points and getattr(cfg.settings, "optimizer_state", ""):  # online: Adam carried
        _load_optimizers(optimizers, Path(cfg.settings.optimizer_state))
    truncate_metrics(out, progress["step"] if progress else 0, accelerator)
    run = _Run(cfg, accelerator, models, optimizers, schedulers, tokenizer, ckpts, log, trackers,
               plan.token_ids or {}, total)  # fmt: skip
    _loop(run, plan, progress or {})
    if end:
        accelerator.end_training()
    elif trackers and accelerator.is_main_process:
        for tracker in accelerator.trackers:
            tracker.finish()
    return out / "policy"


@dataclass
class _Run:
    """What the loop works with."""

    cfg: TrainConfig
    accelerator: Any
    models: dict[str, Any]
    optimizers: list[Any]
    schedulers: list[Any]
    tokenizer: Any
    ckpts: Any
    log: Callable[[dict[str, Any]], None] | None
    trackers: list[str]
    token_ids: dict[str, int]  # episodes read with their logged ids / encoded from text
    total_steps: int  # the optimizer steps the run does: all epochs', or max_steps


def _loop(run: _Run, plan: Any, progress: dict[str, Any]) -> None:
    """The micro-batches from the checkpoint's position on; saves as configured, on a signal
    (at the next micro-batch boundary, holding the last optimizer step) and at the end."""
    import signal

    from oreo_agents.algorithms.base import precompute_reference, with_reference
    from oreo_agents.training.checkpoint import (
        Interrupts,
        TrainingInterrupted,
        rng_state,
        set_rng_state,
    )
    from oreo_agents.training.metrics import Meter, Pace

    cfg, accelerator, models = run.cfg, run.accelerator, run.models
    spec = cfg.spec
    settings = spec.finalize(cfg.settings, plan.items)
    trainable = [m for name, m in models.items() if name != "reference"]
    step, done_micro = progress.get("step", 0), progress.get("micro_batches", 0)
    saved = (step, done_micro) if progress else None  # what the current checkpoint holds
    meter = Meter()
    micro_batches = plan.micro_batches(accelerator.num_processes, accelerator.process_index)
    refs: dict[int, Any] = {}
    if spec.precomputes_reference(settings):
        reference = models.pop("reference")
        refs = precompute_reference(reference, micro_batches, done_micro, accelerator.device)
        del reference  # the point: its memory is free for training
    # At each optimizer-step boundary: the micro-batch it starts at, the random state, and
    # accelerate's accumulation counter (save_state stores it and decides from it which
    # micro-batch syncs after a resume).
    boundary, rng, counter = done_micro, rng_state(), accelerator.step
    last_save, pace = time.monotonic(), Pace(step)
    with Interrupts() as interrupts:
        for i in range(done_micro, len(micro_batches)):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            if _agree(accelerator, interrupts.signum is not None):
                # Weights and optimizers are as they were after the last optimizer step;
                # the random state is put back to then, so a resume repeats this step exactly.
                set_rng_state(rng)
                accelerator.step = counter
                if saved != (step, boundary):
                    _save(run, step, boundary)
                # a process that got no signal itself was stopped by one sent to another
                raise TrainingInterrupted(interrupts.signum or signal.SIGTERM, step)
            if i == boundary:  # the rate this optimizer step uses (the scheduler moves after it)
                lr = run.schedulers[0].get_last_lr()[0]
            batch = _to(with_reference(micro_batches[i], refs.pop(i, None)), accelerator.device)
            with accelerator.accumulate(*trainable):
                loss, metrics = spec.step(models, batch, settings)
                accelerator.backward(loss)
                meter.add(batch, metrics)
                if accelerator.sync_gradients:
                    for model in trainable:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                for opt, sched in zip(run.optimizers, run.schedulers, strict=True):
                    opt.step()
                    sched.step()
                    opt.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step, boundary, rng, counter = step + 1, i + 1, rng_state(), accelerator.step
            record = meter.flush(step, lr, accelerator)
            _report(run, record, pace.eta(step, run.total_steps))
            timely = cfg.save_minutes and time.monotonic() - last_save >= 60 * cfg.save_minutes
            if _agree(accelerator, bool(cfg.save_every and step % cfg.save_every == 0 or timely)):
                _save(run, step, boundary)
                saved, last_save = (step, boundary), time.monotonic()
    if saved != (step, boundary):
        _save(run, step, boundary)


def _load_optimizers(optimizers: list[Any], state: Path) -> None:
    """Each optimizer's state from an accelerate ``state/`` folder (``optimizer.bin``,
    ``optimizer_1.bin``, ... in `build`'s order), nothing else of it.

    Raises:
        ValueError: The folder lacks an optimizer's file, or it holds other parameters.
    """
    import torch

    for i, opt in enumerate(optimizers):
        path = state / ("optimizer.bin" if i == 0 else f"optimizer_{i}.bin")
        if not path.exists():
            raise ValueError(f"{path} is missing: no optimizer state to carry over")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        shapes = [len(g["params"]) for g in saved["param_groups"]]
        if shapes != [len(g["params"]) for g in opt.param_groups]:
            raise ValueError(f"{path} holds the state of other parameters ({shapes} per group)")
        opt.load_state_dict(saved)


def _agree(accelerator: Any, flag: bool) -> bool:
    """``flag`` on any process, so that all processes save (or stop) at the same micro-batch."""
    if accelerator.num_processes == 1:
        return flag
    import torch

    tensor = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(tensor, reduction="sum").item() > 0)


def _report(run: _Run, record: dict[str, Any], eta_s: float) -> None:
    """The step's record to metrics.jsonl and the trackers; to ``run.log`` with the run's
    ``total_steps`` and the ``eta_s`` seconds left at this process's pace added."""
    from oreo_agents.training.metrics import append_metrics

    append_metrics(Path(run.cfg.out), record, run.accelerator)
    if run.trackers:
        run.accelerator.log(record, step=record["step"])
    due = record["step"] % run.cfg.log_every == 0
    if run.log is not None and due and run.accelerator.is_main_process:
        run.log({**record, "total_steps": run.total_steps, "eta_s": eta_s})


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


def _resume_line(out: Path, step: int, total: int) -> str:
    if step >= total:
        return f"{out} is finished (step {step} of {total}); nothing to train"
    return f"resuming {out} from step {step} of {total}"


def _save(run: _Run, step: int, micro_batches: int) -> None:
    """One atomic checkpoint (`CheckpointDir.save`): every process's accelerate state, then the
    main process's policy, value model and progress record."""
    from oreo_agents.runtime.provenance import software
    from oreo_agents.training.checkpoint import write_progress

    accelerator = run.accelerator

    def write(folder: Path) -> None:
        accelerator.save_state(str(folder / "state"))
        if not accelerator.is_main_process:
            return
        accelerator.unwrap_model(run.models["policy"]).save_pretrained(folder / "policy")
        run.tokenizer.save_pretrained(folder / "policy")
        if "value" in run.models:
            accelerator.unwrap_model(run.models["value"]).save_pretrained(folder / "value")
            run.tokenizer.save_pretrained(folder / "value")
        progress = {
            "algo": run.cfg.algo,
            "step": step,
            "micro_batches": micro_batches,
            "config": run.cfg.flat(),
            "token_ids": run.token_ids,
            "software": software(),
        }
        write_progress(folder, progress)

    run.ckpts.save(
        step, write, main=accelerator.is_main_process, barrier=accelerator.wait_for_everyone
    )


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: (_to(v, device) if isinstance(v, dict) else v.to(device)) for k, v in batch.items()}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
