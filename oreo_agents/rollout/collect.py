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

import difflib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import oreo_envs
from oreo_agents.data.episodes import Episode, EpisodeWriter, load_episodes
from oreo_agents.data.inputs import (
    action_segment,
    encode_prompt,
    encode_text,
    split_generation,
    tokenizer_id,
    with_control,
)
from oreo_agents.distributed import rank_world, wait_for_everyone
from oreo_agents.generation import Backend, SamplingParams
from oreo_agents.generation.base import derive_seed
from oreo_agents.rollout.agent_prompt import THINK_REPLY, AgentPrompt, is_think
from oreo_agents.rollout.config import CollectConfig
from oreo_agents.rollout.prompting import Prompter, make_prompter
from oreo_agents.rollout.scripted import SCRIPTED, ScriptedPolicy, check_scripted
from oreo_envs.vector import reset_all, step_all


@dataclass
class Slot:
    """One running episode."""

    env: Any
    key: tuple[str, int]
    prompt: str
    info: dict[str, Any]
    steps: list[dict[str, str]] = field(default_factory=list)
    tokens: int = 0
    eos: bool = False
    eos_id: int | None = None  # the EOS id the model emitted last
    started: float = field(default_factory=time.time)
    env_obs: str = ""  # the env's latest raw observation (what scripted policies read)
    first_obs: str = ""
    formatter: Any = None  # agent envs: the Prompter that renders the conversation
    fewshot: list[str] = field(default_factory=list)  # the games shown as examples
    history: list[tuple[str, str]] = field(default_factory=list)
    # With a model's tokenizer the slot keeps its context as ids (`oreo_agents.data.inputs`):
    # the prompt's, then each action's as generated and each observation's.
    tokenizer: Any = None
    prompt_ids: list[int] | None = None
    ids: list[int] | None = None
    reencoded: int = 0  # actions logged as encoded text, not as generated (parsed, snapped)


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
    chosen = select_tasks(list(first.unwrapped.task_ids), cfg.tasks, cfg.seed)
    rank, world = rank_world()  # under torchrun / accelerate launch: every world-th task
    mine = chosen[rank::world]
    manifest = {
        "env_id": cfg.env,
        "env_options": cfg.env_options,
        "model": cfg.model,
        "backend": backend.name if backend is not None else "scripted",
        "sampling": cfg.sampling(),
        "seed": cfg.seed,
        "samples": cfg.samples,
        "tasks": len(chosen),
        "chat_template": cfg.chat_template,
        "tokenizer": tokenizer_id(tokenizer) if tokenizer is not None else None,
        # only when on, so that stores made before the option resume (None == None)
        **({"fewshot": prompter.fewshot.describe()} if prompter.fewshot else {}),
    }
    stats = CollectStats()
    # The examples change every prompt: a store of other examples is another run's.
    resume_keys = ("env_id", "env_options", "model", "sampling", "seed", "fewshot")
    writer = EpisodeWriter(cfg.out, manifest, resume_keys=resume_keys, rank=rank, world=world)
    with writer:
        pending = [(t, s) for t in mine for s in range(cfg.samples) if (t, s) not in writer.done]
        pending.reverse()  # pop() from the end keeps task order
        if on_plan is not None:
            on_plan(len(pending), len(writer.done))
        n = min(cfg.batch_size, len(pending))
        envs, close_envs = make_envs(make_env, n, cfg.env_workers if n else 0, first)
        try:
            for episode in _lockstep(cfg, envs, pending, backend, scripted, prompter):
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


def _lockstep(cfg, envs, pending, backend, scripted, prompter) -> Iterator[Episode]:
    """Run the ``pending`` (task, sample) episodes side by side in ``envs``, one batched action
    per round for every running episode; yield each episode as it finishes."""
    policies = [scripted(e) for e in envs] if scripted else None
    tokenizer = getattr(backend, "tokenizer", None)
    slots: list[Slot | None] = [None] * len(envs)
    while pending or any(slots):
        fill_slots(slots, envs, pending, cfg.seed, prompter, tokenizer)
        active = [i for i, s in enumerate(slots) if s is not None]
        if policies is not None:
            actions = [
                (policies[i](slots[i].env_obs, slots[i].info), 0, "scripted", None) for i in active
            ]
        elif cfg.rank_actions:
            from oreo_agents.rollout.ranking import ranked_actions  # it builds on this module

            actions = ranked_actions(backend, [slots[i] for i in active], cfg)
        else:
            actions = _generate(backend, [slots[i] for i in active], cfg)
        finished = advance_all([slots[i] for i in active], actions, cfg)
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


def fill_slots(
    slots: list[Slot | None], envs: list[Any], pending: list[tuple[str, int]], seed: int,
    prompter: Prompter, tokenizer: Any = None,
) -> list[int]:  # fmt: skip
    """Start the next pending episodes in the free slots (resets run in parallel in an env
    pool); returns the slots filled."""
    free = [i for i, s in enumerate(slots) if s is None][: len(pending)]
    keys = [pending.pop() for _ in free]
    started = start_episodes([envs[i] for i in free], keys, seed, prompter, tokenizer)
    for i, slot in zip(free, started, strict=True):
        slots[i] = slot
    return free


