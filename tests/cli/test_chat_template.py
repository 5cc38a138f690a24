"""`--chat-template` through the CLI for every kind of env: the model tokenizer's template
renders the prompt (math: the instruction as the system turn; agents: one turn per action and
observation), and the episodes hold the ids the model was fed."""

from __future__ import annotations

import os
import sys

import pytest

from conftest import oreo_in_process
from oreo_agents.data.episodes import load_episodes
from oreo_agents.data.tokenization import tokenize_episode

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
CASES = {
    "oreo/GSMSymbolic-v0": ["-o", "size=20", "--tasks", "2"],
    "oreo/Chain-v0": ["-o", "size=20", "-o", "granularity=step", "--tasks", "2"],
    "oreo/ALFWorld-v0": ["--split", "bundled", "--tasks", "2", "-o", "max_episode_steps=3"],
}


@pytest.mark.parametrize("env_id", list(CASES))
def test_chat_template_collect_works_for_every_env(chat_model_dir, tmp_path, env_id):
    from oreo_agents.data.inputs import tokenizer_id
    from oreo_agents.models.loading import load_tokenizer

    if "ALFWorld" in env_id:
        pytest.importorskip("alfworld")
    out = tmp_path / "eps"
    cmd = [
        sys.executable, "-m", "oreo_cli", "collect", "--env", env_id, "--model",
        str(chat_model_dir), "--out", str(out), "--chat-template", "--max-new-tokens", "8",
        *CASES[env_id],
    ]  # fmt: skip
    run = oreo_in_process(*cmd[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    episodes = load_episodes(out)
    assert len(episodes) == 2
    tok = load_tokenizer(str(chat_model_dir))  # as the collector (and training) load it
    for ep in episodes:
        assert ep.prompt.startswith("<|im_start|>") and ep.prompt.endswith(
            "<|im_start|>assistant\n"
        )
        assert ep.meta["tokenizer"] == tokenizer_id(tok)
        assert ep.prompt_ids == tok(ep.prompt, add_special_tokens=False)["input_ids"]
        item = tokenize_episode(ep, tok)
        assert item.input_ids[: len(ep.prompt_ids)] == ep.prompt_ids
    if env_id == "oreo/GSMSymbolic-v0":  # MathEnv: its instruction is the system turn
        assert episodes[0].prompt.startswith("<|im_start|>system\nPlease reason step by step")
    if env_id == "oreo/ALFWorld-v0":  # each observation is a user turn after the action's
        text = episodes[0].prompt + episodes[0].response
        assert text.count("<|im_start|>user\n") == 1 + len(episodes[0].steps)
