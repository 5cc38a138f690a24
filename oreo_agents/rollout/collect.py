"""Run a policy in N envs x K samples per task and log every episode (the offline RL data).

Episodes advance in lock-step: each round, every active episode needs one action, and all of
them are generated in one batched backend call, so the model never sees one prompt at a time.
Three kinds of env are driven the same way:

- single-shot math (``granularity="response"``): one generation is the whole episode;
- step-level math (``granularity="step"``): generate until the env's step delimiter, feed it
  back, repeat; a generation that ends in EOS finishes the episode;
- multi-turn agent envs (``info["admissible_actions"]``, ALFWorld style): the conversation so far
  is the prompt, the action is the generation's first line, optionally snapped to the closest
  admissible action.

A scripted policy (``policy(observation, info) -> action``, e.g. ALFWorld's walkthrough expert)
can stand in for the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oreo_agents.data.episodes import Episode, EpisodeWriter, load_episodes
from oreo_agents.data.inputs import tokenizer_id
from oreo_agents.generation import Backend, SamplingParams
from oreo_agents.rollout import stepping
from oreo_agents.rollout.agent_prompt import AgentPrompt
from oreo_agents.rollout.branches import Branch, plan_branches
from oreo_agents.rollout.config import CollectConfig
from oreo_agents.rollout.prompting import make_prompter
from oreo_agents.rollout.ranking import ranked_actions
from oreo_agents.rollout.scripted import SCRIPTED, ScriptedPolicy, check_scripted
from oreo_agents.rollout.stepping import Slot
from oreo_agents.runtime.distributed import rank_world, wait_for_everyone


@dataclass
class CollectStats:
    """Running totals for progress display and the summary."""

    episodes: int = 0
    successes: int = 0
    tokens: int = 0
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, episode: Episode) -> None:
        self.episodes += 1
        self.successes += int(episode.success)
        self.steps += len(episode.steps)
        self.tokens += episode.meta["generated_tokens"]

    def rates(self) -> dict[str, float]:
        dt = max(time.perf_counter() - self.started, 1e-9)
        return {
            "episodes_per_s": self.episodes / dt,
            "tokens_per_s": self.tokens / dt,
            "success_rate": self.successes / self.episodes if self.episodes else 0.0,
        }


def select_tasks(task_ids: list[str], n: int | None, seed: int) -> list[str]:
    """All tasks, or a seeded sample of ``n`` (the same for the same seed, so resume agrees)."""
    if n is None or n >= len(task_ids):
        return list(task_ids)
    order = np.random.default_rng(seed).permutation(len(task_ids))[:n]
    return [task_ids[i] for i in order]


def run_collect(
    cfg: CollectConfig,
    make_env: Callable[[], Any],
    *,
    backend: Backend | None = None,
    scripted: Callable[[Any], ScriptedPolicy] | None = None,
    agent_prompt: AgentPrompt | None = None,
    on_episode: Callable[[Episode, CollectStats], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> CollectStats:
    """Collect ``cfg.samples`` episodes for each selected task into ``cfg.out``. Under a
    multi-process launcher each rank runs every world-th task and writes its own shards.

    Args:
        cfg: The run's settings.
        make_env: Builds one env instance (``batch_size`` of them run side by side).
        backend: The generator (when ``scripted`` is None).
        scripted: A factory taking an env and returning a scripted policy for it.
        agent_prompt: Formats agent envs' interactions (an `AgentPrompt`; default: a plain
            ReAct-style transcript, with thoughts when ``cfg.think``). Its rendering (through
            the tokenizer's chat template with ``cfg.chat_template``) is what the model sees
            and what is stored.
        on_episode: Called after each episode is stored (progress display).
        on_plan: Called once with (episodes to run now, episodes already in the store).

    Returns:
        Totals of this run (episodes already in the store from earlier runs are not counted).
    """
    if (backend is None) == (scripted is None):
        raise ValueError("pass exactly one of backend and scripted")
    tokenizer = getattr(backend, "tokenizer", None)
    first = make_env()
    chat_messages = getattr(backend, "chat_messages", False)
    prompter = make_prompter(cfg, tokenizer, agent_prompt, first, chat_messages=chat_messages)
    if scripted is not None and cfg.model in SCRIPTED:
        check_scripted(cfg.model, first, cfg.env)
    branches = _branches(cfg)
    if branches is None:
        universe = list(first.unwrapped.task_ids)
    else:  # the source's tasks, in its order
        universe = list(dict.fromkeys(b.source.task_id for b in branches.values()))
    chosen = select_tasks(universe, cfg.tasks, cfg.seed)
    rank, world = rank_world()  # under torchrun / accelerate launch: every world-th task
    mine = chosen[rank::world]
    manifest = _manifest(cfg, backend, tokenizer, prompter, len(chosen), branches is not None)
    stats = CollectStats()
    # The examples change every prompt: a store of other examples is another run's.
    resume_keys = ("env_id", "env_options", "model", "sampling", "seed", "fewshot", "branch")
    writer = EpisodeWriter(cfg.out, manifest, resume_keys=resume_keys, rank=rank, world=world)
    with writer:
        if branches is None:
            keys = [(t, s) for t in mine for s in range(cfg.samples)]
        else:
            by_task: dict[str, list[tuple[str, int]]] = {}
            for key in sorted(branches):  # a task's branches, in their order
                by_task.setdefault(key[0], []).append(key)
            keys = [key for t in mine for key in by_task.get(t, [])]
        pending = [key for key in keys if key not in writer.done]
        pending.reverse()  # pop() from the end keeps task order
        if on_plan is not None:
            on_plan(len(pending), len(writer.done))
        n = min(cfg.batch_size, len(pending))
        envs, close_envs = make_envs(make_env, n, cfg.env_workers if n else 0, first)
        try:
            for episode in _lockstep(cfg, envs, pending, backend, scripted, prompter, branches):
                writer.write(episode)
                stats.add(episode)
                if on_episode is not None:
                    on_episode(episode, stats)
        finally:
            close_envs()
            if prompter.fewshot is not None:
                prompter.fewshot.close()
        # Rank 0 counts every rank's shards into the manifest when its writer closes: only
        # once all have written (a rank that finished first counted 6 of 10 episodes).
        wait_for_everyone()
    return stats


def _manifest(cfg, backend, tokenizer, prompter, tasks: int, branched: bool) -> dict[str, Any]:
    """The store's manifest: what makes two runs the same run (``resume_keys`` among them)."""
    return {
        "env_id": cfg.env,
        "env_options": cfg.env_options,
        "model": cfg.model,
        "backend": backend.name if backend is not None else "scripted",
        "sampling": cfg.sampling(),
        "seed": cfg.seed,
        "samples": cfg.samples,
        "tasks": tasks,
        "chat_template": cfg.chat_template,
        "tokenizer": tokenizer_id(tokenizer) if tokenizer is not None else None,
        # only when on, so that stores made before the option resume (None == None)
        **({"fewshot": prompter.fewshot.describe()} if prompter.fewshot else {}),
        **({"branch": {"from": cfg.branch_from, "states": cfg.branch_states}} if branched else {}),
    }


def _branches(cfg: CollectConfig) -> dict[tuple[str, int], Branch] | None:
    """The branches of ``cfg.branch_from`` by key (`oreo_agents.rollout.branches`); None
    without it.

    Raises:
        ValueError: The source holds no episode, or another env's.
    """
    if cfg.branch_from is None:
        return None
    source = load_episodes(cfg.branch_from)
    if not source:
        raise ValueError(f"--branch-from {cfg.branch_from}: no episodes there")
    other = {e.env_id for e in source} - {cfg.env}
    if other:
        raise ValueError(f"--branch-from {cfg.branch_from} holds episodes of {sorted(other)}, "
                         f"not of --env {cfg.env}")  # fmt: skip
    return plan_branches(source, cfg.branch_states, cfg.samples, cfg.seed)


def _lockstep(cfg, envs, pending, backend, scripted, prompter, branches) -> Iterator[Episode]:
    """Run the ``pending`` (task, sample) episodes side by side in ``envs``, one batched action
    per round for every running episode; yield each episode as it finishes."""
    policies = [scripted(e) for e in envs] if scripted else None
    tokenizer = getattr(backend, "tokenizer", None)
    slots: list[Slot | None] = [None] * len(envs)
    while pending or any(slots):
        stepping.fill_slots(slots, envs, pending, cfg.seed, prompter, tokenizer, branches)
        active = [i for i, s in enumerate(slots) if s is not None]
        if policies is not None:
            actions = [
                (policies[i](slots[i].env_obs, slots[i].info), 0, "scripted", None) for i in active
            ]
        elif cfg.rank_actions:
            actions = ranked_actions(backend, [slots[i] for i in active], cfg)
        else:
            actions = _generate(backend, [slots[i] for i in active], cfg)
        finished = stepping.advance_all([slots[i] for i in active], actions, cfg)
        for i, episode in zip(active, finished, strict=True):
            if episode is not None:
                slots[i] = None
                yield episode


def make_envs(make_env: Callable[[], Any], n: int, workers: int, first: Any):
    """``n`` envs (``first`` among them; at least one): in this process, or spread over
    ``workers`` worker processes (`oreo_envs.vector.EnvPool`). Returns (envs, close)."""
    n = max(n, 1)
    if workers:
        from oreo_envs.vector import EnvPool

        pool = EnvPool(make_env, n, workers, template=first)
        return pool.envs, pool.close
    envs = [first] + [make_env() for _ in range(n - 1)]

    def close() -> None:
        for env in envs:
            env.close()

    return envs, close


def _generate(backend: Backend, slots: list[Slot], cfg: CollectConfig):
    """One batched call per kind of stop rule; returns (action, tokens, finish reason,
    completion)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for j, slot in enumerate(slots):
        kind = stepping.drive_mode(slot)
        if kind == "step":
            stop = tuple(slot.env.unwrapped.step_delimiters)
        elif kind == "agent":
            stop = ("\n",)
        else:
            stop = ()
        groups.setdefault(stop, []).append(j)
    out: list[tuple | None] = [None] * len(slots)
    for stop, members in groups.items():
        params = SamplingParams(
            n=1,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            stop=stop,
        )
        seeds = [stepping.episode_seed(cfg.seed, slots[j]) for j in members]
        completions = backend.generate(
            [stepping.model_input(slots[j]) for j in members], params, seeds
        )
        for j, (c,) in zip(members, completions, strict=True):
            out[j] = (c.text, len(c.token_ids), c.finish_reason, c)
            slots[j].eos_id = c.eos_id  # which of the model's EOS ids, when it stopped
    return out


def summarize(out_dir: str) -> dict[str, Any]:
    """Episodes, success rate, pass@K over tasks and mean length of a whole store."""
    episodes = load_episodes(out_dir)
    by_task: dict[str, list[Episode]] = {}
    for ep in episodes:
        by_task.setdefault(ep.task_id, []).append(ep)
    n = len(episodes)
    return {
        "episodes": n,
        "tasks": len(by_task),
        "success_rate": sum(e.success for e in episodes) / n if n else 0.0,
        "pass_at_k": (
            sum(any(e.success for e in eps) for eps in by_task.values()) / len(by_task)
            if by_task
            else 0.0
        ),
        "k": max((len(eps) for eps in by_task.values()), default=0),
        "mean_steps": sum(len(e.steps) for e in episodes) / n if n else 0.0,
        "mean_tokens": (sum(e.meta.get("generated_tokens", 0) for e in episodes) / n if n else 0.0),
    }
