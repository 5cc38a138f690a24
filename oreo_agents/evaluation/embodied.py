"""What a rollout report says about an embodied agent's evaluation (ALFWorld, and any agent env
with admissible actions): the exact games and rules it ran under, and how its episodes went.

Papers on ALFWorld disagree on the split, the step cap (30, 40 or 50 actions) and whether the
games are a seeded sample, and a success rate means little without them. `embodied_block` writes
every one of them into the report's ``"embodied"`` block (`oreo_agents.evaluation.evaluate`; math
reports have none):

- ``split``; ``games``, the evaluated task ids in the order they were evaluated, and
  ``games_sha256``, the SHA-256 of those ids joined by newlines (`games_sha256`);
- ``game_files_sha256``: a hash of the contents of those games' files (`game_files_sha256`);
- ``step_cap``: the env's step limit (``max_episode_steps``; None when nothing caps it);
- ``versions``: the installed alfworld, textworld and fast-downward (the engine's packages);
- ``decoding``: how actions were chosen (`decoding`), K among them;
- the episodes' numbers (`episode_stats`): won and lost episodes, the mean steps of each, the
  rate of steps answered "Nothing happens." and the share of lost episodes that end in a loop.

Success per task type is the report's ``subsets["task_type"]``.

Definitions, checked by hand in tests/agents/test_embodied_report.py:

- An action is answered "Nothing happens." when the env's raw reply to it is exactly that text
  (ALFWorld's reply to a command that does nothing: not admissible, misspelled, or impossible in
  that state). The rate counts every step of every episode, a ``think:`` step (answered "OK.")
  included, since each takes a turn of the step cap.
- An episode ends in a loop when its last `LOOP_WINDOW` (4) actions repeat a cycle of one or two
  actions: they read ``x, y, x, y`` (x = y: one action four times). Shorter episodes do not.
  ``loop_share_of_lost`` is the share of lost episodes that end in a loop (None with no lost
  episode).

`across_seeds` pools the reports of several seeds of one evaluation (mean, sample standard
deviation and each seed's value) and refuses reports that did not evaluate the same games under
the same rules.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

NOTHING_HAPPENS = "Nothing happens."
LOOP_WINDOW = 4
# The packages that turn a game file into text and admissible actions (ALFWorld's engine).
ENGINE_PACKAGES = ("alfworld", "textworld", "fast_downward_textworld")
# What reports pooled over seeds must share (besides the env), and what is pooled.
SHARED = ("split", "games_sha256", "game_files_sha256", "step_cap", "decoding")
POOLED = (
    "success_rate",
    "nothing_happens_rate",
    "loop_share_of_lost",
    "mean_steps_won",
    "mean_steps_lost",
)
_file_digests: dict[tuple[str, int, int], str] = {}


def ends_in_loop(actions: Sequence[str]) -> bool:
    """Whether the last `LOOP_WINDOW` actions read ``x, y, x, y`` (module docstring); actions
    compare after stripping surrounding whitespace."""
    if len(actions) < LOOP_WINDOW:
        return False
    last = [a.strip() for a in actions[-LOOP_WINDOW:]]
    return all(last[i] == last[i + 2] for i in range(LOOP_WINDOW - 2))


def answered_nothing(step: dict[str, Any]) -> bool:
    """Whether a logged step's raw env reply is "Nothing happens." (``env_observation``, which
    agent episodes log beside the prompt's rendering of it; else the logged observation)."""
    return step.get("env_observation", step["observation"]).strip() == NOTHING_HAPPENS


