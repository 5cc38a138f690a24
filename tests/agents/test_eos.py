"""Chat models stop on any of several EOS ids: generation stops on each, the episode records
which one, and training appends that one. Built with a byte-level BPE tokenizer trained here,
a Qwen-style chat template and a generation config listing two EOS ids."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from oreo_agents.data.episodes import Episode
from oreo_agents.data.tokenization import tokenize_episode
from oreo_agents.generation import SamplingParams
from oreo_agents.generation.base import eos_ids
from oreo_agents.generation.hf import HFBackend
from oreo_agents.generation.vllm_backend import completion


def emitting(model, token_id):
    """The model with an output layer that always puts ``token_id`` first."""
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.zero_()
        head.bias[token_id] = 10.0
    model.lm_head = head
    return model


def test_every_eos_id_of_the_generation_config_stops(chat_model):
    model, tok = chat_model
    im_end, endoftext = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert eos_ids(model.generation_config, tok) == [im_end, endoftext]
    backend = HFBackend(emitting(model, endoftext), tok)
    (c,) = backend.generate(["Tom has 3 apples."], SamplingParams(temperature=0))[0]
    assert c.finish_reason == "eos" and c.eos_id == endoftext and c.token_ids == []


def test_an_episode_that_stopped_on_the_second_eos_gets_that_eos_target(chat_model):
    model, tok = chat_model
    endoftext = tok.convert_tokens_to_ids("<|endoftext|>")
    episode = Episode(
        env_id="oreo/GSMSymbolic-v0", task_id="0", prompt="Tom has 3 apples.",
        steps=[{"action": " #### 6", "observation": ""}], reward=1.0, success=True,
        terminated=True, truncated=False, meta={"eos": True, "eos_id": endoftext},
    )  # fmt: skip
    item = tokenize_episode(episode, tok)
    assert item.input_ids[-1] == endoftext and item.action_mask[-1]
    # without the record (gold or imported data) the tokenizer's own EOS closes the action
    del episode.meta["eos_id"]
    assert tokenize_episode(episode, tok).input_ids[-1] == tok.eos_token_id


def test_collected_episodes_record_the_eos_the_model_emitted(chat_model, tmp_path):
    import gymnasium

    import oreo_envs  # noqa: F401
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.rollout.collect import CollectConfig, run_collect

    model, tok = chat_model
    endoftext = tok.convert_tokens_to_ids("<|endoftext|>")
    backend = HFBackend(emitting(model, endoftext), tok)
    cfg = CollectConfig(env="oreo/GSMSymbolic-v0", model="m", out=str(tmp_path), tasks=2,
                        env_options={"size": 8}, max_new_tokens=4)  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make("oreo/GSMSymbolic-v0", size=8), backend=backend)
    episodes = load_episodes(tmp_path)
    assert len(episodes) == 2
    for ep in episodes:
        assert ep.meta["eos"] and ep.meta["eos_id"] == endoftext
        assert tokenize_episode(ep, tok).input_ids[-1] == endoftext


@pytest.mark.parametrize(
    "finish, stop_reason, ids, expected",
    [
        ("stop", None, [5, 7, 2], ("eos", [5, 7], 2)),  # the tokenizer's EOS
        ("stop", 9, [5, 9], ("eos", [5], 9)),  # an extra EOS id of the generation config
        ("stop", "\n", [5, 6], ("stop", [5, 6], None)),  # a stop string
        ("length", None, [5, 6, 7], ("length", [5, 6, 7], None)),
    ],
)
def test_vllm_outputs_map_like_the_hf_backend(finish, stop_reason, ids, expected):
    """A stand-in with vLLM's documented CompletionOutput fields (text, token_ids,
    finish_reason, stop_reason: None, a stop token id or a stop string, cumulative_logprob)."""
    out = SimpleNamespace(text="x", token_ids=tuple(ids), finish_reason=finish,
                          stop_reason=stop_reason, cumulative_logprob=-1.0)  # fmt: skip
    c = completion(out, eos=[2, 9], primary=2)
    assert (c.finish_reason, c.token_ids, c.eos_id) == expected
