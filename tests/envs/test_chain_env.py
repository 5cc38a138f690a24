"""oreo/Chain-v0: generation, splits, grading in both granularities, knobs, its tokenizer."""

from __future__ import annotations

import random
import re

import gymnasium
import pytest

import oreo_envs  # noqa: F401  (registers the ids)
from oreo_envs.chain_env import ALPHABET, ChainEnv, generate_problem, line_labels, split_of
from oreo_envs.math_env import split_steps

KNOBS = {
    "steps": 3,
    "max_value": 99,
    "max_operand": 9,
    "ops": "+-",
    "distractors": 0,
    "shuffle_names": False,
}
STATEMENT = re.compile(r"^([a-z])=(?:(\d+)|([a-z])([-+*])(\d+))$")


def solve(question: str) -> tuple[int, list[str]]:
    """An independent reference solver: evaluate the statements, then walk the chain back."""
    *statements, query = question.split(";")
    values, parents = {}, {}
    for s in statements:
        name, literal, source, op, k = STATEMENT.match(s).groups()
        if literal is not None:
            values[name] = int(literal)
            continue
        a, k = values[source], int(k)
        values[name] = a + k if op == "+" else a - k if op == "-" else a * k
        parents[name] = source
    chain, name = [], query.rstrip("?")
    while name in parents:
        chain.append(name)
        name = parents[name]
    return values[query.rstrip("?")], chain[::-1]


def test_hand_checked_problem():
    knobs = {**KNOBS, "ops": "+-*", "distractors": 2}
    question, solution, answer = generate_problem(random.Random(2), knobs)
    # a=7, b=7*6=42, d=42*2=84, f=84-9=75; c is a constant and e branches off b: both distractors.
    assert question == "a=7;b=a*6;c=27;d=b*2;e=b-7;f=d-9;f?"
    assert solution == "b=a*6=7*6=42\nd=b*2=42*2=84\nf=d-9=84-9=75\n#### 75"
    assert answer == "75" and solve(question) == (75, ["b", "d", "f"])


def test_names_are_in_order_unless_shuffled():
    question = ChainEnv(size=1, steps=4).tasks[0].question
    assert [s[0] for s in question.split(";")[:-1]] == list("abcde")
    names = {
        s[0] for t in ChainEnv(size=50, shuffle_names=True).tasks for s in t.question.split(";")
    }
    assert len(names) > 10


def test_same_seed_same_tasks_other_seed_other_tasks():
    def questions(**kw):
        return [t.question for t in ChainEnv(size=30, **kw).tasks]

    assert questions(data_seed=3) == questions(data_seed=3)
    assert questions(data_seed=3) != questions(data_seed=4)
    # A split's first tasks do not depend on its size.
    assert questions(data_seed=3)[:10] == [t.question for t in ChainEnv(size=10, data_seed=3).tasks]


def test_train_and_test_are_disjoint_and_hash_partitioned():
    train = {t.question for t in ChainEnv(split="train", size=2000).tasks}
    test = {t.question for t in ChainEnv(split="test", size=500).tasks}
    assert not train & test and len(train) == 2000 and len(test) == 500  # no repeats either
    assert {split_of(q) for q in train} == {"train"} and {split_of(q) for q in test} == {"test"}
    # Even a small problem space (under 31 values x 6 steps = 186 problems) splits cleanly.
    small = {"steps": 1, "max_value": 30, "max_operand": 3}
    a = {t.question for t in ChainEnv(split="train", size=60, **small).tasks}
    b = {t.question for t in ChainEnv(split="test", size=60, **small).tasks}
    assert not a & b


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"ops": "+-*", "distractors": 4, "steps": 5, "shuffle_names": True},
        {"max_value": 9, "ops": "*"},
    ],
)
def test_gold_solutions_are_right_and_stay_in_range(knobs):
    env = ChainEnv(size=200, **knobs)
    cfg = {**KNOBS, **knobs}
    for task in env.tasks:
        value, chain = solve(task.question)
        assert task.answer == str(value) and len(chain) == cfg["steps"]
        assert task.solution.count("\n") == cfg["steps"]
        assert set(task.question + task.solution) <= set(ALPHABET)
        for line in task.solution.splitlines()[:-1]:
            assert 0 <= int(line.rsplit("=", 1)[1]) <= cfg["max_value"]