def episode_flags(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The per-episode fields a report's sample keeps: ``nothing_happens`` (how many steps were
    answered "Nothing happens.") and ``loop`` (whether the episode ends in a loop)."""
    return {
        "nothing_happens": sum(answered_nothing(s) for s in steps),
        "loop": ends_in_loop([s["action"] for s in steps]),
    }


def episode_stats(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of the ``"embodied"`` block over episodes (a report's samples: ``success``,
    ``steps`` and the `episode_flags` fields).

    Returns:
        ``episodes``, ``won``, ``lost``; ``mean_steps_won`` and ``mean_steps_lost`` (None
        where there is no such episode); ``steps`` (all of them), ``nothing_happens`` and
        ``nothing_happens_rate`` (over all steps; 0.0 with no step); ``lost_in_loop`` and
        ``loop_share_of_lost`` (None with no lost episode).
    """
    won = [s for s in samples if s["success"]]
    lost = [s for s in samples if not s["success"]]
    steps = sum(s["steps"] for s in samples)
    nothing = sum(s["nothing_happens"] for s in samples)
    loops = sum(bool(s["loop"]) for s in lost)
    return {
        "episodes": len(samples),
        "won": len(won),
        "lost": len(lost),
        "mean_steps_won": _mean([s["steps"] for s in won]),
        "mean_steps_lost": _mean([s["steps"] for s in lost]),
        "steps": steps,
        "nothing_happens": nothing,
        "nothing_happens_rate": nothing / steps if steps else 0.0,
        "lost_in_loop": loops,
        "loop_share_of_lost": loops / len(lost) if lost else None,
    }


def games_sha256(games: Sequence[str]) -> str:
    """The SHA-256 (hex) of the task ids in evaluation order, joined by newlines: the same
    games in another order hash differently."""
    return hashlib.sha256("\n".join(games).encode()).hexdigest()


def game_files_sha256(unwrapped: Any, games: Sequence[str]) -> str | None:
    """A hash of the files the games are played from, so a report names their exact contents.

    An ALFWorld game (``games[task_id].game_file``) is every file of its folder
    (``game.tw-pddl``, and the eval splits' ``traj_data.json``); an env whose ``games`` maps task
    ids to paths (TextWorld) is that file. Each file is named ``<task id>/<file name>`` (ALFWorld)
    or by its task id, and the hash is the SHA-256 of the lines ``name<TAB>file SHA-256`` sorted
    by name, joined by newlines. File hashes are kept per process (keyed by path, size and
    modification time). None when the env does not say where its games live.
    """
    table = getattr(unwrapped, "games", None)
    if not isinstance(table, dict):
        return None
    lines = []
    for task_id in set(games):
        entry = table.get(task_id)
        if entry is None:
            return None
        game_file = getattr(entry, "game_file", None)
        if game_file is not None:
            folder = Path(game_file).parent
            named = [(f"{task_id}/{p.name}", p) for p in folder.iterdir() if p.is_file()]
        elif isinstance(entry, (str, Path)):
            named = [(task_id, Path(entry))]
        else:
            return None
        lines += [f"{name}\t{file_sha256(path)}" for name, path in named]
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """A file's SHA-256 (hex), computed once per process for each path, size and mtime."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_digests:
        _file_digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _file_digests[key]


def step_cap(env: Any) -> int | None:
    """The env's step limit (its spec's ``max_episode_steps``, which ``-o max_episode_steps=N``
    sets), or None for an env made without one."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None)


