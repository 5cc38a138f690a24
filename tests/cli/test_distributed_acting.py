"""`oreo collect` and `oreo rollout` under torchrun with 2 CPU processes: the ranks split the
tasks, write their own shards of one store (every task and sample exactly once, the same
episodes as 1 process, resumable), and rank 0 writes the report of all tasks."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import pytest

# Pinned to the CPU (gloo, fp32) on a GPU machine too: these tests hold the CPU path to exact
# equalities that CUDA's kernels do not promise (batch-invariant sampling, bitwise-deterministic
# backward passes, one device per process); tests/gpu holds CUDA to its own tolerances.
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "COLUMNS": "160",
    "OMP_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def collect_args(model, out):
    return [
        "-m", "oreo_cli", "collect", "--env", "oreo/GSMSymbolic-v0", "-o", "size=30",
        "--model", str(model), "--out", str(out), "--tasks", "5", "--samples", "2",
        "--max-new-tokens", "10", "--batch-size", "3", "--seed", "3",
    ]  # fmt: skip


def lines(store):
    """Every stored episode line of every shard, as written (repeats included)."""
    out = []
    for shard in sorted(store.glob("episodes-*.jsonl")):
        out += [json.loads(x) for x in shard.read_text().splitlines() if x.strip()]
    return out


def comparable(record):
    return {k: record[k] for k in ("task_id", "prompt", "prompt_ids", "steps", "reward")}


@pytest.mark.slow
def test_two_process_collect_writes_each_key_once_and_equals_one_process(chat_model_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, *collect_args(chat_model_dir, one)])
    done = run([*TORCHRUN, *collect_args(chat_model_dir, two)])
    assert done.stdout.count("success rate") == 1  # one summary, from rank 0
    shards = sorted(p.name for p in two.glob("episodes-*.jsonl"))
    assert [s[:11] for s in shards] == ["episodes-r0", "episodes-r1"]
    keys = collections.Counter((r["task_id"], r["meta"]["sample"]) for r in lines(two))
    assert len(keys) == 10 and set(keys.values()) == {1}
    by_key = {(r["task_id"], r["meta"]["sample"]): comparable(r) for r in lines(one)}
    assert {(r["task_id"], r["meta"]["sample"]): comparable(r) for r in lines(two)} == by_key
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["episodes"] == 10 and manifest["tasks"] == 5
    again = run([*TORCHRUN, *collect_args(chat_model_dir, two)])  # resumes: nothing to do
    assert "resuming: 10 episodes" in again.stdout and len(lines(two)) == 10


@pytest.mark.slow
def test_two_process_rollout_reports_every_task_on_rank_0(chat_model_dir, tmp_path):
    def args(out):
        return [
            "-m", "oreo_cli", "rollout", "--env", "oreo/GSMSymbolic-v0", "-o", "size=30",
            "--policy", str(chat_model_dir), "--out", str(out), "--tasks", "5",
            "--strategy", "sample", "--k", "2", "--max-new-tokens", "10", "--seed", "3",
        ]  # fmt: skip

    run([sys.executable, *args(tmp_path / "one.json")])
    done = run([*TORCHRUN, *args(tmp_path / "two.json")])
    assert done.stdout.count("report written") == 1
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert two["tasks"] == 5
    assert [r["task_id"] for r in two["records"]] == [r["task_id"] for r in one["records"]]
    assert [r["samples"] for r in two["records"]] == [r["samples"] for r in one["records"]]
    assert two["pass_at_k"] == one["pass_at_k"] and two["maj_at_k"] == one["maj_at_k"]
