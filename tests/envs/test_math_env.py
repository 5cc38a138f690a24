"""The math envs: task files, the hub error, both granularities, prompts, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import gymnasium
import pytest

import oreo_envs  # noqa: F401  (registers the ids)
from conftest import GSM8K_RECORDS, MATH_RECORDS, SHARED_DATA, write_jsonl
from oreo_envs import MathEnv, TaskDataError, format_prompt, split_steps
from oreo_envs.tasks import load_file, read_jsonl


def test_file_task_ids_are_unique_id_or_line_number(gsm8k_file, math_file):
    assert MathEnv("gsm8k", path=str(gsm8k_file)).task_ids == ["0", "1", "2"]
    assert MathEnv("math", path=str(math_file)).task_ids == [
        "test/prealgebra/1.json",
        "test/algebra/2.json",
    ]


def test_math_answer_falls_back_to_boxed_and_keeps_subsets(math_file):
    tasks = load_file(math_file, "math")
    assert [t.answer for t in tasks] == ["\\frac{3}{4}", "5"]
    assert tasks[1].meta == {"level": "Level 2", "type": "Algebra"}


def test_gsm8k_gold_answer_and_solution(gsm8k_file):
    env = MathEnv("gsm8k", path=str(gsm8k_file))
    task = env.task("1")
    assert task.answer == "1,000" and task.solution.endswith("#### 1,000")


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n\n{"question": oops}\n')
    with pytest.raises(TaskDataError, match=r"bad.jsonl:3: not a valid JSON line"):
        list(read_jsonl(path))
    path.write_text('{"question": "q", "answer": "#### 1"}\n{"problem": "p"}\n')
    with pytest.raises(TaskDataError, match=r"bad.jsonl:2: a GSM8K record needs"):
        load_file(path, "gsm8k")
    path.write_text("[1, 2]\n")
    with pytest.raises(TaskDataError, match=r"bad.jsonl:1: expected a JSON object"):
        load_file(path, "gsm8k")


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(TaskDataError, match="task file not found"):
        gymnasium.make("oreo/GSM8K-v0", path=str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="granularity"):
        MathEnv("gsm8k", source="symbolic", size=3, granularity="token")
    with pytest.raises(ValueError, match="symbolic' exists for GSM8K only"):
        MathEnv("math", source="symbolic")
    with pytest.raises(ValueError, match="dataset must be one of"):
        MathEnv("gsm9k", source="symbolic")


def test_offline_hub_error_says_how_to_pass_a_file():
    code = (
        "import gymnasium, oreo_envs\n"
        "try:\n    gymnasium.make('oreo/GSM8K-v0')\n"
        "except oreo_envs.TaskDataError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert "could not load 'openai/gsm8k'" in out.stdout, out.stderr
    assert "path='test.jsonl'" in out.stdout and "GSMSymbolic" in out.stdout


def test_response_level_rewards_gold_and_rejects_wrong(gsm8k_file):
    env = gymnasium.make("oreo/GSM8K-v0", path=str(gsm8k_file))
    obs, info = env.reset(seed=0, options={"task_id": "1"})
    assert GSM8K_RECORDS[1]["question"] in obs and "#### 0" in obs
    _, reward, terminated, truncated, info = env.step(GSM8K_RECORDS[1]["answer"])
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert info["answer"] == "1,000" and info["gold"] == "1,000"
    env.reset(options={"task_id": "1"})
    _, reward, _, _, info = env.step("It is 999.\n#### 999")
    assert reward == 0.0 and info["success"] is False
    env.reset(options={"task_id": "1"})
    assert env.step("")[1] == 0.0  # an empty response is simply wrong


def test_step_level_episode_ends_at_final_answer_and_keeps_the_text(math_file):
    env = gymnasium.make(
        "oreo/MATH-v0", path=str(math_file), granularity="step", render_mode="ansi"
    )
    prompt, _ = env.reset(options={"task_id": "test/algebra/2.json"})
    solution = MATH_RECORDS[1]["solution"]
    steps = split_steps(solution, env.unwrapped.step_delimiters)
    assert steps == ["Divide by 2. ", "We get $x = \\boxed{5}$."]
    _, reward, terminated, _, _ = env.step(steps[0])
    assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, _, info = env.step(steps[1])
    assert (reward, terminated, info["success"]) == (1.0, True, True)
    assert obs == "\n"  # the env closed the unterminated step with a newline, and says so
    assert env.render() == prompt + solution + "\n"


def test_step_level_eos_and_step_limit(gsm8k_file):
    env = gymnasium.make("oreo/GSM8K-v0", path=str(gsm8k_file), granularity="step")
    env.reset(options={"task_id": "0"})
    env.step("Tom has 3 + 4 = 8 apples.\n")
    _, reward, terminated, truncated, info = env.step("")  # EOS without '####'
    assert (reward, terminated, truncated, info["success"]) == (0.0, True, False, False)
    env.reset(options={"task_id": "0"})
    env.step("Tom has 3 + 4 = 7 apples.\n")
    assert env.step("")[1] == 0.0  # strict (the default for rewards): no '####', no answer
    lenient = gymnasium.make(
        "oreo/GSM8K-v0", path=str(gsm8k_file), granularity="step", grade_mode="lenient"
    )
    lenient.reset(options={"task_id": "0"})
    lenient.step("Tom has 3 + 4 = 7 apples.\n")
    assert lenient.step("")[1] == 1.0  # lenient: the last number

    env = gymnasium.make(
        "oreo/GSM8K-v0", path=str(gsm8k_file), granularity="step", max_episode_steps=3
    )
    env.reset(options={"task_id": "0"})
    results = [env.step("thinking\n") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]  # truncated at the limit
    assert results[-1][1] == 0.0 and results[-1][4]["success"] is False


def test_step_level_gold_lines_solve_every_task(gsm8k_file):
    env = gymnasium.make("oreo/GSM8K-v0", path=str(gsm8k_file), granularity="step")
    for record_index, record in enumerate(GSM8K_RECORDS):
        env.reset(options={"task_id": str(record_index)})
        for step in split_steps(record["answer"]):
            _, reward, terminated, _, _ = env.step(step)
        assert terminated and reward == 1.0


def test_split_steps_round_trips():
    text = "We have $x=1$.$ Then y = 2. So\n\n#### 3"
    steps = split_steps(text, ("\n", ". ", ".$ "))
    assert "".join(steps) == text
    assert steps == ["We have $x=1$.$ ", "Then y = 2. ", "So\n", "\n", "#### 3"]
    assert split_steps("") == []


def test_prompt_formats():
    plain = format_prompt("What is 1+1?", "math")
    assert plain == (
        "User: What is 1+1?\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.\n\nAssistant:"
    )

    class ChatTok:
        chat_template = "x"
        name_or_path = "tiny"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert tokenize is False and add_generation_prompt is True
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    chat = format_prompt("Q?", "gsm8k", tokenizer=ChatTok())
    assert chat.startswith("system:Please reason step by step") and "|user:Q?|" in chat

    class NoTemplate:
        chat_template = None

    with pytest.raises(ValueError, match="no chat template"):
        format_prompt("Q?", "gsm8k", tokenizer=NoTemplate())


def test_prompt_with_a_real_transformers_chat_template():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, "[UNK]"))
    )
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    env = MathEnv("gsm8k", source="symbolic", size=2, tokenizer=tok)
    obs, _ = env.reset(seed=0)
    assert obs.startswith("<|system|>Please reason step by step") and obs.endswith("<|assistant|>")


def test_symbolic_source_is_deterministic_with_gold_solutions():
    a = MathEnv("gsm8k", source="symbolic", size=5, data_seed=3)
    b = MathEnv("gsm8k", source="symbolic", size=5, data_seed=3)
    test = MathEnv("gsm8k", source="symbolic", size=5, data_seed=3, split="train")
    assert [a.task(t).question for t in a.task_ids] == [b.task(t).question for t in b.task_ids]
    assert a.task("0").question != test.task("0").question
    env = gymnasium.make("oreo/GSMSymbolic-v0", size=5)
    for task_id in env.unwrapped.task_ids:
        env.reset(options={"task_id": task_id})
        gold = env.unwrapped.task(task_id).solution
        assert "####" in gold
        assert env.step(gold)[1] == 1.0


@pytest.mark.parametrize(
    "action",
    [
        "x" * 1_000_000,
        "\\boxed{" + "{" * 100_000,
        "#### " + "9" * 200_000,
        "\\boxed{10^{10^{10^{10^{10^{10}}}}}}",
        "\\boxed{" + "\\frac{1}{" * 400 + "2" + "}" * 401,
        "\\boxed{99999!!!!!!!!!!}",
        "\\boxed{__import__('os').system('touch /tmp/oreo_pwned')}",
        "\x00\x01 #### \ud800",
    ],
    ids=[
        "1MB",
        "open-braces",
        "huge-number",
        "power-tower",
        "deep-frac",
        "factorial",
        "code",
        "nul",
    ],
)
def test_adversarial_actions_get_reward_zero_quickly(gsm8k_file, action):
    env = gymnasium.make("oreo/GSM8K-v0", path=str(gsm8k_file), grade_timeout=1.0)
    env.reset(options={"task_id": "0"})
    start = time.perf_counter()
    _, reward, terminated, _, info = env.step(action)
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    assert time.perf_counter() - start < 5.0


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k").is_dir(), reason="shared GSM8K data absent")
def test_real_gsm8k_file_gold_solutions_score_one():
    env = gymnasium.make("oreo/GSM8K-v0", path=str(SHARED_DATA / "gsm8k" / "test.jsonl"))
    assert len(env.unwrapped.task_ids) == 1319
    for task_id in env.unwrapped.task_ids[:50]:
        env.reset(options={"task_id": task_id})
        assert env.step(env.unwrapped.task(task_id).solution)[1] == 1.0


@pytest.mark.skipif(not (SHARED_DATA / "math500").is_dir(), reason="shared MATH-500 data absent")
def test_real_math500_file_loads_with_line_number_ids():
    env = MathEnv("math", path=str(SHARED_DATA / "math500" / "test.jsonl"), granularity="step")
    assert len(env.task_ids) == 500 and env.task_ids[:2] == ["0", "1"]
    solved = 0
    for task_id in env.task_ids[:40]:
        env.reset(options={"task_id": task_id})
        for step in split_steps(env.task(task_id).solution, env.step_delimiters) + [""]:
            _, reward, terminated, _, _ = env.step(step)
            if terminated:
                break
        solved += reward == 1.0
    assert solved >= 38  # a reference solution may box an intermediate value first


def test_hub_loader_reads_a_datasets_folder(tmp_path):
    """`load_hub` through `datasets.load_dataset` on a local dataset folder (no network)."""
    folder = tmp_path / "my_math"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", MATH_RECORDS)
    env = MathEnv("math", source="hub", hub_id=str(folder), split="test")
    assert env.task_ids == ["test/prealgebra/1.json", "test/algebra/2.json"]
    assert env.task("test/algebra/2.json").answer == "5"