def engine_versions() -> dict[str, str | None]:
    """The installed versions of `ENGINE_PACKAGES` (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in ENGINE_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def decoding(cfg: Any, strategy: Any) -> dict[str, Any]:
    """How a `RolloutConfig` chose actions, in one place (``strategy``: its spec).

    ``strategy`` and ``k`` as configured; ``scripted``: the scripted policy's name ("expert",
    "random") or None for a model; ``samples_per_game``: episodes per game (K with "sample",
    else 1); ``temperature``: the sampling temperature where actions are sampled, 0.0 where the
    choice is deterministic (greedy, or best-of-k among the K most likely or every admissible
    action), None for a scripted policy; then ``top_p``, ``top_k``, ``max_new_tokens``,
    ``rank_actions`` (play admissible actions ranked by the policy's likelihood),
    ``constrain_actions``, ``admissible`` (best-of-k scores every admissible action), ``scorer``
    (what ranks best-of-k's candidates; None for other strategies), ``think``,
    ``chat_template`` and ``fewshot`` (solved episodes shown before each game; each sample names
    their games). Model paths are left to the report's ``model`` and ``value``, so seeds of
    one evaluation share this block.
    """
    from oreo_agents.rollout.scripted import SCRIPTED

    scripted = cfg.policy if cfg.policy in SCRIPTED else None
    guided = strategy.ranked  # value-guided acting: K candidate actions a step
    return {
        "strategy": cfg.strategy,
        "scripted": scripted,
        "k": cfg.k,
        "samples_per_game": cfg.k if strategy.mean_of_samples else 1,
        "temperature": None if scripted is not None else strategy.temperature(cfg),
        "top_p": cfg.top_p,
        "top_k": cfg.top_k,
        "max_new_tokens": cfg.max_new_tokens,
        "rank_actions": cfg.rank_actions,
        "constrain_actions": cfg.constrain_actions,
        "admissible": cfg.admissible,
        "scorer": cfg.scorer if guided else None,
        "think": cfg.think,
        "chat_template": cfg.chat_template,
        "fewshot": cfg.fewshot,
    }


def embodied_block(
    cfg: Any, env: Any, records: Sequence[dict[str, Any]], strategy: Any
) -> dict[str, Any]:
    """The report's ``"embodied"`` block (module docstring) of an agent env's records, in
    evaluation order, whose samples carry the `episode_flags` fields.

    Args:
        cfg: The `RolloutConfig` that ran.
        env: The env as made (wrappers included: the step cap is its spec's).
        records: The report's per-game records.
        strategy: The spec of ``cfg.strategy`` (`oreo_agents.evaluation.strategies`).
    """
    unwrapped = env.unwrapped
    games = [r["task_id"] for r in records]
    return {
        "split": getattr(unwrapped, "split", None),
        "games": games,
        "games_sha256": games_sha256(games),
        "game_files_sha256": game_files_sha256(unwrapped, games),
        "step_cap": step_cap(env),
        "versions": engine_versions(),
        "decoding": decoding(cfg, strategy),
        **episode_stats([s for r in records for s in r["samples"]]),
    }


def across_seeds(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool the reports of one evaluation run with different seeds.

    Each of `POOLED` (``success_rate`` from the report, the others from its ``"embodied"``
    block) becomes ``{"mean", "std", "per_seed"}``: ``per_seed`` in seed order (None where a
    seed has no value, e.g. no lost episode), ``mean`` and ``std`` (the sample standard
    deviation, n - 1 in the denominator) over the seeds that have one; ``std`` is None below two
    such seeds and ``mean`` None with none.

    Args:
        reports: Rollout reports (or dicts of the same shape: ``env``, ``seed``,
            ``success_rate`` and an ``"embodied"`` block).

    Returns:
        ``env``, ``seeds`` (sorted), ``games`` (how many), the shared fields of `SHARED`, and
        one entry per pooled number.

    Raises:
        ValueError: No report, a report without an ``"embodied"`` block, two reports of one
            seed, or reports that differ in env, split, game list, game files, step cap or
            decoding (the message names the field and the two seeds).
    """
    if not reports:
        raise ValueError("across_seeds needs at least one report")
    for r in reports:
        if "embodied" not in r:
            raise ValueError(
                f"the report of seed {r.get('seed')} ({r.get('env')}) has no 'embodied' block: "
                "only agent-env reports pool over seeds"
            )
    ordered = sorted(reports, key=lambda r: r["seed"])
    seeds = [r["seed"] for r in ordered]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"two reports of one seed: seeds {seeds}")
    first = ordered[0]
    for r in ordered[1:]:
        for key in ("env", *SHARED):
            a = first["env"] if key == "env" else first["embodied"][key]
            b = r["env"] if key == "env" else r["embodied"][key]
            if a != b:
                raise ValueError(
                    f"seeds {first['seed']} and {r['seed']} differ in {key} ({_short(a)} vs "
                    f"{_short(b)}): seeds pool only over the same games, step cap and decoding"
                )
    out: dict[str, Any] = {
        "env": first["env"],
        "seeds": seeds,
        "games": len(first["embodied"]["games"]),
        **{key: first["embodied"][key] for key in SHARED},
    }
    for key in POOLED:
        values = [r[key] if key == "success_rate" else r["embodied"][key] for r in ordered]
        out[key] = pooled(values)
    return out


def pooled(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "per_seed"}`` of per-seed values (`across_seeds`)."""
    present = [v for v in values if v is not None]
    mean = _mean(present)
    std = None
    if len(present) >= 2:
        std = math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1))
    return {"mean": mean, "std": std, "per_seed": list(values)}


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _short(value: Any) -> str:
    """A value for an error message: hashes cut to 12 characters."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return repr(value)
