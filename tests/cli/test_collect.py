"""`oreo collect` end to end: files, counts, resume after SIGINT/SIGKILL (the killed runs in a
process of their own, the rest in this one)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import oreo_in_process, sigint_as_in_a_terminal
from oreo_agents.data.episodes import load_episodes

# Pinned to the CPU (gloo, fp32) on a GPU machine too: these tests hold the CPU path to exact
# equalities that CUDA's kernels do not promise (batch-invariant sampling, bitwise-deterministic
# backward passes, one device per process); tests/gpu holds CUDA to its own tolerances.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160", "CUDA_VISIBLE_DEVICES": ""}


def collect_cmd(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "oreo_cli", "collect", "--env", "oreo/GSMSymbolic-v0",
        "--model", str(model), "--out", str(out), "-o", "size=40", *extra,
    ]  # fmt: skip


def keys(out: Path) -> list[tuple[str, int]]:
    return [e.key for e in load_episodes(out)]


@pytest.mark.parametrize("granularity", ["response", "step"])
def test_collect_writes_every_task_sample_once(tiny_model_dir, tmp_path, granularity):
    out = tmp_path / "eps"
    cmd = collect_cmd(
        tiny_model_dir, out, "--samples", "2", "--tasks", "3", "--max-new-tokens", "12",
        "--batch-size", "4", "-o", f"granularity={granularity}", "--seed", "5",
    )  # fmt: skip
    run = oreo_in_process(*cmd[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pass@2" in run.stdout and "success rate" in run.stdout
    episodes = load_episodes(out)
    assert len(episodes) == 6
    assert collections.Counter(e.key for e in episodes).most_common(1)[0][1] == 1
    assert {e.meta["sample"] for e in episodes} == {0, 1}
    assert len({e.task_id for e in episodes}) == 3
    for e in episodes:
        assert e.env_id == "oreo/GSMSymbolic-v0" and e.prompt.startswith("User: ")
        assert e.meta["model"] == str(tiny_model_dir) and e.meta["sampling"]["max_new_tokens"] == 12
        assert 0 < e.meta["generated_tokens"] <= 12 * len(e.steps)
        if granularity == "response":
            assert len(e.steps) == 1
    if granularity == "step":
        assert any(len(e.steps) > 1 for e in episodes)
    # Re-running the finished command adds nothing.
    again = oreo_in_process(*cmd[3:])
    assert again.returncode == 0 and len(load_episodes(out)) == 6


def kill_cmd(model: Path, out: Path, *extra: str) -> list[str]:
    """24 sampled episodes: long enough to be killed mid-way."""
    return collect_cmd(
        model, out, "--samples", "2", "--tasks", "12", "--max-new-tokens", "48",
        "--temperature", "1.0", *extra,
    )  # fmt: skip


def start_until(cmd: list[str], out: Path, episodes: int) -> subprocess.Popen:
    """Start a collect and return once its store holds ``episodes`` lines (or after 120 s)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
        preexec_fn=sigint_as_in_a_terminal,
    )  # fmt: skip
    shard = out / "episodes-00000.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (
        not shard.exists() or shard.read_bytes().count(b"\n") < episodes
    ):
        time.sleep(0.05)
    return proc


