"""Training and scoring see the token ids the policy generated, not a re-encoding of its text.

With a byte-level BPE tokenizer (trained here), a sampled token sequence is often not the
canonical encoding of its own text, and encoding prompt + response as one string merges tokens
across the boundary. The collector logs the ids it fed and got; these tests replay every
generation call of a run and check that training's ``input_ids`` are made of exactly those ids,
and that the value model scores exactly training's ids for the same state.
"""

from __future__ import annotations

import gymnasium
import pytest
import torch

import oreo_envs  # noqa: F401
from oreo_agents.data.episodes import Episode, load_episodes
from oreo_agents.data.inputs import stored_ids, tokenizer_id
from oreo_agents.data.tokenization import tokenize_episode
from oreo_agents.generation.base import derive_seed
from oreo_agents.generation.hf import HFBackend
from oreo_agents.rollout.config import CollectConfig


class RecordingBackend(HFBackend):
    """The HF backend, remembering what each call was fed (as ids) and what it produced."""

    def __init__(self, model, tok):
        super().__init__(model, tok)
        self.calls: dict[tuple[tuple[int, ...], int], list] = {}

    def generate(self, prompts, params, seeds=None):
        out = super().generate(prompts, params, seeds)
        for prompt, seed, completions in zip(prompts, seeds, out, strict=True):
            assert not isinstance(prompt, str), "the collector feeds ids, not text"
            self.calls[(tuple(prompt), seed)] = completions
        return out


def without_ids(episode: Episode) -> Episode:
    record = episode.to_dict()
    record["prompt_ids"] = None
    record["steps"] = [
        {"action": s["action"], "observation": s["observation"]} for s in episode.steps
    ]
    return Episode.from_dict(record)


def replay(item, episode, calls, seed):
    """Walk training's ids with the recorded calls: each action must be the ids generated
    after exactly the ids before it. Returns the number of steps matched."""
    ids, mask, pos, step = item.input_ids, item.action_mask, item.prompt_len, 0
    while pos < len(ids):
        key = (tuple(ids[:pos]), derive_seed(seed, episode.task_id, episode.key[1], step))
        assert key in calls, f"step {step}: the policy was never fed these ids"
        (gen,) = calls[key]
        n = len(gen.token_ids)
        assert ids[pos : pos + n] == gen.token_ids and all(mask[pos : pos + n])
        pos += n
        if gen.finish_reason == "eos":  # the EOS the model emitted is an action token too
            assert ids[pos] == gen.eos_id and mask[pos]
            pos += 1
        while pos < len(ids) and not mask[pos]:
            pos += 1
        step += 1
    return step


@pytest.mark.parametrize(
    "env_id, options",
    [
        ("oreo/GSMSymbolic-v0", {"size": 6}),  # one response per episode
        ("oreo/Chain-v0", {"size": 6, "granularity": "step"}),  # a generation per line
    ],
)
def test_training_ids_are_the_generated_ids(chat_model, tmp_path, env_id, options):
    from oreo_agents.rollout.collect import run_collect

    model, tok = chat_model
    backend = RecordingBackend(model, tok)
    cfg = CollectConfig(env=env_id, env_options=options, model="m", out=str(tmp_path), tasks=3,
                        samples=2, max_new_tokens=12, seed=1)  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make(env_id, **options), backend=backend)
    episodes = load_episodes(tmp_path)
    assert len(episodes) == 6
    non_canonical = 0
    for ep in episodes:
        assert ep.meta["tokenizer"] == tokenizer_id(tok) and ep.meta["reencoded_actions"] == 0
        item = tokenize_episode(ep, tok)
        assert replay(item, ep, backend.calls, cfg.seed) == len(ep.steps)
        canonical = [
            tok(s["action"], add_special_tokens=False)["input_ids"] == s["action_ids"]
            for s in ep.steps
        ]
        if not all(canonical):
            non_canonical += 1
            # what training read before ids were logged: not what the policy produced
            assert tokenize_episode(without_ids(ep), tok).input_ids != item.input_ids
    assert non_canonical > 0, "no non-canonical sample: the test would not see a re-encoding"


def test_another_tokenizer_encodes_the_text(chat_model, tmp_path, tiny_model_dir):
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.rollout.collect import run_collect

    model, tok = chat_model
    cfg = CollectConfig(env="oreo/GSMSymbolic-v0", env_options={"size": 4}, model="m",
                        out=str(tmp_path), tasks=2, max_new_tokens=6)  # fmt: skip
    make = lambda: gymnasium.make("oreo/GSMSymbolic-v0", size=4)  # noqa: E731
    run_collect(cfg, make, backend=HFBackend(model, tok))
    (ep, _) = load_episodes(tmp_path)
    other = load_tokenizer(str(tiny_model_dir))  # a byte-level tokenizer: other ids
    prompt, steps = stored_ids(ep, other)
    assert prompt == other(ep.prompt)["input_ids"]
    assert steps[0][0] == other(ep.steps[0]["action"], add_special_tokens=False)["input_ids"]


