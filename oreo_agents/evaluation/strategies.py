"""Evaluation strategies (``oreo rollout --strategy NAME``), one spec each, by name.

A strategy declares what it needs (a value model to rank with, K samples, whether a scripted
policy or a reranker may run with it), checks its own settings, and turns a list of tasks into
report records (`Strategy.run`). `oreo_agents.evaluation.evaluate.run_rollout` asks the spec
and writes the report; nothing else compares strategy names. Built in:

- ``greedy``: one greedy episode per task.
- ``sample``: K sampled episodes per task; a task's success is their mean (pass@1), beside
  pass@k and maj@k.
- ``best-of-k``: math: K sampled responses reranked by the value model at their final state;
  agent envs: value-guided acting, K candidate actions scored at every step
  (`oreo_agents.evaluation.acting`).
- ``beam``: value-guided step-level beam search (`oreo_agents.evaluation.search.beam_search`),
  graded by the env.

A new strategy is a subclass of `Strategy` and one `register_strategy` call; an installed
package adds its own through an entry point in the ``oreo.strategies`` group::

    [project.entry-points."oreo.strategies"]
    mine = "my_package.search:register_strategies"   # calls register_strategy(...)

A record is ``{"task_id", "samples": [...], "chosen"}``; a sample holds ``success``,
``answer``, ``steps``, ``tokens``, ``value`` and ``text`` (`sample_of`), and the records of
`collect_records` are what a strategy that picks among K samples starts from.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oreo_agents.data.episodes import Episode, load_episodes
from oreo_agents.data.inputs import episode_state
from oreo_agents.evaluation.embodied import episode_flags
from oreo_agents.registry import Registry
from oreo_agents.rollout.collect import run_collect

ENTRY_POINT_GROUP = "oreo.strategies"


@dataclass
class Run:
    """What a strategy runs with.

    Attributes:
        cfg: The evaluation (`RolloutConfig`).
        env: One env instance (to reset and grade with).
        make_env: Builds more of them (the collector runs several).
        task_ids: The tasks this process evaluates, in order.
        backend: The policy's generator (None for a scripted policy).
        value_fn: The value model or scorer (ranked strategies).
        scripted: A scripted policy factory, in place of ``backend``.
        progress: ``progress(n)``: n more tasks done (None: no display).
        reranker_fn: The outcome reward model of ``cfg.reranker``.
        agent: Whether the env is an agent env (one command a turn).
    """

    cfg: Any
    env: Any
    make_env: Callable[[], Any]
    task_ids: list[str]
    backend: Any = None
    value_fn: Any = None
    scripted: Any = None
    progress: Callable[[float], None] | None = None
    reranker_fn: Any = None
    agent: bool = False

    def advance(self, n: float) -> None:
        if self.progress is not None:
            self.progress(n)


class Strategy:
    """The base spec. Class attributes say what the strategy needs; `check` adds its own rules.

    Class attributes:
        ranked: Ranks with a value model (``--value``) or an implicit scorer (``--scorer``).
        scripted: A scripted policy (gold, expert, random) may run it.
        reranks: ``--reranker`` scores its samples (rerank@k).
        admissible: ``--admissible`` applies (score every admissible action of agent envs).
        mean_of_samples: A task's success is the mean over its samples (else the chosen
            sample's, or the only one's).
        env_options: Env options it is meant to run with, which recipes apply (beam: steps).
    """

    ranked: bool = False
    scripted: bool = False
    reranks: bool = False
    admissible: bool = False
    mean_of_samples: bool = False
    env_options: dict[str, Any] = {}

    def __init__(self, name: str, description: str):
        self.name, self.description = name, description

    def check(self, cfg: Any) -> None:
        """Refuse settings this strategy cannot run (beyond what the attributes declare).

        Raises:
            ValueError: Says which setting and why.
        """

    def temperature(self, cfg: Any) -> float:
        """The temperature its policy decodes at (reports)."""
        return cfg.temperature

    def run(self, run: Run) -> list[dict[str, Any]]:
        """One record per task of ``run.task_ids``, in order."""
        raise NotImplementedError(f"strategy {self.name} does not run")

    def task_success(self, record: dict[str, Any]) -> float:
        """A task's score: the chosen sample's success, the mean over samples
        (`mean_of_samples`), or the only sample's."""
        samples = record["samples"]
        if record["chosen"] is not None:
            return float(samples[record["chosen"]]["success"])
        if self.mean_of_samples:
            return sum(s["success"] for s in samples) / len(samples)
        return float(samples[0]["success"])