# SIGINT in the fast tier, SIGKILL in the slow one (`pytest -m "not slow"`)
@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)],
    ids=["SIGINT", "SIGKILL"],
)
def test_killed_collect_resumes_without_duplicates_or_gaps(tiny_model_dir, tmp_path, sig):
    out = tmp_path / "eps"
    cmd = kill_cmd(tiny_model_dir, out, "--batch-size", "2")
    proc = start_until(cmd, out, episodes=3)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    partial = keys(out)
    assert 3 <= len(partial) < 24, "the kill should land mid-way"
    if sig == signal.SIGINT:
        assert proc.returncode == 130
    done = oreo_in_process(*cmd[3:])
    assert done.returncode == 0, done.stdout + done.stderr
    final = keys(out)
    assert len(final) == 24 and len(set(final)) == 24
    assert final[: len(partial)] == partial  # nothing rewritten, only appended
    if sig == signal.SIGINT:
        return
    # The same episodes as an uninterrupted run, byte for byte but for the timestamps, even
    # one batched differently: each episode samples from its own (seed, task, sample) stream.
    straight = tmp_path / "straight"
    run = oreo_in_process(*kill_cmd(tiny_model_dir, straight, "--batch-size", "3")[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    assert untimed(out) == untimed(straight)


def untimed(out: Path) -> dict[tuple[str, int], str]:
    """Each stored line (as JSON text) by its (task, sample) key, without its timestamps."""
    import json

    lines = {}
    for line in (out / "episodes-00000.jsonl").read_text().splitlines():
        record = json.loads(line)
        for stamp in ("started", "finished"):
            record["meta"].pop(stamp)
        lines[(record["task_id"], record["meta"]["sample"])] = json.dumps(record, sort_keys=True)
    return lines


def run_cli(*args: str):
    return oreo_in_process("collect", *args)


@pytest.mark.parametrize("granularity", ["response", "step"])
def test_gold_policy_writes_correct_sft_episodes(tmp_path, granularity):
    out = tmp_path / "gold"
    run = run_cli(
        "--env", "oreo/GSMSymbolic-v0", "--policy", "gold", "--out", str(out),
        "-o", "size=30", "-o", f"granularity={granularity}", "--tasks", "6",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    episodes = load_episodes(out)
    assert len(episodes) == 6 and all(e.success and e.meta["eos"] for e in episodes)
    assert all("####" in e.response and e.info["answer"] for e in episodes)


def test_agent_env_episodes_hold_the_exact_conversation(tiny_model_dir, tmp_path):
    pytest.importorskip("alfworld")
    from oreo_agents.rollout.agent_prompt import AgentPrompt

    out = tmp_path / "agent"
    run = run_cli(
        "--env", "oreo/ALFWorld-v0", "--split", "bundled", "--model", str(tiny_model_dir),
        "--out", str(out), "--max-new-tokens", "8", "--constrain-actions",
        "-o", "max_episode_steps=4",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    episodes = load_episodes(out)
    assert len(episodes) == 6 and all(e.truncated and len(e.steps) == 4 for e in episodes)
    e = episodes[0]
    history = [(s["action"], s["env_observation"]) for s in e.steps]
    first = e.info.get("first_observation")
    rendered = AgentPrompt().render(first, history) if first else None
    text = e.prompt + e.response
    assert text.endswith("\n> ") and all(f"\n> {a}\n" in text for a, _ in history)
    if rendered is not None:
        assert text == rendered


def test_expert_policy_wins_bundled_alfworld(tmp_path):
    pytest.importorskip("alfworld")
    out = tmp_path / "expert"
    run = run_cli("--env", "oreo/ALFWorld-v0", "--split", "bundled", "--policy", "expert",
                  "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    episodes = load_episodes(out)
    assert len(episodes) == 6 and all(e.success for e in episodes)


def test_env_workers_give_the_same_model_episodes(tiny_model_dir, tmp_path):
    pytest.importorskip("alfworld")
    runs = {}
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}"
        run = run_cli(
            "--env", "oreo/ALFWorld-v0", "--split", "bundled", "--model", str(tiny_model_dir),
            "--out", str(out), "--max-new-tokens", "6", "-k", "2", "--batch-size", "5",
            "-o", "max_episode_steps=3", "--env-workers", workers,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        runs[workers] = sorted(
            (e.task_id, e.meta["sample"], e.prompt, e.response, e.reward)
            for e in load_episodes(out)
        )
    assert len(runs["0"]) == 12 and runs["2"] == runs["0"]


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_env_workers_exit_with_a_killed_collect(tiny_model_dir, tmp_path, sig):
    out = tmp_path / "eps"
    cmd = kill_cmd(tiny_model_dir, out, "--batch-size", "4", "--env-workers", "2")
    proc = start_until(cmd, out, episodes=2)
    workers = children(proc.pid)
    assert len(workers) >= 2, "the env workers should be running"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "env workers outlived the collector"
    done = oreo_in_process(*cmd[3:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(set(keys(out))) == 24
