"""Value-guided acting in agent envs (OREO, Wang et al. 2024, Sec. 4.3, ALFWorld best-of-K).

At each step of each episode, take K candidate actions (K sampled generations, or every
admissible action), score each resulting conversation (context + action) with the value model,
and play the best. Episodes run in lock-step across env instances, as in
`oreo_agents.rollout.collect`, whose episode bookkeeping (prompt rendering, stepping, the
`Episode` record) is reused so an acted episode is stored exactly like a collected one. A
candidate's state is the context's ids plus the ids the policy generated for it (its closing
newline or end-of-turn token included, `oreo_agents.data.inputs.split_generation`), the ids a
logged episode that took it holds; an admissible action is encoded as training encodes an
action known only as text, with its newline (`oreo_agents.data.inputs.action_segment`). The value
is read just before that closing token, the last state of the action that training fits
(`_values`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from oreo_agents.data.episodes import Episode
from oreo_agents.data.inputs import split_generation
from oreo_agents.evaluation.search import ValueFn
from oreo_agents.generation import Backend, SamplingParams
from oreo_agents.rollout.agent_prompt import AgentPrompt, parse_action
from oreo_agents.rollout.collect import make_envs
from oreo_agents.rollout.config import CollectConfig
from oreo_agents.rollout.prompting import make_prompter
from oreo_agents.rollout.ranking import action_ids, following_action, score_admissible
from oreo_agents.rollout.stepping import (
    Slot,
    advance_all,
    drive_mode,
    episode_seed,
    fill_slots,
    model_input,
)


def act_with_value(
    cfg: CollectConfig,
    make_env: Callable[[], Any],
    task_ids: Sequence[str],
    *,
    backend: Backend | None,
    value_fn: ValueFn,
    k: int,
    admissible: bool = False,
    agent_prompt: AgentPrompt | None = None,
    on_episode: Callable[[Episode], None] | None = None,
) -> list[Episode]:
    """One value-guided episode per task (``cfg.samples`` is ignored).

    Args:
        cfg: Env, sampling (``temperature``, ``max_new_tokens``), ``batch_size`` and ``seed``.
        make_env: Builds one env instance (an agent env with ``admissible_actions``).
        task_ids: The tasks to play, in order.
        backend: The policy's generator (unused with ``admissible``).
        value_fn: Scores states (token ids; its ``tokenizer`` encodes them without a backend).
        k: Candidate actions sampled per step (with ``cfg.rank_actions``: the policy's K most
            likely admissible actions).
        admissible: Score every admissible action instead of sampling.
        agent_prompt: Formats the conversation (default: `AgentPrompt` with ``cfg.think`` and
            ``cfg.remind_task``, as collect).
        on_episode: Called after each finished episode (progress display).

    Returns:
        The episodes, in task order; ``meta["candidates"]`` counts the actions scored.

    Raises:
        ValueError: The env is not an agent env, or neither a backend nor ``admissible``.
    """
    if backend is None and not admissible:
        raise ValueError("value-guided acting samples actions from a policy: pass a backend")
    tokenizer = getattr(backend, "tokenizer", None) or value_fn.tokenizer
    first = make_env()
    prompter = make_prompter(cfg, tokenizer, agent_prompt, first)
    pending = [(t, 0) for t in reversed(task_ids)]
    n = min(cfg.batch_size, len(pending))
    envs, close_envs = make_envs(make_env, n, cfg.env_workers, first)
    try:
        done = _act(
            cfg, envs, pending, backend, value_fn, k, admissible, prompter, tokenizer, on_episode
        )
    finally:
        close_envs()
        if prompter.fewshot is not None:
            prompter.fewshot.close()
    return [done[t] for t in task_ids]


def _act(cfg, envs, pending, backend, value_fn, k, admissible, prompter, tokenizer, on_episode):
    """The lock-step loop of `act_with_value`; returns {task id: episode}."""
    slots: list[Any] = [None] * len(envs)
    done: dict[str, Episode] = {}
    counts: dict[str, int] = {}
    while pending or any(slots):
        for i in fill_slots(slots, envs, pending, cfg.seed, prompter, tokenizer):
            if drive_mode(slots[i]) != "agent":
                raise ValueError(f"{cfg.env} is not an agent env (no admissible actions)")
        active = [i for i, s in enumerate(slots) if s is not None]
        if admissible:
            candidates = [
                [(a, 0, None) for a in slots[i].info["admissible_actions"]] for i in active
            ]
        elif cfg.rank_actions:
            candidates = _top_actions(backend, [slots[i] for i in active], cfg, k)
        else:
            candidates = _sample_actions(backend, [slots[i] for i in active], cfg, k)
        flat = [(i, c) for i, cands in zip(active, candidates, strict=True) for c in cands]
        scores = _values(value_fn, [(slots[i], c) for i, c in zip(active, candidates, strict=True)])
        best: dict[int, tuple[float, tuple]] = {}
        for (i, cand), v in zip(flat, scores, strict=True):
            if i not in best or v > best[i][0]:  # ties go to the first (most likely) candidate
                best[i] = (v, cand)
        moves = []
        for i, cands in zip(active, candidates, strict=True):
            action, _, completion = best[i][1] if i in best else ("", 0, None)
            moves.append((action, sum(c[1] for c in cands), "stop", completion))
        finished = advance_all([slots[i] for i in active], moves, cfg)
        for i, cands, episode in zip(active, candidates, finished, strict=True):
            key = slots[i].key[0]
            counts[key] = counts.get(key, 0) + len(cands)
            if episode is not None:
                episode.meta["candidates"] = counts[key]
                done[key] = episode
                slots[i] = None
                if on_episode is not None:
                    on_episode(episode)
    return done


def _values(value_fn: Any, states: list[tuple[Slot, list[tuple]]]) -> list[float]:
    """The value of each candidate after its slot's context, in order: through the scorer's
    cached context (`ValueScorer.values_after`) when it has one, else of whole states.

    A candidate is scored at the state just before its last token (its closing newline or
    end-of-turn), not after it. Training fits V only at states whose next token is an action
    token (`oreo_agents.losses.oreo`: ``values[b, t]`` is the state before action token t), and
    in an agent episode the token after an action's last one is the env's reply, so the state
    after the whole action is one the value model never saw. The state before the closing
    token holds all of the action's words, and it is trained."""
    ids = [(slot, [_candidate_ids(slot, *c)[:-1] for c in cands]) for slot, cands in states]
    after = getattr(value_fn, "values_after", None)
    if after is None:
        return value_fn([slot.ids + c for slot, cands in ids for c in cands])
    value_fn.keep_contexts(len(states))
    return [v for slot, cands in ids if cands for v in after(slot.ids, cands)]


