"""Model output never runs as code: a task library's scorer runs in a confined worker.

The hostile answers are the ones that ran code in (or hung) the collecting process before the
sandbox: reasoning-gym's scorers ``eval`` the answer (n_queens, string_insertion, spiral_matrix,
binary_matrix) or hand it to sympy's ``parse_expr`` (countdown, puzzle24).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import pytest

import oreo_envs  # noqa: F401 - registers the ids
from oreo_envs import _sandbox_worker
from oreo_envs.sandbox import SandboxedScorer, ScorerSetupError, Verdict

TIMEOUT = 3.0
# A worker starts in about a second on an idle core; this bounds start-up plus one answer.
BOUND_S = TIMEOUT + 60.0


def hostile(marker: Path) -> dict[str, list[str]]:
    touch = f"__import__('os').system('touch {marker}')"
    return {
        "n_queens": [f"{touch} or []"],
        "string_insertion": [touch, "9**9**9**9"],
        "spiral_matrix": [f"open('{marker}', 'w').write('x') or []"],
        "binary_matrix": [f"__import__('subprocess').run(['touch', '{marker}']) or []"],
        "countdown": ["9**9**9**9", touch],
        "puzzle24": ["9**9**9**9", touch],
    }


_ANSWERS = hostile(Path("m"))
CASES = [(task, i) for task, answers in _ANSWERS.items() for i in range(len(answers))]
# Each answer that runs until the timeout takes its seconds: the first one is in the fast tier.
_SLOW = [(task, i) for task, i in CASES if _ANSWERS[task][i] == "9**9**9**9"][1:]
CASES = [pytest.param(*c, marks=pytest.mark.slow) if c in _SLOW else c for c in CASES]


@pytest.mark.parametrize(("task", "which"), CASES)
def test_hostile_answer_runs_nothing_and_returns_within_the_limit(tmp_path, task, which):
    marker = tmp_path / "pwned"
    answer = hostile(marker)[task][which]
    env = gym.make("oreo/ReasoningGym-v0", task=task, size=3, score_timeout=TIMEOUT)
    env.reset(seed=0)
    start = time.monotonic()
    _, reward, terminated, _, info = env.step(f"<answer>{answer}</answer>")
    elapsed = time.monotonic() - start
    env.close()
    assert not marker.exists(), f"{task}: the answer ran code"
    assert elapsed < BOUND_S
    assert terminated and reward == 0.0 and not info["success"]
    assert info.get("score_error"), "a refused or timed-out answer says why"


@pytest.mark.parametrize("task", ["n_queens", "arc_agi", "polynomial_multiplication", "countdown"])
def test_gold_answers_still_score_as_the_library_scores_them(task):
    """The worker scores the entry this process generated (polynomial_multiplication's
    questions differ between processes; ARC boards are tuples, which JSON alone would lose)."""
    env = gym.make("oreo/ReasoningGym-v0", task=task, size=3)
    for task_id in ("0", "1", "2"):
        env.reset(options={"task_id": task_id})
        entry = env.unwrapped.tasks.entry(int(task_id))
        answer = entry["answer"] if task != "countdown" else entry["metadata"]["expression"]
        direct = env.unwrapped.tasks.dataset.score_answer(str(answer), entry)
        _, reward, _, _, info = env.step(f"<answer>{answer}</answer>")
        assert direct == 1.0 and reward == 1.0, info
        env.reset(options={"task_id": task_id})
        assert env.step("<answer>certainly not</answer>")[1] == 0.0
    env.close()


@pytest.fixture
def factories(tmp_path, monkeypatch) -> str:
    """A module of scorer factories the worker can import (it inherits our sys.path)."""
    (tmp_path / "toy_scorers.py").write_text(
        textwrap.dedent("""
        def evaluating():
            return lambda answer: eval(answer)  # what the task libraries do

        def failing():
            raise RuntimeError("no such task")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "toy_scorers"


def test_a_forged_pickle_reply_runs_nothing_in_this_process(factories, tmp_path):
    """An answer that writes a pickle of ``os.system`` onto the worker's socket (the framing
    `multiprocessing` uses) gets a "wrong" verdict; the reply is JSON, never unpickled."""
    marker = tmp_path / "pwned"
    answer = (
        "(lambda os, pickle, struct: os.write(int(__import__('sys').argv[1]), "
        "(lambda b: struct.pack('!i', len(b)) + b)(pickle.dumps(_R()))))"
        "(__import__('os'), __import__('pickle'), __import__('struct'))"
    )
    prelude = (
        f"type('_R', (), {{'__reduce__': lambda s: (__import__('os').system, "
        f"('touch {marker}',))}})"
    )
    answer = answer.replace("_R()", f"{prelude}()")
    scorer = SandboxedScorer(f"{factories}:evaluating", timeout=TIMEOUT)
    verdict = scorer(answer)
    scorer.close()
    assert not marker.exists()
    assert verdict == Verdict(0.0, "the worker's reply was not valid")  # it arrived, unread


