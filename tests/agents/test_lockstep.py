"""The lock-step collector on a hand-written agent env: thoughts never reach the env."""

from __future__ import annotations

import gymnasium

from oreo_agents.data.episodes import load_episodes
from oreo_agents.rollout.collect import CollectConfig, run_collect
from oreo_envs import TextEnv


class DoorEnv(TextEnv):
    """An agent env (admissible actions each step): won by the action "open door"."""

    kind = "agent"

    def __init__(self):
        super().__init__(["d1"])
        self.seen: list[str] = []  # every action the env received

    def _start(self, task_id):
        return "A closed door.", {"admissible_actions": ["open door", "look"]}

    def _act(self, action):
        self.seen.append(action)
        won = action == "open door"
        return ("It opens." if won else "Nothing happens."), float(won), won, {
            "success": won,
            "admissible_actions": ["open door", "look"],
        }  # fmt: skip


gymnasium.register("test/Door-v0", DoorEnv)


def run(tmp_path, actions, *, think, max_steps=5):
    envs = []

    def make():
        env = gymnasium.make("test/Door-v0", max_episode_steps=max_steps)
        envs.append(env)
        return env

    def policy_for(_env):
        queue = list(actions)
        return lambda _obs, _info: queue.pop(0) if queue else "think: still thinking"

    cfg = CollectConfig(env="test/Door-v0", model="scripted", out=str(tmp_path), think=think,
                        batch_size=1)  # fmt: skip
    run_collect(cfg, make, scripted=policy_for)
    (episode,) = load_episodes(tmp_path)
    return episode, [a for env in envs for a in env.unwrapped.seen]


def test_a_thought_is_answered_ok_and_never_sent_to_the_env(tmp_path):
    episode, seen = run(tmp_path, ["think: the door is closed", "open door"], think=True)
    assert seen == ["open door"]
    assert [s["action"] for s in episode.steps] == ["think: the door is closed", "open door"]
    assert episode.steps[0]["env_observation"] == "OK."
    assert "OK." in episode.steps[0]["observation"] and episode.success


def test_thoughts_take_turns_of_the_step_limit(tmp_path):
    episode, seen = run(tmp_path, [], think=True, max_steps=3)
    assert seen == [] and len(episode.steps) == 3
    assert episode.truncated and not episode.success


def test_without_think_a_thought_line_is_an_action(tmp_path):
    episode, seen = run(tmp_path, ["think: hmm", "open door"], think=False)
    assert seen == ["think: hmm", "open door"] and episode.success
