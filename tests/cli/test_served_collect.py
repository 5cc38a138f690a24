"""`oreo collect --backend openai` killed with SIGKILL mid-run resumes without duplicates or gaps,
and ends with the episodes of an uninterrupted run: the served backend keeps the guarantees of
the in-process ones (tests/cli/test_collect.py), each episode sampled from its own (seed, task,
sample) stream whatever the batching and wherever the run was cut.

The server (tests/served_server.py, the tiny HF model behind an OpenAI-compatible API) runs in a
thread of this process; the killed collect is a process of its own."""

from __future__ import annotations

import signal

import pytest
from test_collect import collect_cmd, keys, start_until, untimed

from conftest import oreo_in_process
from oreo_agents.generation import load_backend
from served_server import Server

pytest.importorskip("httpx")  # the extra oreo[served]


@pytest.fixture
def server(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # Served under its folder, so the client loads the tokenizer and stores the sampled ids;
    # 0.05 s an answer keeps the run long enough for the kill to land mid-way.
    hf = load_backend("hf", str(tiny_model_dir), batch_size=4)
    served = Server(hf, name=str(tiny_model_dir), delay=0.05)
    yield served
    served.close()


@pytest.mark.slow
def test_sigkilled_served_collect_resumes_to_the_uninterrupted_episodes(
    server, tiny_model_dir, tmp_path
):
    def cmd(out, batch):
        return collect_cmd(
            tiny_model_dir, out, "--samples", "2", "--tasks", "12", "--max-new-tokens", "48",
            "--temperature", "1.0", "--backend", "openai", "--base-url", server.url,
            "--batch-size", batch,
        )  # fmt: skip

    out = tmp_path / "eps"
    proc = start_until(cmd(out, "2"), out, episodes=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = keys(out)
    assert 3 <= len(partial) < 24, "the kill should land mid-way"
    done = oreo_in_process(*cmd(out, "2")[3:])
    assert done.returncode == 0, done.stdout + done.stderr
    final = keys(out)
    assert len(final) == 24 and len(set(final)) == 24  # every (task, sample) once
    assert final[: len(partial)] == partial  # nothing rewritten, only appended
    straight = tmp_path / "straight"
    run = oreo_in_process(*cmd(straight, "3")[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    assert untimed(out) == untimed(straight)
