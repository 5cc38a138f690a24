"""Losses that average over tokens (or sequences) average over the whole optimizer batch, so one
optimizer step's gradient does not depend on how the batch is split into micro-batches or
processes (TRL and transformers' Trainer normalise by the batch's token count the same way).

The gradient is taken from `run_train` itself: a probe records every optimizer's gradients at
its first step. The data mixes long gold solutions with short wrong answers, so micro-batches
hold very different numbers of target tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

PROBE = textwrap.dedent("""
    import os, sys, torch
    from oreo_agents.training.config import TrainConfig
    from oreo_agents.training.loop import run_train

    model, data, out, algo, micro, mean_per_micro_batch, batch = sys.argv[1:8]
    grads, step = [], torch.optim.AdamW.step

    def probe(self, *args, **kwargs):
        if len(grads) < 2:  # the policy's optimizer, then the value model's (OREO)
            params = [p for g in self.param_groups for p in g["params"]]
            grads.append([torch.zeros(0) if p.grad is None else p.grad.clone() for p in params])
        return step(self, *args, **kwargs)

    torch.optim.AdamW.step = probe
    settings = {"value_lr": 1e-3} if algo in ("oreo", "orm", "orm-rank") else {}
    run_train(TrainConfig(
        algo=algo, data=data, model=model, out=out, batch_size=int(batch),
        micro_batch_size=int(micro), max_steps=1, lr=1e-3, warmup_ratio=0.0, grad_clip=1e9,
        max_length=1024, report_to="none", settings=settings,
        per_micro_batch_mean=mean_per_micro_batch == "1",
    ))
    if os.environ.get("RANK", "0") == "0":
        torch.save(grads, out + ".grads")
""")


def gradients(
    tmp_path, model, data, algo, micro, ranks=1, per_micro_batch=False, batch=16
) -> list:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    out = tmp_path / f"{algo}-{ranks}x{micro}-{int(per_micro_batch)}"
    launcher = TORCHRUN if ranks == 2 else [sys.executable]
    args = [
        str(script),
        str(model),
        str(data),
        str(out),
        algo,
        str(micro),
        str(int(per_micro_batch)),
        str(batch),
    ]
    run = subprocess.run([*launcher, *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return torch.load(f"{out}.grads")


def max_difference(a: list, b: list) -> float:
    """The largest difference of two runs' gradients beyond fp32's summation-order noise (a
    relative 1e-5 of each value): 0 when they agree to 1e-6."""
    return max(
        ((x - y).abs() - 1e-5 * x.abs()).clamp(min=0).max().item()
        for ga, gb in zip(a, b, strict=True)
        for x, y in zip(ga, gb, strict=True)
        if x.numel()  # a parameter the loss does not reach (an unused LM head) has no gradient
    )


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sft", "oreo", "orm", "orm-rank"])
def test_one_step_has_the_same_gradient_however_the_batch_is_split(
    tiny_model_dir, mixed_data, tmp_path, algo
):
    batch = 8 if algo == "orm-rank" else 16  # the data's 8 tasks make 8 pairs
    whole = gradients(tmp_path, tiny_model_dir, mixed_data, algo, batch, batch=batch)
    for micro, ranks in ((4, 1), (1, 1), (4, 2)):  # e.g. 4 x 4, 16 x 1, 2 ranks x 2 x 4
        split = gradients(tmp_path, tiny_model_dir, mixed_data, algo, micro, ranks, batch=batch)
        assert max_difference(whole, split) < 1e-6, (micro, ranks)


@pytest.mark.slow
def test_the_old_per_micro_batch_mean_is_kept_on_request(tiny_model_dir, mixed_data, tmp_path):
    """``per_micro_batch_mean`` gives back the mean of the micro-batches' token means, which
    differs from the batch's token mean on micro-batches of unequal token counts."""
    whole = gradients(tmp_path, tiny_model_dir, mixed_data, "sft", 16)
    old = gradients(tmp_path, tiny_model_dir, mixed_data, "sft", 4, per_micro_batch=True)
    new = gradients(tmp_path, tiny_model_dir, mixed_data, "sft", 4)
    assert max_difference(whole, new) < 1e-6
    assert max_difference(whole, old) > 1e-4