class RecordingValue(torch.nn.Module):
    """A value model that records the ids it scores and returns 0 for each state."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def forward(self, input_ids, attention_mask):
        for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            self.seen.append(row[: sum(mask)])
        return torch.zeros(input_ids.shape, dtype=torch.float32)


@pytest.mark.parametrize("chat", [False, True])
def test_value_guided_acting_scores_the_ids_training_reads(chat_model, chat, monkeypatch):
    """ALFWorld (bundled games), K sampled actions per step scored by the value model: each
    chosen state's ids are a prefix of the logged episode's training ids that ends one token
    before that action's ids end (before its closing token: the last state of the action that
    training fits a value to), and no scored state ends after a whole action."""
    from oreo_agents.evaluation.acting import act_with_value
    from oreo_agents.models.scorer import ValueScorer

    model, tok = chat_model
    backend = HFBackend(model, tok)
    value = RecordingValue()
    scorer = ValueScorer(value, tok, batch_size=8)
    env_args = {"split": "bundled", "max_episode_steps": 3}
    env = gymnasium.make("oreo/ALFWorld-v0", **env_args)
    tasks = list(env.unwrapped.task_ids)[:2]
    cfg = CollectConfig(env="oreo/ALFWorld-v0", model="m", out="", max_new_tokens=8,
                        chat_template=chat)  # fmt: skip
    episodes = act_with_value(
        cfg, lambda: gymnasium.make("oreo/ALFWorld-v0", **env_args), tasks,
        backend=backend, value_fn=scorer, k=2,
    )  # fmt: skip
    seen = {tuple(s) for s in value.seen}
    for ep in episodes:
        assert len(ep.steps) == 3 and ep.prompt_ids is not None
        item = tokenize_episode(ep, tok)
        pos = len(ep.prompt_ids)
        for step in ep.steps:
            pos += len(step["action_ids"])
            if step["action_ids"]:  # generated ids, or the parsed action encoded, alike
                assert tuple(item.input_ids[: pos - 1]) in seen
                assert tuple(item.input_ids[:pos]) not in seen
                assert item.action_mask[pos - 1]  # the state before an action token: trained
            pos += len(step["observation_ids"])
        assert pos == len(item.input_ids)
        if chat:
            assert ep.prompt.startswith("<|im_start|>user\n")


def test_logged_ids_still_count_after_the_tokenizer_moves(chat_model, tmp_path):
    """A run folder copied elsewhere loads its tokenizer from a new path: the episodes keep
    their ids (same hash), while a tokenizer that encodes differently does not take them."""
    from transformers import AutoTokenizer

    from oreo_agents.data.inputs import has_ids
    from oreo_agents.rollout.collect import run_collect

    model, tok = chat_model
    for name in ("here", "there", "other"):
        tok.save_pretrained(tmp_path / name)
    here, there, other = (
        AutoTokenizer.from_pretrained(tmp_path / n) for n in ("here", "there", "other")
    )
    other.add_tokens(["<extra>"])
    assert tokenizer_id(here) != tokenizer_id(there)  # the names differ, the hashes do not
    options = {"size": 4, "granularity": "step"}
    cfg = CollectConfig(env="oreo/Chain-v0", env_options=options, model="m",
                        out=str(tmp_path / "eps"), tasks=1, max_new_tokens=8)  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make("oreo/Chain-v0", **options),
                backend=HFBackend(model, here))  # fmt: skip
    (ep,) = load_episodes(tmp_path / "eps")
    assert has_ids(ep, here) and has_ids(ep, there) and not has_ids(ep, other)


@pytest.mark.parametrize(
    "env_id, options, transforms",
    [
        ("oreo/Chain-v0", {"size": 6, "granularity": "step"}, {"control": "return: 1\n"}),
        ("oreo/ALFWorld-v0", {"split": "bundled", "max_episode_steps": 3},
         {"chat_template": True, "remind_task": True}),
    ],
)  # fmt: skip
def test_prompt_transforms_reach_training_as_fed(chat_model, tmp_path, env_id, options, transforms):
    """The prompt transforms (a control text in front, the chat template, the task's reminder
    after each observation) are applied once, when the collector renders a context
    (`oreo_agents.rollout.prompting`, `oreo_agents.data.inputs.policy_prompt_ids`): training
    reads every generation's context exactly as the policy was fed it, and the transform is in
    it."""
    from oreo_agents.rollout.collect import run_collect

    model, tok = chat_model
    backend = RecordingBackend(model, tok)
    cfg = CollectConfig(env=env_id, env_options=options, model="m", out=str(tmp_path), tasks=2,
                        samples=1, max_new_tokens=8, seed=3, **transforms)  # fmt: skip
    run_collect(cfg, lambda: gymnasium.make(env_id, **options), backend=backend)
    episodes = load_episodes(tmp_path)
    assert len(episodes) == 2
    for ep in episodes:
        item = tokenize_episode(ep, tok)
        pos = item.prompt_len
        for step, logged in enumerate(ep.steps):  # (an agent's action ids: its parse, re-encoded)
            seed = derive_seed(cfg.seed, ep.task_id, ep.key[1], step)
            key = (tuple(item.input_ids[:pos]), seed)
            assert key in backend.calls, f"step {step}: the policy was never fed these ids"
            pos += len(logged["action_ids"]) + len(logged["observation_ids"])
        assert len(item.input_ids) - pos in (0, 1) and ep.steps  # 1: an EOS the model emitted
        # an episode of text only (expert walkthroughs, other tools' logs) renders the same prompt
        plain = tokenize_episode(without_ids(ep), tok)
        assert plain.input_ids[: plain.prompt_len] == item.input_ids[: item.prompt_len]
        text = tok.decode(item.input_ids)
        if "control" in transforms:
            assert tok.decode(item.input_ids[: item.prompt_len]).startswith("return: 1\n")
        else:
            line = text.split("Your task is to: ")[1].split("\n")[0]
            assert text.startswith("<|im_start|>") and text.count(line) >= 1 + len(ep.steps) - 1
