"""The value model's two forms: a head on the last state, and the log-probability form."""

from __future__ import annotations

import pytest
import torch

from oreo_agents.models.value import ValueModel


@pytest.fixture
def lm():
    from oreo_agents.models.tiny import tiny_model

    model, _ = tiny_model(hidden_size=32, num_layers=1, seed=3)
    return model


def test_logprob_form_adds_the_summed_action_logprobs_and_a_per_token_constant(lm):
    """With w = 1 and c = 0.5 and a zero linear head, V(s_t) is the sum over the action tokens
    i <= t of (log p(x_i | x_<i) + 0.5), computed here straight from the LM's logits."""
    value = ValueModel(lm, form="logprob")
    with torch.no_grad():
        value.head.logprob_weight.fill_(1.0)
        value.head.token_bias.fill_(0.5)
    ids = torch.tensor([[5, 9, 17, 33, 2, 71]])
    action = torch.tensor([[0, 0, 1, 1, 0, 1]], dtype=torch.bool)  # tokens 2, 3 and 5 act
    with torch.no_grad():
        logp = torch.log_softmax(lm(input_ids=ids).logits[0], dim=-1)
        got = value(ids, torch.ones_like(ids), action)[0]
        every = value(ids, torch.ones_like(ids))[0]  # no action mask: every token after the first
    step = {t: logp[t - 1, ids[0, t]].item() + 0.5 for t in range(1, 6)}
    want, total = [], 0.0
    for t in range(6):
        total += step[t] if action[0, t] else 0.0
        want.append(total)
    assert got.tolist() == pytest.approx(want, abs=1e-5)
    every_want = [0.0, *torch.tensor(list(step.values())).cumsum(0).tolist()]
    assert every.tolist() == pytest.approx(every_want, abs=1e-5)
    # padding never counts: the same row padded on the right has the same values
    padded = torch.cat([ids, torch.zeros((1, 2), dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 2])
    with torch.no_grad():
        assert value(padded, mask)[0, :6].tolist() == pytest.approx(every.tolist(), abs=1e-5)


def test_forms_start_at_zero_and_the_logprob_form_learns_its_weights(lm):
    ids = torch.tensor([[5, 9, 17, 33]])
    for form, backbone in (("last", lm.model), ("logprob", lm)):  # "last" reads a base model
        value = ValueModel(backbone, form=form)
        assert value(ids).abs().max().item() == 0.0  # the paper's zero start, in both forms
    value = ValueModel(lm, form="logprob")
    loss = (value(ids) - 1.0).square().mean()
    loss.backward()
    assert value.head.logprob_weight.grad.abs().item() > 0  # learnt from its zero start
    assert value.head.token_bias.grad.abs().item() > 0


def test_logprob_form_saves_loads_and_refuses_another_form(lm, tmp_path):
    value = ValueModel(lm, form="logprob")
    with torch.no_grad():
        value.head.logprob_weight.fill_(0.7)
        value.head.token_bias.fill_(-0.2)
        value.head.weight.normal_()
    value.save_pretrained(tmp_path / "v")
    loaded = ValueModel.from_pretrained(tmp_path / "v", require_head=True)
    assert loaded.form == "logprob"
    ids = torch.tensor([[5, 9, 17, 33, 2]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids), value(ids), atol=1e-5)
    with pytest.raises(ValueError, match="form 'logprob', not 'last'"):
        ValueModel.from_pretrained(tmp_path / "v", form="last")
    with pytest.raises(ValueError, match="value form must be one of last, logprob"):
        ValueModel(lm, form="sum")


def test_oreo_trains_a_logprob_value_with_its_own_head_lr_and_search_scores_it(
    tiny_model_dir, mixed_data, tmp_path
):
    """value_form=logprob through `oreo train` (head at its own learning rate): OUT/value
    loads as that form, its weights left zero, and `ValueScorer` ranks states with it."""
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.models.scorer import ValueScorer
    from oreo_agents.training.config import TrainConfig
    from oreo_agents.training.loop import run_train

    out = tmp_path / "lp"
    cfg = TrainConfig(
        "oreo", str(mixed_data), str(tiny_model_dir), str(out), batch_size=4,
        micro_batch_size=2, max_steps=3, max_length=1024, lr=1e-3,
        settings={"value_form": "logprob", "value_lr": 1e-5, "value_head_lr": 1e-2},
    )  # fmt: skip
    run_train(cfg)
    value = ValueModel.from_pretrained(out / "value", require_head=True)
    assert value.form == "logprob"
    # three Adam steps at 1e-2 (the first a warm-up step at 0) move w by about 2e-2; at the
    # backbone's 1e-5 it would stay near 2e-5
    assert abs(value.head.logprob_weight.item()) > 5e-3
    scorer = ValueScorer(value, load_tokenizer(str(tiny_model_dir)))
    states = [[5, 9, 17, 33], [5, 9, 17, 40, 41]]
    got = scorer(states)
    with torch.no_grad():
        want = [value(torch.tensor([s]))[0, -1].item() for s in states]
    assert got == pytest.approx(want, abs=1e-5)