def start_episodes(
    envs: list[Any], keys: list[tuple[str, int]], seed: int, prompter: Prompter,
    tokenizer: Any = None,
) -> list[Slot]:  # fmt: skip
    """Reset each env to its (task, sample); sample ``s`` is seeded ``seed + s``. With the
    policy's ``tokenizer`` the slots keep their contexts as ids."""
    calls = [{"seed": seed + sample, "options": {"task_id": task}} for task, sample in keys]
    slots = []
    for env, key, (obs, info) in zip(envs, keys, reset_all(envs, calls), strict=True):
        kind = oreo_envs.env_kind(env)
        episode_prompter = prompter.for_task(key[0], info) if kind == "agent" else prompter
        prompt = episode_prompter.first(kind, obs, info)
        if kind == "agent" and prompter.control:
            raise ValueError("--control conditions answer envs' prompts, not agent envs'")
        slot = Slot(env=env, key=key, prompt=prompter.control + prompt, info=info, env_obs=obs,
                    first_obs=obs)  # fmt: skip
        if kind == "agent":
            slot.formatter, slot.fewshot = episode_prompter, episode_prompter.example_ids
        if tokenizer is not None:  # the control text is a segment of its own, as in training
            slot.tokenizer = tokenizer
            slot.prompt_ids = with_control(
                tokenizer, encode_prompt(tokenizer, prompt), prompter.control
            )
            slot.ids = list(slot.prompt_ids)
        slots.append(slot)
    return slots


def env_kind(slot: Slot) -> str:
    """How the slot's env is driven: "agent", or an answer env's "response" / "step"."""
    if oreo_envs.env_kind(slot.env) == "agent":
        return "agent"
    return slot.env.unwrapped.granularity


def context(slot: Slot) -> str:
    """The exact text the model continues: prompt + action_1 + observation_1 + ..."""
    return slot.prompt + "".join(s["action"] + s["observation"] for s in slot.steps)


def model_input(slot: Slot) -> str | list[int] | list[dict[str, str]]:
    """What the backend continues: the context's ids when the slot keeps them, else its text,
    or an agent's conversation as chat messages when the prompter sends them."""
    if slot.formatter is not None and slot.formatter.chat_messages:
        return slot.formatter.messages(slot.first_obs, slot.history)
    return slot.ids if slot.ids is not None else context(slot)


def _generate(backend: Backend, slots: list[Slot], cfg: CollectConfig):
    """One batched call per kind of stop rule; returns (action, tokens, finish reason,
    completion)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for j, slot in enumerate(slots):
        kind = env_kind(slot)
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
        seeds = [episode_seed(cfg.seed, slots[j]) for j in members]
        completions = backend.generate([model_input(slots[j]) for j in members], params, seeds)
        for j, (c,) in zip(members, completions, strict=True):
            out[j] = (c.text, len(c.token_ids), c.finish_reason, c)
            slots[j].eos_id = c.eos_id  # which of the model's EOS ids, when it stopped
    return out


def episode_seed(seed: int, slot: Slot) -> int:
    """The sampling seed of a slot's next generation: a function of (run seed, task, sample,
    step) only, so a resumed, re-batched or sharded run samples exactly the same episodes."""
    return derive_seed(seed, *slot.key, len(slot.steps))


def advance_all(
    slots: list[Slot], actions: list[tuple], cfg: CollectConfig
) -> list[Episode | None]:
    """Step each slot's env with its (action, tokens, finish reason, completion or None); the
    finished `Episode`s, None for those still running. The steps run in parallel when the envs
    live in an env pool."""
    moves = [_env_action(slot, a[0], cfg) for slot, a in zip(slots, actions, strict=True)]
    thinking = [_thinks(slot, move) for slot, move in zip(slots, moves, strict=True)]
    acting = [i for i, t in enumerate(thinking) if not t]
    stepped = step_all([slots[i].env for i in acting], [moves[i] for i in acting])
    results: list[tuple] = [_thought_result(s) for s in slots]  # replaced where the env acts
    for i, result in zip(acting, stepped, strict=True):
        results[i] = result
    return [
        _record(slot, move, generated, result, cfg)
        for slot, move, generated, result in zip(slots, moves, actions, results, strict=True)
    ]


def _thinks(slot: Slot, action: str) -> bool:
    """Whether an agent's action is a thought its prompt allows (``AgentPrompt(think=True)``):
    the env never sees it."""
    return slot.formatter is not None and slot.formatter.think and is_think(action)


def _thought_result(slot: Slot) -> tuple:
    """The step result of a thought: `THINK_REPLY`, no reward, the env's state unchanged. A
    thought takes a turn of the env's step limit, as in ReAct's ALFWorld runs (Yao et al. 2023,
    whose 50-turn loop counts thoughts), so an agent that only thinks is still cut off."""
    limit = getattr(slot.env.spec, "max_episode_steps", None) if slot.env.spec else None
    truncated = limit is not None and len(slot.steps) + 1 >= limit
    return THINK_REPLY, 0.0, False, truncated, slot.info


def _env_action(slot: Slot, action: str, cfg: CollectConfig) -> str:
    """An agent's action is its first line, optionally snapped to an admissible action."""
    if env_kind(slot) != "agent":
        return action
    action = action.strip().split("\n")[0].strip()
    admissible = slot.info.get("admissible_actions") or []
    if cfg.constrain_actions and admissible and action not in admissible:
        close = difflib.get_close_matches(action, admissible, n=1, cutoff=0.0)
        action = close[0] if close else admissible[0]
    return action


