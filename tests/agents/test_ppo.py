"""PPO end to end: scoring samples and the first update's invariant in-process, then
`oreo train --algo ppo --env ...` through the CLI: iterations, a resume that equals an
uninterrupted run, a kill in the middle, the ORM reward, and the errors a user can make."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from conftest import oreo_in_process
from oreo_agents.algorithms import get_algorithm
from oreo_agents.algorithms.ppo import PPOConfig
from oreo_agents.algorithms.ppo_experience import group_advantages, make_experience
from oreo_agents.data.episodes import Episode
from oreo_agents.data.tokenization import collate, tokenize_episodes

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    from oreo_agents.models.tiny import chain_model

    out = tmp_path_factory.mktemp("chain")
    chain_model(out, hidden_size=32, num_layers=2, num_heads=2, max_positions=256)
    return out


@pytest.fixture(scope="module")
def random_orm(chain_dir, tmp_path_factory):
    """An outcome reward model with a random head: untrained, but its rewards vary by episode
    (a random policy never solves a task, so the env's reward would be 0 everywhere)."""
    from oreo_agents.models.value import ValueModel

    torch.manual_seed(0)
    orm = ValueModel.from_pretrained(str(chain_dir))
    with torch.no_grad():
        orm.head.weight.normal_(0, 1.0)
    out = tmp_path_factory.mktemp("orm")
    orm.save_pretrained(out)
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_first_update_on_fresh_scores_has_ratio_1_and_no_clipping(chain_dir, temperature):
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.models.policy import load_policy
    from oreo_agents.models.value import ValueModel

    tok = load_tokenizer(str(chain_dir))
    eps = [
        Episode("oreo/Chain-v0", str(i), "a=3;b=a+4;b?\n", [{"action": a, "observation": ""}],
                r, r > 0, meta={"sample": 0})
        for i, (a, r) in enumerate([("b=a+4=3+4=7\n#### 7", 1.0), ("b=a+4=3+4=8\n#### 8", 0.0)])
    ]  # fmt: skip
    tokenized = tokenize_episodes(eps, tok)
    policy = load_policy(str(chain_dir))
    models = {
        "policy": policy,
        "reference": load_policy(str(chain_dir), trainable=False),
        "value": ValueModel.from_pretrained(str(chain_dir)),
    }
    settings = PPOConfig(experience="x", temperature=temperature)
    experience, totals = make_experience(
        models, tokenized, [[0.0, r] for r in (1.0, 0.0)], settings, pad_id=tok.pad_token_id,
        micro_batch_size=1,
    )  # fmt: skip
    assert totals["reward"] == 1.0 and totals["kl"] == pytest.approx(0.0, abs=1e-6)
    first = experience["0/0"]
    mask = torch.tensor(tokenized[0].action_mask[1:])
    # the sampling policy's log-probs: softmax of the logits over the collection temperature
    ids = torch.tensor([tokenized[0].input_ids])
    with torch.no_grad():
        scaled = torch.log_softmax(policy(input_ids=ids).logits[0, :-1] / temperature, -1)
    direct = scaled.gather(-1, ids[0, 1:, None])[:, 0]
    assert torch.allclose(first["old_logps"][mask], direct[mask], atol=1e-5)
    # zero critic, lambda 0.95: the correct episode's last action token has advantage 1
    last = int(mask.nonzero().max())
    assert first["advantages"][last].item() == pytest.approx(1.0)
    assert (first["advantages"][~mask] == 0).all()
    spec = get_algorithm("ppo")
    batch = spec.collate([(x, experience[f"{x.task_id}/0"]) for x in tokenized], tok.pad_token_id)
    loss, metrics = spec.step({**models, "policy": policy}, batch, settings)
    assert metrics["ratio"].item() == pytest.approx(1.0, abs=1e-5)
    assert metrics["clip_fraction"].item() == 0.0
    assert metrics["value_clip_fraction"].item() == 0.0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_group_advantages_baseline_each_sample_with_its_tasks_others(chain_dir):
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.models.policy import load_policy
    from oreo_agents.models.value import ValueModel

    tok = load_tokenizer(str(chain_dir))
    answers = [("t0", 0, "#### 7", 1.0), ("t0", 1, "#### 8", 0.0), ("t0", 2, "#### 9", 0.0),
               ("t1", 0, "#### 1", 0.0), ("t1", 1, "#### 2", 0.0)]  # fmt: skip
    eps = [Episode("oreo/Chain-v0", t, "a=3;b=a+4;b?\n", [{"action": a, "observation": ""}], r,
                   r > 0, meta={"sample": i}) for t, i, a, r in answers]  # fmt: skip
    tokenized = tokenize_episodes(eps, tok)
    models = {
        "policy": load_policy(str(chain_dir)),
        "reference": load_policy(str(chain_dir), trainable=False),  # the same: no KL
        "value": ValueModel.from_pretrained(str(chain_dir)),
    }
    settings = PPOConfig(experience="x", advantage="group", samples=2)
    experience, _ = make_experience(
        models, tokenized, [[r] for *_, r in answers], settings, pad_id=tok.pad_token_id,
        micro_batch_size=2,
    )  # fmt: skip
    assert [experience[f"{t}/{i}"]["return"].item() for t, i, *_ in answers] == pytest.approx(
        [1.0, 0.0, 0.0, 0.0, 0.0], abs=1e-6
    )
    group_advantages(experience, tokenized)
    # t0: 1 - (0 + 0) / 2, 0 - (1 + 0) / 2 twice; t1: both wrong, nothing to learn
    for (t, i, *_), ep, want in zip(answers, tokenized, [1.0, -0.5, -0.5, 0.0, 0.0], strict=True):
        adv, mask = experience[f"{t}/{i}"]["advantages"], torch.tensor(ep.action_mask[1:])
        assert adv[mask].tolist() == pytest.approx([want] * int(mask.sum()), abs=1e-6)
        assert (adv[~mask] == 0).all()
    with pytest.raises(ValueError, match="samples must be >= 2"):
        PPOConfig(advantage="group", samples=1)


def ppo_cmd(model, out, *extra):
    return [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "ppo", "--env", "oreo/Chain-v0",
        "-o", "size=40", "--split", "train", "--model", str(model), "--out", str(out),
        "--batch-size", "4", "--micro-batch-size", "2", "--lr", "1e-3", "--report-to", "none",
        "--save-minutes", "0", "--set", "iterations=2", "--set", "tasks=2", "--set", "samples=2",
        "--set", "max_new_tokens=24", "--set", "ppo_epochs=2", "--set", "critic_lr=1e-3",
        *extra,
    ]  # fmt: skip


def run(cmd, ok=True):
    done = oreo_in_process(*cmd[3:])
    if ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def records(out):
    return [json.loads(x) for x in (out / "iterations.jsonl").read_text().splitlines()]


def test_ppo_cli_iterates_and_a_resume_equals_one_run(chain_dir, random_orm, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    reward = ["--set", "reward=orm", "--set", f"reward_model={random_orm}"]
    done = run(ppo_cmd(chain_dir, whole, *reward))
    assert "iteration 1" in done.stdout and "saved the policy" in done.stdout
    log = records(whole)
    assert [r["iteration"] for r in log] == [0, 1]
    # 2 tasks x 2 samples = 4 episodes = one batch; 2 epochs -> 2 optimizer steps per iteration
    assert [r["samples_seen"] for r in log] == [4, 8]
    assert [r["optimizer_steps"] for r in log] == [4 // 4 * 2, 4]
    assert {"success_rate", "reward_mean", "kl_mean", "wall_s"} <= set(log[0])
    assert os.readlink(whole / "policy") == "iter-0001/train/policy"
    assert weights(whole / "policy").keys() == weights(chain_dir).keys()
    assert any(  # the policy moved
        not torch.equal(a, b)
        for a, b in zip(
            weights(whole / "policy").values(), weights(chain_dir).values(), strict=True
        )
    )
    # stopped by --max-steps inside iteration 1, then resumed: the same weights as one run
    first = run(ppo_cmd(chain_dir, split, *reward, "--max-steps", "3"))
    assert "iteration 1" not in first.stdout and len(records(split)) == 1
    run(ppo_cmd(chain_dir, split, *reward))
    assert [r["optimizer_steps"] for r in records(split)] == [2, 4]
    for name in ("policy", "value"):
        a, b = weights(whole / name), weights(split / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    again = run(ppo_cmd(chain_dir, whole, *reward))  # finished: nothing to do
    assert "iteration 0" not in again.stdout and len(records(whole)) == 2
    other = run(ppo_cmd(chain_dir, whole, "--set", "reward=dense"), ok=False)
    assert other.returncode == 2 and "other settings (reward, reward_model)" in other.stdout


def adam_steps(train_out):
    """The Adam step count of each optimizer (policy, critic) in an update's last checkpoint."""
    from oreo_agents.training.checkpoint import CheckpointDir

    state = CheckpointDir(train_out).current / "state"
    counts = []
    for name in ("optimizer.bin", "optimizer_1.bin"):
        saved = torch.load(state / name, weights_only=True)["state"]
        counts.append({int(v["step"]) for v in saved.values()})
    return counts


@pytest.mark.slow
def test_carried_optimizers_count_every_iterations_steps_and_resume_exactly(
    chain_dir, random_orm, tmp_path
):
    # the ORM's rewards vary by episode, so the updates move the models (module fixture)
    orm = ["--set", "reward=orm", "--set", f"reward_model={random_orm}"]
    carry = ["--set", "carry_optimizer=true", *orm]
    fresh, whole, split = tmp_path / "fresh", tmp_path / "whole", tmp_path / "split"
    run(ppo_cmd(chain_dir, fresh, *orm))
    run(ppo_cmd(chain_dir, whole, *carry))
    # 2 optimizer steps per iteration: afresh each iteration counts 2, carried counts on to 4
    assert adam_steps(fresh / "iter-0001" / "train") == [{2}, {2}]
    assert adam_steps(whole / "iter-0000" / "train") == [{2}, {2}]
    assert adam_steps(whole / "iter-0001" / "train") == [{4}, {4}]
    a, b = weights(fresh / "policy"), weights(whole / "policy")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the carried moments changed the update
    # stopped inside iteration 1 and resumed: its own checkpoint wins, the same weights as one run
    run(ppo_cmd(chain_dir, split, *carry, "--max-steps", "3"))
    run(ppo_cmd(chain_dir, split, *carry))
    for name in ("policy", "value"):
        a, b = weights(whole / name), weights(split / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_ppo_killed_mid_run_resumes_to_the_end(chain_dir, tmp_path):
    out = tmp_path / "killed"
    cmd = ppo_cmd(chain_dir, out, "--set", "iterations=3")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 300
    while not (out / "iter-0001").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode != 0 or len(records(out)) == 3  # (or it had already finished)
    run(cmd)
    log = records(out)
    assert [r["iteration"] for r in log] == [0, 1, 2]
    assert [r["samples_seen"] for r in log] == [4, 8, 12]
    assert os.readlink(out / "policy") == "iter-0002/train/policy"


def test_dense_rewards_of_collected_episodes_look_up_their_tasks(tmp_path):
    from oreo_agents.algorithms.ppo_experience import step_rewards as _step_rewards
    from oreo_agents.training.config import TrainConfig
    from oreo_envs.registration import make_env

    env = make_env("oreo/Chain-v0", {"size": 5, "split": "train"}).unwrapped
    task = env.task(env.task_ids[0])
    gold = Episode("oreo/Chain-v0", task.task_id, task.question,
                   [{"action": task.solution, "observation": ""}], 1.0, True)  # fmt: skip
    options = {"size": 5, "split": "train"}
    cfg = TrainConfig("ppo", None, "m", str(tmp_path), env="oreo/Chain-v0",
                      env_options=options, settings={"reward": "dense"})  # fmt: skip

    class Tok:  # the key is all `_step_rewards` reads of a tokenized episode
        task_id, sample = gold.task_id, 0

    [rewards] = _step_rewards(cfg, [gold], [Tok()])
    lines = task.solution.count("\n")  # every line but the answer reproduces a result
    assert rewards == pytest.approx([0.5 / lines] * lines + [1.0])


def test_ppo_with_an_orm_reward(chain_dir, tmp_path):
    from oreo_agents.models.value import ValueModel

    orm = ValueModel.from_pretrained(str(chain_dir))
    with torch.no_grad():
        orm.head.bias.fill_(2.0)  # a reward model that calls everything likely correct
    orm.save_pretrained(tmp_path / "orm")
    out = tmp_path / "ppo-orm"
    run(ppo_cmd(chain_dir, out, "--set", "reward=orm", "--set", f"reward_model={tmp_path}/orm",
                "--set", "iterations=1"))  # fmt: skip
    [record] = records(out)
    sigmoid_2 = 1 / (1 + torch.exp(torch.tensor(-2.0))).item()
    assert record["reward_mean"] == pytest.approx(sigmoid_2, abs=1e-4)  # untrained backbone
    assert record["success_rate"] == 0.0  # what the env says is not the reward here


def test_ppo_cli_with_group_advantages(chain_dir, random_orm, tmp_path):
    out = tmp_path / "ppo-group"
    run(ppo_cmd(chain_dir, out, "--set", "advantage=group", "--set", "whiten_advantages=false",
                "--set", "reward=orm", "--set", f"reward_model={random_orm}",
                "--set", "iterations=1"))  # fmt: skip
    experience = torch.load(out / "iter-0000" / "experience.pt", weights_only=True)
    by_task: dict[str, list[float]] = {}
    for key, arrays in experience.items():
        a = arrays["advantages"]
        [advantage] = a[a != 0].unique().tolist()
        by_task.setdefault(key.split("/")[0], []).append(advantage)  # one per sample
    assert len(by_task) == 2 and all(len(a) == 2 for a in by_task.values())
    # two samples of a task: advantages +d and -d (RLOO's baseline is the other sample)
    assert all(a == pytest.approx(-b, abs=1e-5) and abs(a) > 0 for a, b in by_task.values())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "x"], "not both"),
        (["--epochs", "2"], "ppo_epochs"),
        (["--set", "reward=orm"], "reward_model"),
        (["--set", "reward=nope"], "reward must be one of"),
        (["--batch-size", "8"], "do not fill one batch"),
        (["-o", "colour=red"], "colour"),
    ],
)
def test_ppo_refuses_bad_input_before_any_compute(chain_dir, tmp_path, extra, message):
    done = run(ppo_cmd(chain_dir, tmp_path / "o", *extra), ok=False)
    assert done.returncode == 2 and message in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "o" / "iter-0000").exists()