class Greedy(Strategy):
    scripted = True

    def check(self, cfg: Any) -> None:
        if cfg.k != 1:
            raise ValueError("greedy decoding gives one response per task; for pass@k and maj@k "
                             "use --strategy sample --k K")  # fmt: skip

    def temperature(self, cfg: Any) -> float:
        return 0.0

    def run(self, run: Run) -> list[dict[str, Any]]:
        return collect_records(run, 1, 0.0)[0]


class Sample(Strategy):
    scripted = True
    reranks = True
    mean_of_samples = True

    def run(self, run: Run) -> list[dict[str, Any]]:
        records, episodes = collect_records(run, run.cfg.k, run.cfg.temperature)
        score_samples(records, episodes, "orm", run.reranker_fn)
        return records


class BestOfK(Strategy):
    ranked = True
    reranks = True
    admissible = True

    def temperature(self, cfg: Any) -> float:
        # acting that scores every admissible action, or ranks them by the policy, is
        # deterministic; otherwise its K candidates are sampled
        return 0.0 if cfg.admissible or cfg.rank_actions else cfg.temperature

    def run(self, run: Run) -> list[dict[str, Any]]:
        if run.agent:
            return _acting_records(run)
        records, episodes = collect_records(run, run.cfg.k, run.cfg.temperature)
        score_samples(records, episodes, "value", run.value_fn)
        score_samples(records, episodes, "orm", run.reranker_fn)
        for r in records:
            r["chosen"] = max(range(len(r["samples"])), key=lambda i: r["samples"][i]["value"])
        return records


class Beam(Strategy):
    ranked = True
    env_options = {"granularity": "step"}

    def run(self, run: Run) -> list[dict[str, Any]]:
        if run.agent:
            raise ValueError(
                "beam search runs over reasoning steps of math envs; in agent envs use "
                "--strategy best-of-k (value-guided acting: K candidate actions per step)"
            )
        return _beam_records(run)


_REGISTRY = Registry("strategy", "strategy", ENTRY_POINT_GROUP)
STRATEGIES: dict[str, Strategy] = _REGISTRY.specs
# register_strategy(spec) makes spec runnable as ``oreo rollout --strategy spec.name``
register_strategy = _REGISTRY.register
get_strategy = _REGISTRY.get
strategy_names = _REGISTRY.names
load_plugins = _REGISTRY.load_plugins

register_strategy(Greedy("greedy", "one greedy episode per task"))
register_strategy(Sample("sample", "K sampled episodes per task: pass@1, pass@k, maj@k"))
register_strategy(BestOfK("best-of-k", "the value model's pick of K samples (math) or of K "
                          "candidate actions a step (agent envs)"))  # fmt: skip
register_strategy(Beam("beam", "value-guided step-level beam search (math envs)"))


def collect_records(
    run: Run, samples: int, temperature: float
) -> tuple[list[dict[str, Any]], list[list[Episode]]]:
    """``samples`` episodes per task through `run_collect`: the records (nothing chosen) and
    each task's episodes, in sample order."""
    cfg = run.cfg
    # The evaluation's episodes live only as long as the run: the report keeps what matters.
    # run_collect draws the same seeded task sample (`select_tasks`) as `run_rollout`.
    with tempfile.TemporaryDirectory(prefix="oreo-rollout-") as tmp:
        ccfg = cfg.collect_config(tmp, samples, temperature)
        run_collect(ccfg, run.make_env, backend=run.backend, scripted=run.scripted,
                    on_episode=lambda _e, _s: run.advance(1 / samples))  # fmt: skip
        episodes = load_episodes(tmp)
    by_task: dict[str, list[Episode]] = {t: [] for t in run.task_ids}
    for ep in sorted(episodes, key=lambda e: e.meta["sample"]):
        by_task[ep.task_id].append(ep)
    records = [record(t, [sample_of(e, run.agent) for e in eps]) for t, eps in by_task.items()]
    return records, list(by_task.values())