def _record(slot: Slot, action: str, generated: tuple, result: tuple, cfg):
    """Log one step's result in the slot; the finished `Episode`, or None while it runs."""
    env = slot.env
    _, n_tokens, reason, completion = generated
    obs, reward, terminated, truncated, info = result
    slot.env_obs = obs
    step = {"action": action, "observation": _segment(slot, action, obs)}
    if slot.formatter is not None:
        step["env_observation"] = obs  # the raw reply, before formatting
    slot.steps.append(step)
    slot.tokens += n_tokens
    slot.info = info
    # A scripted non-agent policy (gold solutions) writes complete answers, as if it ended in
    # EOS; agents' actions are lines, never followed by EOS.
    slot.eos = reason == "eos" or (reason == "scripted" and env_kind(slot) != "agent")
    if env_kind(slot) == "step" and reason == "eos" and not (terminated or truncated):
        # The model stopped mid-solution: tell the env (an empty step means EOS).
        obs, reward, terminated, truncated, info = env.step("")
        slot.steps[-1]["observation"] += obs
    if slot.ids is not None:
        _log_ids(slot, completion)
    if not (terminated or truncated):
        return None
    return Episode(
        env_id=cfg.env,
        task_id=slot.key[0],
        prompt=slot.prompt,
        steps=slot.steps,
        reward=float(reward),
        success=bool(info.get("success", reward > 0)),
        terminated=bool(terminated),
        truncated=bool(truncated),
        info=_json_info(info) | ({"first_observation": slot.first_obs} if slot.formatter else {}),
        prompt_ids=slot.prompt_ids,
        meta={
            "model": cfg.model,
            **_ids_meta(slot),
            "sampling": cfg.sampling(),
            "seed": cfg.seed,
            "sample": slot.key[1],
            **({"fewshot": slot.fewshot} if slot.fewshot else {}),
            "eos": slot.eos,
            **({"eos_id": slot.eos_id} if slot.eos and slot.eos_id is not None else {}),
            "generated_tokens": slot.tokens,
            "started": slot.started,
            "finished": time.time(),
        },
    )


def _log_ids(slot: Slot, completion: Any) -> None:
    """Log the last step's ids and extend the slot's context with them: the generated ids where
    the logged action is what was generated (`split_generation`) and the backend has them (not
    `Completion.text_only`), else the action encoded."""
    tok, step = slot.tokenizer, slot.steps[-1]
    split = None
    if completion is not None and not completion.text_only:
        split = split_generation(
            tok, completion.token_ids, completion.text, completion.eos_id,
            step["action"], step["observation"],
        )  # fmt: skip
    if split is None:  # encoded as training encodes an episode without ids
        split = action_segment(tok, step["action"], step["observation"], env_kind(slot) == "agent")
        slot.reencoded += 1
    step["action_ids"], step["observation_ids"] = split[0], encode_text(tok, split[1])
    slot.ids += step["action_ids"] + step["observation_ids"]


def _ids_meta(slot: Slot) -> dict[str, Any]:
    if slot.tokenizer is None:
        return {}
    return {"tokenizer": tokenizer_id(slot.tokenizer), "reencoded_actions": slot.reencoded}


def _segment(slot: Slot, action: str, obs: str) -> str:
    """What follows the action in the model's context: the raw observation, or for agent envs
    the formatter's rendering of it (so ``prompt + actions + observations`` stays exact)."""
    if slot.formatter is None:
        return obs
    before = context(slot) + action
    slot.history.append((action, obs))
    after = slot.formatter.render(slot.first_obs, slot.history)
    if not after.startswith(before):
        raise ValueError("the agent prompt's rendering is not append-only; cannot log it exactly")
    return after[len(before) :]


def _json_info(info: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe scalar fields of the last info and its lists of flags (e.g. Chain's
    per-line ``line_correct``); other lists (admissible actions) are dropped."""
    keep = (str, int, float, bool, type(None))

    def kept(v: Any) -> bool:
        return isinstance(v, keep) or (isinstance(v, list) and all(isinstance(x, bool) for x in v))

    return {k: v for k, v in info.items() if kept(v)}


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