def _candidate_ids(slot: Slot, action: str, _tokens: int, completion: Any) -> list[int]:
    """The ids a candidate adds to the slot's context (module docstring)."""
    if completion is not None and not completion.text_only:
        split = split_generation(
            slot.tokenizer, completion.token_ids, completion.text, completion.eos_id, action,
            following_action(slot, action),
        )  # fmt: skip
        if split is not None:
            return split[0]
    return action_ids(slot, action)  # as training encodes an action known as text


def _top_actions(
    backend: Backend, slots: list[Any], cfg: CollectConfig, k: int
) -> list[list[tuple[str, int, Any]]]:
    """``cfg.rank_actions``: the K admissible actions the policy finds most likely
    (`score_admissible`), most likely first, so K = 1 is the ranked policy's greedy choice."""
    out = []
    for slot in slots:
        admissible, ids, logps = score_admissible(backend, slot, cfg.env)
        best = sorted(range(len(admissible)), key=lambda j: -logps[j])[:k]  # ties keep order
        out.append([(admissible[j], len(ids[j]), None) for j in best])
    return out


def _sample_actions(
    backend: Backend, slots: list[Any], cfg: CollectConfig, k: int
) -> list[list[tuple[str, int, Any]]]:
    """K sampled actions per slot (first lines, deduplicated) with their token counts and the
    first completion that gave each."""
    params = SamplingParams(
        n=k,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        stop=("\n",),
    )
    seeds = [episode_seed(cfg.seed, s) for s in slots]
    out = []
    for completions in backend.generate([model_input(s) for s in slots], params, seeds):
        seen: dict[str, list] = {}
        for c in completions:
            action = parse_action(c.text)
            # Every sample's tokens count as cost, even a duplicate's.
            seen.setdefault(action, [action, 0, c])[1] += len(c.token_ids)
        out.append([tuple(v) for v in seen.values()])
    return out