def test_the_normalizers_are_the_batch_counts_over_its_micro_batches(tiny_model_dir, mixed_data):
    """Hand-counted: each micro-batch carries its optimizer batch's target tokens divided by
    the micro-batches it is split into, and those tokens are the micro-batches' masks summed."""
    from oreo_agents.algorithms.base import shifted
    from oreo_agents.data import batches
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.training.config import TrainConfig

    cfg = TrainConfig(algo="sft", data=str(mixed_data), model=str(tiny_model_dir), out="unused",
                      batch_size=8, micro_batch_size=2, max_length=1024)  # fmt: skip
    plan = batches.prepare(cfg, load_tokenizer(cfg.model))
    micro = plan.micro_batches()
    assert len(micro) == 8 and plan.accumulation == 4
    for step in (0, 1):
        parts = [micro[i] for i in range(4 * step, 4 * step + 4)]
        tokens = sum(int(shifted(b)[1].sum()) for b in parts)
        for b in parts:
            assert b["normalizers"]["tokens"].item() == pytest.approx(tokens / 4)


def test_every_kto_sequence_matched_or_mismatched_is_cut_at_max_length(tiny_model_dir, mixed_data):
    """KTO's mismatched twins (prompt i, response i + 1) are cut at max_length as the matched
    sequences are; before, a long prompt with another's long response ran past it."""
    from oreo_agents.data import batches
    from oreo_agents.data.tokenization import mismatched
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.training.config import TrainConfig

    max_length = 600  # prompts are 309-479 tokens (a byte tokenizer), episodes up to 783
    cfg = TrainConfig(algo="kto", data=str(mixed_data), model=str(tiny_model_dir), out="unused",
                      batch_size=8, micro_batch_size=4, max_length=max_length)  # fmt: skip
    plan = batches.prepare(cfg, load_tokenizer(cfg.model))
    micro = plan.micro_batches()
    uncut = max(len(x) for i in range(len(micro))
                for x in mismatched([plan.items[k] for k in micro.groups[i]]))  # fmt: skip
    assert uncut > max_length  # the data has twins that would run past it
    for i in range(len(micro)):
        batch = micro[i]
        assert batch["input_ids"].shape[1] <= max_length
        assert batch["mismatched"]["input_ids"].shape[1] <= max_length


def _losses():
    from oreo_agents.losses import orm_loss, sft_loss
    from oreo_agents.losses.ppo import ppo_policy_loss, ppo_value_loss

    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    logits, labels, x, y, z = rand(4, 9, 7), torch.randint(0, 7, (4, 9), generator=g), *(
        rand(4, 9) for _ in range(3))  # fmt: skip
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    return {
        "sft": lambda m, n=None: sft_loss(logits[m.any(1)], labels[m.any(1)], m[m.any(1)], n)[0],
        "orm": lambda m, n=None: orm_loss(x[m.any(1)], rewards[m.any(1)], m[m.any(1)], n)[0],
        "ppo_policy": lambda m, n=None: ppo_policy_loss(
            x[m.any(1)], y[m.any(1)], z[m.any(1)], m[m.any(1)], normalizer=n)[0],
        "ppo_value": lambda m, n=None: ppo_value_loss(
            x[m.any(1)], y[m.any(1)], z[m.any(1)], m[m.any(1)], normalizer=n)[0],
    }  # fmt: skip


