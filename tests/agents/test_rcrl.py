"""Return-conditioned RL: every episode is trained after its good/bad control text, a prefix of
the prompt, and rollout feeds the good text as the same separate segment."""

from __future__ import annotations

import gymnasium
import pytest

import oreo_envs  # noqa: F401
from oreo_agents.algorithms import get_algorithm
from oreo_agents.data.episodes import Episode, load_episodes
from oreo_agents.data.inputs import encode_prompt, encode_text, with_control
from oreo_agents.data.tokenization import tokenize_episode


def episode(reward):
    return Episode(
        env_id="oreo/GSMSymbolic-v0", task_id="0", prompt="Q: 1+1?\nA:",
        steps=[{"action": " 2\n#### 2", "observation": ""}], reward=reward, success=reward > 0,
    )  # fmt: skip


def test_episodes_get_their_control_text_as_context(chat_tokenizer):
    spec = get_algorithm("rcrl")
    settings = spec.settings({"good": "<good>", "bad": "<bad>"})
    good, bad = spec.select([episode(1.0), episode(0.0)], settings, "data")
    assert (good.meta["control"], bad.meta["control"]) == ("<good>", "<bad>")
    tok = chat_tokenizer
    item = tokenize_episode(good, tok)
    control = encode_text(tok, "<good>")
    prompt = encode_prompt(tok, good.prompt)
    assert tok.bos_token_id is None  # (a BOS would stay first: test_a_control_follows_a_bos)
    assert item.input_ids[: len(prompt) + len(control)] == control + prompt
    assert item.prompt_len == len(prompt) + len(control)
    assert not any(item.action_mask[: item.prompt_len])  # context, not trained on
    assert tokenize_episode(bad, tok).input_ids[: len(control)] != control


def test_a_control_follows_a_bos():
    class Tok:  # ids are characters; BOS is id 1
        bos_token_id = 1

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    assert with_control(Tok(), [1, 80, 81], "<g>") == [1, 60, 103, 62, 80, 81]
    assert with_control(Tok(), [80, 81], "<g>") == [60, 103, 62, 80, 81]
    assert with_control(Tok(), [1, 80], "") == [1, 80]


def test_one_sided_data_is_refused():
    spec = get_algorithm("rcrl")
    with pytest.raises(ValueError, match="needs both kinds"):
        spec.select([episode(1.0), episode(1.0)], spec.defaults(), "data")
    with pytest.raises(ValueError, match="two different"):
        spec.settings({"good": "x", "bad": "x"})


def test_collect_with_a_control_text_feeds_it_as_its_own_segment(chat_model, tmp_path):
    from oreo_agents.generation.hf import HFBackend
    from oreo_agents.rollout.collect import run_collect
    from oreo_agents.rollout.config import CollectConfig

    model, tok = chat_model
    cfg = CollectConfig(env="oreo/GSMSymbolic-v0", env_options={"size": 4}, model="m",
                        out=str(tmp_path), tasks=2, max_new_tokens=4, control="<good>")  # fmt: skip
    make = lambda: gymnasium.make("oreo/GSMSymbolic-v0", size=4)  # noqa: E731
    run_collect(cfg, make, backend=HFBackend(model, tok))
    for ep in load_episodes(tmp_path):
        assert ep.prompt.startswith("<good>")
        plain = ep.prompt[len("<good>") :]
        assert ep.prompt_ids == encode_text(tok, "<good>") + encode_prompt(tok, plain)
