"""Stepping episodes: the slots of episodes running side by side, how each starts, what the
model continues and how an action advances it and is logged (`advance_all`). The collector
(`oreo_agents.rollout.collect`), ranked acting (`oreo_agents.rollout.ranking`) and value-guided
acting (`oreo_agents.evaluation.acting`) all step episodes through this module."""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Any

import oreo_envs
from oreo_agents.data.episodes import Episode
from oreo_agents.data.inputs import (
    action_segment,
    encode_text,
    policy_prompt_ids,
    split_generation,
    stored_ids,
    tokenizer_id,
)
from oreo_agents.generation.base import derive_seed
from oreo_agents.rollout.agent_prompt import THINK_REPLY, is_think
from oreo_agents.rollout.config import CollectConfig
from oreo_agents.rollout.prompting import Prompter
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
    segments: list[tuple[list[int], list[int]]] | None = None  # a branch's source, as ids
    branch: dict[str, int] | None = None  # a branch's source sample and replayed actions
    # the ids of actions known as text, by action and what follows it (`ranking.action_ids`):
    # ranked acting encodes every admissible action at every step, and most come back
    action_ids: dict[tuple[str, str], list[int]] = field(default_factory=dict)


def fill_slots(
    slots: list[Slot | None], envs: list[Any], pending: list[tuple[str, int]], seed: int,
    prompter: Prompter, tokenizer: Any = None, branches: dict[tuple[str, int], Any] | None = None,
) -> list[int]:  # fmt: skip
    """Start the next pending episodes in the free slots (resets run in parallel in an env
    pool); returns the slots filled. ``branches``: the keys that continue a logged episode
    (`oreo_agents.rollout.branches`)."""
    free = [i for i, s in enumerate(slots) if s is None][: len(pending)]
    keys = [pending.pop() for _ in free]
    started = start_episodes([envs[i] for i in free], keys, seed, prompter, tokenizer, branches)
    for i, slot in zip(free, started, strict=True):
        slots[i] = slot
    return free


def start_episodes(
    envs: list[Any], keys: list[tuple[str, int]], seed: int, prompter: Prompter,
    tokenizer: Any = None, branches: dict[tuple[str, int], Any] | None = None,
) -> list[Slot]:  # fmt: skip
    """Reset each env to its (task, sample); sample ``s`` is seeded ``seed + s``. With the
    policy's ``tokenizer`` the slots keep their contexts as ids. A key of ``branches`` is reset
    as its source episode was, and its source's first actions are replayed (`replay`)."""
    branches = branches or {}
    calls = [
        {"seed": branches[key].reset_seed if key in branches else seed + key[1],
         "options": {"task_id": key[0]}}
        for key in keys
    ]  # fmt: skip
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
            slot.prompt_ids = policy_prompt_ids(tokenizer, prompt, prompter.control)
            slot.ids = list(slot.prompt_ids)
        slots.append(slot)
    replay([s for s in slots if s.key in branches], [branches[s.key] for s in slots
                                                    if s.key in branches])  # fmt: skip
    return slots


_SAME_PROMPT = "collect with the source's --remind-task / --chat-template / --fewshot / --control"


def replay(slots: list[Slot], branches: list[Any]) -> None:
    """Step each slot's env through its branch's logged actions (`oreo_agents.rollout.branches`)
    and log them as the source did, its ids as training reads the source's.

    Raises:
        ValueError: The slot's prompt is not the source's (the branch renders prompts with
            other settings), or a replayed observation differs from the logged one (the env
            does not retrace the episode).
    """
    for slot, branch in zip(slots, branches, strict=True):
        src = branch.source
        if slot.prompt != src.prompt:
            raise ValueError(f"task {src.task_id}: the branch's prompt is not its source's; "
                             f"{_SAME_PROMPT}")  # fmt: skip
        slot.branch = {"sample": int(src.meta["sample"]), "at": branch.at}
        if slot.ids is not None:
            prompt, segments = stored_ids(src, slot.tokenizer)
            if prompt != slot.prompt_ids:
                raise ValueError(f"task {src.task_id}: the source's prompt ids are not the "
                                 "branch's (another tokenizer?)")  # fmt: skip
            slot.segments = segments
    for i in range(max((b.at for b in branches), default=0)):
        moving = [(s, b) for s, b in zip(slots, branches, strict=True) if b.at > i]
        moves = [b.source.steps[i]["action"] for _, b in moving]
        acting = [j for j, (s, _) in enumerate(moving) if not _thinks(s, moves[j])]
        stepped = step_all([moving[j][0].env for j in acting], [moves[j] for j in acting])
        results = {j: r for j, r in zip(acting, stepped, strict=True)}
        for j, (slot, branch) in enumerate(moving):
            _replay_step(slot, branch, i, results.get(j))


def _replay_step(slot: Slot, branch: Any, i: int, result: tuple | None) -> None:
    """Log the source's i-th step in the slot after the env took it (``result``; None for a
    thought, which the env never sees)."""
    logged = branch.source.steps[i]
    if result is not None:
        obs, _, terminated, truncated, info = result
        if obs != logged.get("env_observation", logged["observation"]) or terminated or truncated:
            raise ValueError(f"task {branch.source.task_id}: replaying step {i + 1} of sample "
                             f"{slot.branch['sample']} gave another observation: the env does not "
                             "retrace the logged episode")  # fmt: skip
        slot.env_obs, slot.info = obs, info
    step = {k: logged[k] for k in ("action", "observation", "env_observation") if k in logged}
    if slot.formatter is not None:
        slot.history.append((step["action"], step.get("env_observation", step["observation"])))
    if slot.ids is not None:
        step["action_ids"], step["observation_ids"] = slot.segments[i]
        slot.ids += step["action_ids"] + step["observation_ids"]
    slot.steps.append(step)
    if slot.formatter is not None and slot.formatter.render(slot.first_obs, slot.history) != (
        context(slot)
    ):
        raise ValueError(f"task {branch.source.task_id}: the branch renders the source's step "
                         f"{i + 1} otherwise than it was logged; {_SAME_PROMPT}")  # fmt: skip


def drive_mode(slot: Slot) -> str:
    """How the slot's env is driven: "agent", or an answer env's "response" / "step" (its
    granularity). What kind an env is comes from `oreo_envs.env_kind` alone."""
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
    if drive_mode(slot) != "agent":
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
    slot.eos = reason == "eos" or (reason == "scripted" and drive_mode(slot) != "agent")
    if drive_mode(slot) == "step" and reason == "eos" and not (terminated or truncated):
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
            **({"branch": slot.branch} if slot.branch else {}),
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
        agent = drive_mode(slot) == "agent"
        split = action_segment(tok, step["action"], step["observation"], agent)
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
