"""A learned ALFWorld agent end to end through the CLI, on the bundled games: expert and random
episodes -> a from-scratch model with a BPE tokenizer trained on the episodes' text -> SFT ->
OREO -> greedy, likelihood-ranked and value-guided (best-of-K) acting with `oreo rollout`."""

from __future__ import annotations

import json

import pytest

from conftest import oreo_in_process

ALFWORLD = ["--env", "oreo/ALFWorld-v0", "-o", "split=bundled"]


def oreo(*args):
    run = oreo_in_process(*args)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.mark.slow
def test_tiny_agent_trains_and_acts_on_bundled_games(tmp_path):
    pytest.importorskip("alfworld")
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.models.tiny import agent_model
    from oreo_agents.rollout.agent_prompt import DEFAULT_INSTRUCTION

    expert, random = tmp_path / "expert", tmp_path / "random"
    oreo("collect", *ALFWORLD, "--model", "expert", "--out", expert)
    oreo("collect", *ALFWORLD, "-o", "max_episode_steps=6", "--model", "random", "--samples", 2,
         "--out", random, "--seed", 1)  # fmt: skip
    episodes = load_episodes(expert)
    assert len(episodes) == 6 and all(e.success for e in episodes)
    assert not all(e.success for e in load_episodes(random))  # OREO needs failures too
    texts = [DEFAULT_INSTRUCTION] + [
        e.prompt + "".join(s["action"] + s["observation"] for s in e.steps) for e in episodes
    ]
    _, tok = agent_model(tmp_path / "init", texts, vocab_size=600, hidden_size=64, num_layers=2)
    # the trained merges make the domain's words single tokens, and text round-trips exactly
    obs = episodes[0].steps[0]["observation"]
    assert tok.decode(tok.encode(obs)) == obs
    assert len(tok.encode(episodes[0].prompt)) < len(episodes[0].prompt.encode()) / 3
    assert len(tok.encode(" countertop")) == 1  # a word after a space, as in the text

    common = ["--batch-size", 4, "--micro-batch-size", 2, "--max-length", 2048,
              "--report-to", "none"]  # fmt: skip
    oreo("train", "--algo", "sft", "--data", expert, "--model", tmp_path / "init",
         "--out", tmp_path / "sft", "--max-steps", 3, "--lr", 1e-3, *common)  # fmt: skip
    oreo("train", "--algo", "oreo", "--data", f"{expert},{random}",
         "--model", tmp_path / "sft" / "policy", "--out", tmp_path / "oreo", "--max-steps", 2,
         "--lr", 1e-4, "--set", "value_lr=1e-3", *common)  # fmt: skip

    policy, value = tmp_path / "oreo" / "policy", tmp_path / "oreo" / "value"
    acting = [*ALFWORLD, "-o", "max_episode_steps=3", "--policy", policy, "--backend", "hf",
              "--max-new-tokens", 12]  # fmt: skip
    out = oreo("rollout", *acting, "--out", tmp_path / "greedy.json")
    assert "success by task_type" in out
    oreo("rollout", *acting, "--strategy", "best-of-k", "--k", 2, "--value", value,
         "--out", tmp_path / "best.json")  # fmt: skip
    # acting by the policy's likelihood of the admissible actions (ALFWorld's verbs only)
    oreo("rollout", *acting, "--rank-actions", "--out", tmp_path / "ranked.json")
    ranked = json.loads((tmp_path / "ranked.json").read_text())
    verbs = ("go to", "take", "move", "open", "close", "use", "heat", "cool", "clean", "look",
             "inventory", "examine", "help", "put")  # fmt: skip
    for record in ranked["records"]:
        turns = record["samples"][0]["text"].split("\n> ")  # action, then the env's reply
        actions = [t.split("\n")[0] for t in turns if t]
        assert actions and all(a.startswith(verbs) for a in actions), actions
    assert ranked["config"]["rank_actions"] is True
    # value-guided acting among the policy's 2 most likely admissible actions (the benchmark's
    # way), the value model reading each after the cached history
    oreo("rollout", *acting, "--rank-actions", "--strategy", "best-of-k", "--k", 2,
         "--value", value, "--out", tmp_path / "ranked_best.json")  # fmt: skip
    for record in json.loads((tmp_path / "ranked_best.json").read_text())["records"]:
        (sample,) = record["samples"]
        assert sample["candidates"] == 2 * sample["steps"]  # ALFWorld admits more than 2
    greedy = json.loads((tmp_path / "greedy.json").read_text())
    best = json.loads((tmp_path / "best.json").read_text())
    for report in (greedy, best, ranked):
        assert report["tasks"] == 6 and len(report["subsets"]["task_type"]) == 6
    for record in best["records"]:
        (sample,) = record["samples"]
        # K sampled actions scored per step (fewer when samples coincide)
        assert 1 <= sample["steps"] <= 3 and sample["steps"] <= sample["candidates"]
        assert sample["candidates"] <= 2 * sample["steps"]
