"""TextSpace and the TextEnv base, on a hand-written three-task env."""

from __future__ import annotations

import pytest

from oreo_envs import TextEnv, TextSpace


class EchoEnv(TextEnv):
    """Solved when the action repeats the task's word; two tries."""

    WORDS = {"a": "apple", "b": "banana", "c": "cherry"}

    def __init__(self):
        super().__init__(list(self.WORDS))
        self.tries = 0

    def _start(self, task_id):
        self.tries = 0
        return f"say {self.WORDS[task_id]}", {}

    def _act(self, action):
        self.tries += 1
        ok = action == self.WORDS[self.task_id]
        done = ok or self.tries == 2
        return ("" if done else "again"), float(ok), done, ({"success": ok} if done else {})


def test_text_space_holds_model_output():
    space = TextSpace()
    assert "x = \\frac{1}{2}\n\\boxed{ü ∑ 数 🙂}" in space
    assert "" in space
    assert "\ud800" not in space  # a lone surrogate cannot be stored as UTF-8
    assert 5 not in space
    assert "abc" not in TextSpace(2)


def test_text_space_sample_is_short_and_contained():
    space = TextSpace(seed=0)
    samples = [space.sample() for _ in range(50)]
    assert all(s in space and len(s) <= 256 for s in samples)
    assert space.sample(mask=(3, None)).__len__() == 3


def test_reset_step_contract():
    env = EchoEnv()
    obs, info = env.reset(seed=0, options={"task_id": "b"})
    assert obs == "say banana"
    assert info == {"task_id": "b", "messages": [{"role": "user", "content": "say banana"}]}
    obs, reward, terminated, truncated, info = env.step("pear")
    assert (obs, reward, terminated, truncated) == ("again", 0.0, False, False)
    assert info == {"task_id": "b", "success": False}
    obs, reward, terminated, truncated, info = env.step("banana")
    assert (reward, terminated, info["success"]) == (1.0, True, True)


def test_seed_reproduces_task_order_and_covers_all_tasks():
    env = EchoEnv()
    first = [env.reset(seed=7)[1]["task_id"]] + [env.reset()[1]["task_id"] for _ in range(2)]
    again = [env.reset(seed=7)[1]["task_id"]] + [env.reset()[1]["task_id"] for _ in range(2)]
    assert first == again
    assert sorted(first) == ["a", "b", "c"]  # one pass visits every task once


def test_errors_are_clear():
    env = EchoEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step("x")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="must be a str"):
        env.step(3)
    with pytest.raises(ValueError, match="unknown task_id 'z'"):
        env.reset(options={"task_id": "z"})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"task": "a"})
    env.reset(options={"task_id": "a"})
    env.step("apple")
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step("apple")


def test_render_ansi_is_the_whole_text():
    env = EchoEnv()
    env.render_mode = "ansi"
    env.reset(options={"task_id": "c"})
    env.step("plum")
    env.step("cherry")
    assert env.render() == "say cherry" + "plum" + "again" + "cherry" + ""


def test_env_kinds_are_declared_not_guessed():
    import gymnasium

    import oreo_envs

    for env_id in ("oreo/GSMSymbolic-v0", "oreo/Chain-v0", "oreo/ReasoningGym-v0"):
        assert oreo_envs.env_kind(gymnasium.make(env_id)) == "answer", env_id
    assert oreo_envs.env_kind(gymnasium.make("CartPole-v1")) == "answer"  # declares nothing

    class Odd(EchoEnv):
        kind = "chatbot"

    with pytest.raises(ValueError, match="kind must be one of"):
        oreo_envs.env_kind(Odd())


def test_agent_envs_declare_it():
    pytest.importorskip("alfworld")
    import gymnasium

    import oreo_envs

    env = gymnasium.make("oreo/ALFWorld-v0", split="bundled")
    assert oreo_envs.env_kind(env) == "agent"


def test_step_delimiters_come_from_the_registered_env():
    import oreo_envs

    assert oreo_envs.step_delimiters_of("oreo/MATH-v0") == ("\n", ". ", ".$ ")
    assert oreo_envs.step_delimiters_of("oreo/GSM8K-v0") == ("\n",)
    assert oreo_envs.step_delimiters_of("someone/Imported-v0") == ("\n",)  # not registered