def test_scorer_errors_are_wrong_with_a_reason_and_the_worker_survives(factories):
    scorer = SandboxedScorer(f"{factories}:evaluating", timeout=TIMEOUT)
    assert scorer("1 + 1").score == 2.0
    pid = scorer.pid
    verdict = scorer("1 / 0")
    assert verdict.score == 0.0 and verdict.reason.startswith("ZeroDivisionError")
    assert scorer("float('nan')").reason == "the scorer returned nan"
    assert scorer.pid == pid, "an ordinary error does not cost a restart"
    assert scorer("__import__('os').getcwd() and 1").score == 1.0  # reading is allowed
    refused = scorer("__import__('os').kill(__import__('os').getppid(), 9)")
    assert refused.reason == "refused: os.kill" and scorer.pid is None  # restarted next call
    assert scorer("3").score == 3.0
    scorer.close()


def test_memory_is_capped(factories):
    scorer = SandboxedScorer(f"{factories}:evaluating", timeout=30, memory_bytes=256 * 1024**2)
    verdict = scorer("len(bytearray(1024**3))")
    scorer.close()
    assert verdict.score == 0.0 and "MemoryError" in verdict.reason


def test_a_broken_factory_is_a_setup_error_not_a_wrong_answer(factories):
    scorer = SandboxedScorer(f"{factories}:failing", timeout=TIMEOUT)
    with pytest.raises(ScorerSetupError, match="no such task"):
        scorer("1")


def run_confined(tmp_path: Path, layer: str, action: str) -> subprocess.CompletedProcess:
    """Apply one confinement layer alone in a fresh interpreter, then try ``action``."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(_sandbox_worker.__file__).parent)!r})
        import _sandbox_worker as w
        if {layer!r} == "landlock":
            assert w._landlock(), "landlock unavailable"
        else:
            sys.addaudithook(w._Audit())
        try:
            {action}
        except Exception as e:
            print("blocked:", type(e).__name__)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)  # fmt: skip


def landlock_available() -> bool:
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import _sandbox_worker as w; " \
        "sys.exit(0 if w._landlock() else 1)"  # fmt: skip
    folder = str(Path(_sandbox_worker.__file__).parent)
    return subprocess.run([sys.executable, "-c", probe, folder], timeout=60).returncode == 0


@pytest.mark.parametrize("layer", ["landlock", "audit"])
@pytest.mark.parametrize(
    "action",
    [
        "open('pwned', 'w').write('x')",
        "os.system('touch pwned')",
        "__import__('subprocess').run(['touch', 'pwned'])",
        "os.mkdir('pwned')",
    ],
)
def test_each_layer_alone_stops_file_writes_and_processes(tmp_path, layer, action):
    """Every layer holds by itself, so that a hole in one (an audit hook is Python-level, the
    kernel may lack Landlock) is not a hole in the sandbox."""
    if layer == "landlock" and not landlock_available():
        pytest.skip("this kernel offers no Landlock")
    run = run_confined(tmp_path, layer, action)
    assert not (tmp_path / "pwned").exists(), run.stdout + run.stderr


def test_reasoning_gym_through_oreo_collect_runs_nothing(tiny_model_dir, tmp_path):
    """`oreo collect` end to end, with the model's generations replaced by a hostile answer
    (a tiny random model cannot be made to write one): the episodes are stored as wrong and
    the marker file never appears."""
    marker = tmp_path / "pwned"
    answer = f"<answer>__import__('os').system('touch {marker}') or []</answer>"
    script = textwrap.dedent(f"""
        import sys
        from oreo_agents.generation import hf

        def hostile(self, encoded, params, *rest):
            ids = self.tokenizer.encode({answer!r}, add_special_tokens=False)
            return [self._finish(ids + [self.eos_ids[0]], params) for _ in encoded]

        hf.HFBackend._generate_batch = hostile
        from oreo_cli.main import app
        sys.argv = ["oreo", *sys.argv[1:]]
        app()
    """)
    out = tmp_path / "store"
    cmd = [sys.executable, "-c", script, "collect", "--env", "oreo/ReasoningGym-v0",
           "-o", "task=n_queens", "-o", "size=3", "--model", str(tiny_model_dir),
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    from oreo_agents.data.episodes import load_episodes

    episodes = load_episodes(out)
    assert len(episodes) == 3 and not marker.exists()
    assert all(not e.success for e in episodes)
