"""`oreo train`: one `accelerate` loop for OREO and the baselines, resumable to the micro-batch.

CPU, one GPU, or many through ``accelerate launch`` (DDP, FSDP or DeepSpeed from an accelerate
config). The loop never looks at the algorithm's name: it asks the spec
(`oreo_agents.algorithms`) which models to build, how to batch the data and what one
micro-batch's loss is.
Output folder: ``policy/`` (a standard HF folder), ``value/`` (OREO), ``state/`` (optimizers,
schedulers, RNG and the position in the data, for an exact resume) and ``metrics.jsonl``.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration, set_seed

from oreo_agents.algorithms.base import precompute_reference, with_reference
from oreo_agents.data import batches
from oreo_agents.models.loading import load_tokenizer
from oreo_agents.runtime.distributed import check_gpus
from oreo_agents.runtime.provenance import software
from oreo_agents.training.build import build
from oreo_agents.training.checkpoint import (
    CheckpointDir,
    Interrupts,
    TrainingInterrupted,
    load_first,
    note,
    resume_points,
    rng_state,
    set_rng_state,
    write_progress,
)
from oreo_agents.training.config import TrainConfig
from oreo_agents.training.metrics import Meter, Pace, append_metrics, truncate_metrics
from oreo_envs.files import WriterLock

# torch loads with this module: the CLI imports it only when it trains (`oreo --help` and the
# options come from TrainConfig, in training/config.py, which loads no torch).


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
    check_gpus()
    # On a machine without CUDA, accelerate joins a torchrun / accelerate launch process group
    # (gloo) only when told it runs on CPU; otherwise every process would be "rank 0 of 1".
    state = PartialState(cpu=not torch.cuda.is_available())
    # One run writes OUT at a time: two would interleave metrics and overwrite each other's
    # checkpoints, and both would exit 0.
    with WriterLock(cfg.out, rank=state.process_index, world=state.num_processes):
        if cfg.env is not None:  # an online algorithm: collect -> score -> update, per iteration
            return cfg.spec.run_online(cfg, run_train, log=log)
        return _train(cfg, state, log=log, end=end)


def _train(cfg: TrainConfig, state: Any, *, log: Callable[[dict[str, Any]], None] | None,
           end: bool) -> Path:  # fmt: skip
    """`run_train` of an offline algorithm, with the output folder locked (``state``: the
    process group's `accelerate.PartialState`)."""
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
    carried = cfg.spec.optimizer_state(cfg.settings)  # an online update's, from the last one
    if not points and carried:
        _load_optimizers(optimizers, Path(carried))
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

    tensor = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(tensor, reduction="sum").item() > 0)


def _report(run: _Run, record: dict[str, Any], eta_s: float) -> None:
    """The step's record to metrics.jsonl and the trackers; to ``run.log`` with the run's
    ``total_steps`` and the ``eta_s`` seconds left at this process's pace added."""
    append_metrics(Path(run.cfg.out), record, run.accelerator)
    if run.trackers:
        run.accelerator.log(record, step=record["step"])
    due = record["step"] % run.cfg.log_every == 0
    if run.log is not None and due and run.accelerator.is_main_process:
        run.log({**record, "total_steps": run.total_steps, "eta_s": eta_s})


def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []

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