@pytest.mark.parametrize("loss", ["sft", "orm", "ppo_policy", "ppo_value"])
def test_token_means_of_halves_with_the_batch_normalizer_give_the_batch_mean(loss):
    """Hand-built: rows 0-1 hold 8 target tokens, rows 2-3 hold 2. Each half divided by its
    share of the batch's 10 tokens (10 / 2), averaged as accumulation averages, is the mean
    over the 10; each half's own mean, averaged, is not."""
    fn = _losses()[loss]
    mask = torch.zeros(4, 9, dtype=torch.bool)
    mask[0, :4] = mask[1, 2:6] = mask[2, 3] = mask[3, 8] = True
    first, second = mask.clone(), mask.clone()
    first[2:], second[:2] = False, False
    whole = fn(mask)
    accumulated = (fn(first, torch.tensor(5.0)) + fn(second, torch.tensor(5.0))) / 2
    per_micro = (fn(first) + fn(second)) / 2
    assert accumulated.item() == pytest.approx(whole.item(), rel=1e-6)
    assert abs(per_micro.item() - whole.item()) > 1e-3


def test_dpo_pads_chosen_and_rejected_apart_with_the_same_loss(tiny_model_dir, mixed_data):
    """DPO runs a micro-batch's chosen and rejected episodes as two forwards, each padded to
    its own longest: the loss is the one the old layout (both in one tensor) gave, live and
    with the reference precomputed, on fewer padded slots (a long gold solution is padded
    with a short wrong answer no more)."""
    from oreo_agents.algorithms import get_algorithm
    from oreo_agents.algorithms.base import precompute_reference, with_reference
    from oreo_agents.data import batches
    from oreo_agents.data.tokenization import collate
    from oreo_agents.losses import dpo_loss, sequence_logps
    from oreo_agents.models.loading import load_causal_lm, load_tokenizer
    from oreo_agents.training.config import TrainConfig
    from oreo_agents.training.metrics import Meter

    cfg = TrainConfig(algo="dpo", data=str(mixed_data), model=str(tiny_model_dir), out="unused",
                      batch_size=4, micro_batch_size=2, max_length=1024)  # fmt: skip
    plan = batches.prepare(cfg, load_tokenizer(cfg.model))
    policy, reference = load_causal_lm(cfg.model), load_causal_lm(cfg.model)
    torch.manual_seed(0)
    with torch.no_grad():  # a reference unlike the policy, else every loss is ln 2
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    models, dpo = {"policy": policy, "reference": reference}, get_algorithm("dpo")
    micro = plan.micro_batches()
    refs = precompute_reference(reference, micro, 0, "cpu")
    split_slots = joint_slots = 0
    for i in range(len(micro)):
        items = [plan.items[k] for k in micro.groups[i]]
        joint = collate([c for c, _ in items] + [r for _, r in items], plan.pad_id)
        half = len(items)
        labels, mask = joint["input_ids"][:, 1:], joint["action_mask"][:, 1:]
        with torch.no_grad():
            pol = [sequence_logps(m(input_ids=joint["input_ids"],
                                    attention_mask=joint["attention_mask"]).logits[:, :-1],
                                  labels, mask & joint["attention_mask"][:, 1:].bool())
                   for m in (policy, reference)]  # fmt: skip
            want = dpo_loss(pol[0][:half], pol[0][half:], pol[1][:half], pol[1][half:],
                            beta=cfg.settings.beta)[0]  # fmt: skip
            live = dpo.step(models, micro[i], cfg.settings)[0]
            stored = with_reference(micro[i], refs[i])
            stored = dpo.step({"policy": policy}, stored, cfg.settings)[0]
        assert float(live) == pytest.approx(float(want), abs=1e-5)
        assert float(stored) == pytest.approx(float(want), abs=1e-5)
        assert float(want) != pytest.approx(0.6931, abs=1e-3)  # the reference differs
        metrics = Meter()
        metrics.add(micro[i], {})
        split_slots += metrics.slots
        joint_slots += joint["attention_mask"].numel()
        assert metrics.tokens == int(joint["attention_mask"].sum())  # every sequence counted
    assert split_slots < joint_slots