def test_knobs_change_what_they_should():
    def stats(**kw):
        tasks = ChainEnv(size=300, **kw).tasks
        ops = {c for t in tasks for c in t.question if c in "+-*"}
        statements = {t.question.count(";") for t in tasks}
        top = max(int(n) for t in tasks for n in re.findall(r"\d+", t.solution))
        return ops, statements, top

    assert stats() == ({"+", "-"}, {4}, 25)  # 1 given + 3 steps, then the question
    assert stats(steps=6)[1] == {7}
    assert stats(distractors=3)[1] == {7}
    assert stats(ops="+-*")[0] == {"+", "-", "*"}
    assert "*" not in stats(ops="+")[0]  # '-' only where '+' would pass max_value
    assert stats(max_value=20)[2] == 20
    constants = {int(k) for t in ChainEnv(size=300, max_operand=3).tasks
                 for k in re.findall(r"[-+*](\d+)", t.question)}  # fmt: skip
    assert constants == {1, 2, 3}


def test_gold_grades_one_and_wrong_answers_zero_in_response_mode():
    env = gymnasium.make("oreo/Chain-v0", size=20)
    obs, info = env.reset(seed=0)
    task = env.unwrapped.task(info["task_id"])
    assert obs == task.question and obs.endswith("?")
    _, reward, terminated, truncated, info = env.step(" " + task.solution)
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    wrong = str(int(task.answer) + 1)
    for response in (task.solution.replace(f"#### {task.answer}", f"#### {wrong}"),
                     task.solution.rsplit("####", 1)[0], ""):  # fmt: skip
        env.reset(options={"task_id": info["task_id"]})
        _, reward, terminated, _, info = env.step(response)
        assert (reward, terminated, info["success"]) == (0.0, True, False)


def test_gold_grades_one_line_by_line_in_step_mode():
    env = gymnasium.make("oreo/Chain-v0", size=20, granularity="step", steps=4)
    for task_id in ["0", "7"]:
        _, info = env.reset(options={"task_id": task_id})
        task = env.unwrapped.task(task_id)
        steps = split_steps(" " + task.solution, env.unwrapped.step_delimiters)
        assert len(steps) == 5
        for i, step in enumerate(steps):
            obs, reward, terminated, truncated, info = env.step(step)
            assert terminated == (i == len(steps) - 1) and not truncated
            assert obs == ("" if step.endswith("\n") else "\n")
        assert reward == 1.0 and info["success"] and info["answer"] == task.answer


def test_step_mode_eos_without_answer_and_wrong_answer_score_zero():
    env = gymnasium.make("oreo/Chain-v0", size=5, granularity="step")
    _, info = env.reset(options={"task_id": "0"})
    first = env.unwrapped.task("0").solution.split("\n")[0]
    assert env.step(first)[1:3] == (0.0, False)
    _, reward, terminated, _, info = env.step("")  # EOS: the model stopped before answering
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    env.reset(options={"task_id": "0"})
    _, reward, terminated, _, _ = env.step("#### -1")
    assert (reward, terminated) == (0.0, True)


def test_line_labels_tell_lucky_guesses_from_faithful_chains():
    gold = "b=a+5=7+5=12\nd=b*2=12*2=24\n#### 24"
    assert line_labels(gold, gold) == [True, True]
    # a wrong first line that still ends at the right answer; a line beyond the gold chain
    lucky = "b=a+5=7+5=13\nd=b*2=12*2=24\n#### 24"
    assert line_labels(lucky, gold) == [False, True]
    assert line_labels(" b=a+5=7+5=12\n\nd=b*2=12*2=24\nx=1\n", gold) == [True, True, False]
    assert line_labels("#### 24", gold) == []