def score_samples(records: list[dict[str, Any]], episodes: list[list[Episode]], key: str,
                  scorer: Any) -> None:  # fmt: skip
    """Each sample's ``key`` (``value``, ``orm``): ``scorer``'s score of its episode's final
    state, in one batch (nothing when ``scorer`` is None)."""
    if scorer is None:
        return
    flat = [
        (s, e)
        for r, eps in zip(records, episodes, strict=True)
        for s, e in zip(r["samples"], eps, strict=True)
    ]
    scores = scorer([episode_state(e, scorer.tokenizer) for _, e in flat])
    for (s, _), v in zip(flat, scores, strict=True):
        s[key] = float(v)


def _beam_records(run: Run) -> list[dict[str, Any]]:
    from oreo_agents.evaluation.search import beam_search
    from oreo_agents.rollout.prompting import make_prompter
    from oreo_envs.verifiers import has_final_answer

    cfg, env = run.cfg, run.env
    u = env.unwrapped
    prompter = make_prompter(cfg, run.backend.tokenizer, None, env)
    prompts = [
        prompter.first("answer", *env.reset(seed=cfg.seed, options={"task_id": t}))
        for t in run.task_ids
    ]
    style = getattr(u, "dataset", "auto")
    results = beam_search(
        run.backend, run.value_fn, prompts, beam_width=cfg.beam_width, max_steps=cfg.max_steps,
        stop=tuple(u.step_delimiters), is_final=lambda text: has_final_answer(text, style=style),
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
        top_k=cfg.top_k, seed=cfg.seed, control=cfg.control,
    )  # fmt: skip
    records = []
    for task_id, res in zip(run.task_ids, results, strict=True):
        info = _grade(env, task_id, res.text, cfg.seed)
        sample = {
            "success": bool(info.get("success", False)),
            "answer": info.get("answer"),
            "steps": res.steps,
            "tokens": res.generated_tokens,
            "value": res.value,
            "candidates": res.candidates,
            "text": res.text,
            **_labels(info),
        }
        records.append(record(task_id, [sample]))
        run.advance(1)
    return records


def _grade(env, task_id: str, text: str, seed: int) -> dict[str, Any]:
    """Play a finished response through the env (its steps, then EOS) and return the last info."""
    from oreo_envs.math_env import split_steps

    u = env.unwrapped
    env.reset(seed=seed, options={"task_id": task_id})
    if u.granularity == "response":
        actions = [text]
    else:
        actions = split_steps(text, u.step_delimiters) + [""]  # "" = the model's EOS
    info: dict[str, Any] = {}
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return info


def _acting_records(run: Run) -> list[dict[str, Any]]:
    from oreo_agents.evaluation.acting import act_with_value

    cfg = run.cfg
    episodes = act_with_value(
        cfg.collect_config("", 1, cfg.temperature), run.make_env, run.task_ids,
        backend=run.backend, value_fn=run.value_fn, k=cfg.k, admissible=cfg.admissible,
        on_episode=lambda _e: run.advance(1),
    )  # fmt: skip
    records = []
    for ep in episodes:
        sample = sample_of(ep, agent=True)
        sample["candidates"] = ep.meta.get("candidates", 0)
        records.append(record(ep.task_id, [sample]))
    return records


def sample_of(ep: Episode, agent: bool = False) -> dict[str, Any]:
    """A record's sample from an episode; an agent env's adds the `episode_flags` fields."""
    return {
        "success": bool(ep.success),
        "answer": ep.info.get("answer"),
        "steps": len(ep.steps),
        "tokens": int(ep.meta.get("generated_tokens", 0)),
        "value": None,
        "text": ep.response,
        **_labels(ep.info),
        **(episode_flags(ep.steps) if agent else {}),
        **({"fewshot": ep.meta["fewshot"]} if "fewshot" in ep.meta else {}),
    }


def _labels(info: dict[str, Any]) -> dict[str, Any]:
    """The env's per-line faithfulness labels, where it gives them."""
    return {"line_correct": info["line_correct"]} if "line_correct" in info else {}


def record(task_id: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A task's record: its samples, none chosen yet."""
    return {"task_id": task_id, "samples": samples, "chosen": None}