def test_offline_algorithms_refuse_an_env(tiny_model_dir, tmp_path):
    from oreo_agents.training.config import TrainConfig

    with pytest.raises(ValueError, match="trains on logged episodes"):
        TrainConfig("sft", None, str(tiny_model_dir), str(tmp_path), env="oreo/Chain-v0")
    with pytest.raises(ValueError, match="trains online"):
        cfg = TrainConfig("ppo", "d", "m", "o")
        get_algorithm("ppo").select([], cfg.settings, "d")
    assert replace(PPOConfig(), reward="dense").reward == "dense"


def test_collate_pads_experience_beside_the_batch(chain_dir):
    from oreo_agents.models.loading import load_tokenizer

    tok = load_tokenizer(str(chain_dir))
    eps = [
        Episode("oreo/Chain-v0", str(i), "a=1;a?\n", [{"action": a, "observation": ""}], 0.0,
                False, meta={"sample": 0})
        for i, a in enumerate(["#### 1", "a=1\n#### 1"])
    ]  # fmt: skip
    tokenized = tokenize_episodes(eps, tok)
    arrays = [{n: torch.full((len(x) - 1,), float(i + 1)) for n in
               ("old_logps", "old_values", "advantages", "returns")}
              for i, x in enumerate(tokenized)]  # fmt: skip
    batch = get_algorithm("ppo").collate(list(zip(tokenized, arrays, strict=True)), 0)
    plain = collate(tokenized, 0)
    assert torch.equal(batch["input_ids"], plain["input_ids"])
    width = plain["input_ids"].shape[1] - 1
    short = len(tokenized[0]) - 1
    assert batch["advantages"].shape == (2, width)
    assert batch["advantages"][0, :short].eq(1).all() and batch["advantages"][0, short:].eq(0).all()