def test_env_reports_line_labels_in_both_granularities():
    env = gymnasium.make("oreo/Chain-v0", size=5, steps=2)
    _, info = env.reset(options={"task_id": "0"})
    task = env.unwrapped.task("0")
    first, second, answer = task.solution.split("\n")
    broken = f"{first}\n{second}0\n{answer}"  # a wrong second line, the right answer
    info = env.step(broken)[-1]
    assert info["success"] and info["line_correct"] == [True, False]
    step = gymnasium.make("oreo/Chain-v0", size=5, steps=2, granularity="step")
    step.reset(options={"task_id": "0"})
    assert step.step(first + "\n")[-1]["step_correct"] is True
    assert step.step(second + "0\n")[-1]["step_correct"] is False
    info = step.step(answer)[-1]
    assert info["success"] and info["line_correct"] == [True, False]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "valid"}, "split must be"),
        ({"granularity": "token"}, "granularity must be"),
        ({"steps": 0}, ">= 1"),
        ({"ops": "/"}, "ops must be"),
        ({"shuffle_names": "False"}, "shuffle_names must be"),
        ({"steps": 20, "distractors": 6}, "letters"),
        ({"steps": 1, "max_value": 1, "max_operand": 1, "size": 1000}, "too few distinct"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChainEnv(**kwargs)


def test_tokenizer_round_trips_every_character_one_token_each(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oreo_agents.models.tiny import chain_model

    model, _ = chain_model(tmp_path, hidden_size=32, num_layers=1, num_heads=2)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert tok.pad_token_id != tok.eos_token_id and len(tok) == len(set(ALPHABET)) + 3
    for ch in ALPHABET:
        assert len(tok(ch)["input_ids"]) == 1 and tok.decode(tok(ch)["input_ids"]) == ch
    task = ChainEnv(size=5, distractors=2, ops="+-*").tasks[0]
    text = task.question + " " + task.solution
    enc = tok(text, return_offsets_mapping=True)
    assert len(enc["input_ids"]) == len(text) and tok.decode(enc["input_ids"]) == text
    assert enc["offset_mapping"][:3] == [(0, 1), (1, 2), (2, 3)]
    assert tok.unk_token_id not in enc["input_ids"]
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.vocab_size == len(tok) == model.config.vocab_size


def test_step_mode_passes_the_gymnasium_checker():
    # test_registry checks every id in response mode; step mode is this env's own.
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make("oreo/Chain-v0", size=20, granularity="step")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("granularity", ["response", "step"])
def test_gold_policy_episodes_succeed_and_tokenize_into_steps(tmp_path, granularity):
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.data.tokenization import tokenize_episodes
    from oreo_agents.models.tiny import char_tokenizer
    from oreo_agents.rollout.collect import CollectConfig, run_collect, summarize
    from oreo_agents.rollout.scripted import GoldPolicy

    options = {"size": 6, "granularity": granularity}
    cfg = CollectConfig(env="oreo/Chain-v0", model="gold", out=str(tmp_path), env_options=options)
    run_collect(cfg, lambda: gymnasium.make("oreo/Chain-v0", **options), scripted=GoldPolicy)
    assert summarize(str(tmp_path))["success_rate"] == 1.0
    episodes = load_episodes(tmp_path)
    assert len(episodes[0].steps) == (1 if granularity == "response" else 4)
    tok = char_tokenizer(ALPHABET)
    for ep in tokenize_episodes(episodes, tok):
        assert tok.unk_token_id not in ep.input_ids
        assert sum(ep.step_starts) == 4  # three lines and the answer; EOS joins the last one
        assert ep.input_ids[-1 if granularity == "response" else -2] == tok.eos_token_id


def test_envs_share_one_generation_of_their_tasks():
    """Every env of a collector draws the same problems once (a cached, immutable tuple), yet
    each env holds its own list."""
    first, second = ChainEnv(size=300, steps=2), ChainEnv(size=300, steps=2)
    assert first.tasks is not second.tasks and first.tasks[7] is second.tasks[7]
    first.tasks.pop()
    assert len(ChainEnv(size=300, steps=2).tasks) == 300
    assert ChainEnv(size=300, steps=3).tasks[7] != first.tasks[7]  # other knobs: other tasks
