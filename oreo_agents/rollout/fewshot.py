"""Few-shot agent prompts (``--fewshot N``): N solved episodes before each game, so a pretrained
instruction-tuned model can play an agent env without fine-tuning.

The examples are chosen per episode, from the game's task type, as the ReAct-style ALFWorld
prompts of the field choose theirs (Yao et al. 2023 show two of the played type). The env
supplies them: an env with ``expert_demos()`` (ALFWorld, `oreo_envs.alfworld.demos`) returns
walkthrough episodes of train games, never of an evaluated game, chosen by (seed, task id).

Why an `oreo_agents.rollout.config.ActingConfig` field rather than an env option: the examples
are part of what the agent is told, like ``--think`` and ``--chat-template``, not part of the
game. The env's observations, its info and its episodes stay those of the game alone, and the
same switch serves `oreo collect` and `oreo rollout` (whose report keeps it in its config and
the examples' ids in each sample).
"""

from __future__ import annotations

from typing import Any

from oreo_agents.rollout.agent_prompt import Example


class FewShot:
    """Picks the few-shot examples of each episode from an env's expert demonstrations.

    Args:
        env: The env (or a wrapper of it) being played; its ``expert_demos()`` gives the
            examples.
        n: Examples per episode.
        seed: With the task id, fixes which games are shown.

    Raises:
        ValueError: The env has no expert demonstrations to show.
        FileNotFoundError: The env's train games are missing.
    """

    def __init__(self, env: Any, n: int, seed: int):
        source = getattr(env.unwrapped, "expert_demos", None)
        if source is None:
            name = env.spec.id if getattr(env, "spec", None) else type(env.unwrapped).__name__
            raise ValueError(
                f"--fewshot shows solved episodes of an agent env's train games; {name} has no "
                "expert demonstrations (oreo/ALFWorld-v0 has)"
            )
        self.demos = source()
        self.n, self.seed = n, seed

    def __call__(self, task_id: str, info: dict[str, Any]) -> list[tuple[str, Example]]:
        """The (game id, example) pairs to show before ``task_id`` (``info`` is its reset
        info, which names the task type)."""
        demos = self.demos.examples(task_id, info.get("task_type", ""), self.n, self.seed)
        return [(d.task_id, Example(d.first_observation, d.steps)) for d in demos]

    def describe(self) -> dict[str, Any]:
        """The rule, for a store's manifest (each episode's ``meta["fewshot"]`` names its
        games)."""
        return {
            "n": self.n,
            "seed": self.seed,
            "source_split": self.demos.source,
            "rule": "expert walkthroughs of the task type's games in source_split, in an order "
            "seeded by (seed, task id); never the played game nor an evaluated one",
        }

    def close(self) -> None:
        close = getattr(self.demos, "close", None)
        if close is not None:
            close()
