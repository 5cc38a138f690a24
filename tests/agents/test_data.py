"""Episodes -> token ids, masks and step starts; DPO pairs; length-grouped batches."""

from __future__ import annotations

import collections

import pytest
import torch

from oreo_agents.data.episodes import Episode
from oreo_agents.data.tokenization import (
    collate,
    dpo_pairs,
    length_grouped_batches,
    mismatched,
    tokenize_episode,
)
from oreo_agents.models.tiny import byte_tokenizer


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def episode(steps, *, env_id="oreo/GSM8K-v0", eos=None, reward=1.0, task_id="t"):
    meta = {} if eos is None else {"eos": eos}
    return Episode(env_id, task_id, "Q:", steps, reward, reward > 0, meta=meta)


def test_byte_tokens_masks_and_eos(tok):
    ep = episode([{"action": "a\nb", "observation": ""}])
    t = tokenize_episode(ep, tok)
    # "Q:" (2 bytes) context, then "a", "\n", "b" actions, then EOS (no flag = a finished answer)
    assert t.input_ids[:5] == tok("Q:a\nb", add_special_tokens=False).input_ids
    assert t.input_ids[5] == tok.eos_token_id
    assert t.action_mask == [False, False, True, True, True, True]
    assert t.step_starts == [False, False, True, False, True, False]  # lines start steps
    assert t.prompt_len == 2


def test_math_sentences_are_steps(tok):
    ep = episode([{"action": "x=1. y=2.$ z", "observation": ""}], env_id="oreo/MATH-v0", eos=False)
    t = tokenize_episode(ep, tok)
    starts = [i - 2 for i, s in enumerate(t.step_starts) if s]
    assert starts == [0, 5, 11]  # "x=1. " | "y=2.$ " | "z"


def test_step_mode_eos_goes_before_the_envs_newline(tok):
    ep = episode(
        [{"action": "s1\n", "observation": ""}, {"action": "s2", "observation": "\n"}], eos=True
    )
    t = tokenize_episode(ep, tok)
    text_ids = tok("Q:s1\ns2", add_special_tokens=False).input_ids
    assert t.input_ids == text_ids + [tok.eos_token_id] + tok("\n").input_ids
    assert t.action_mask == [False] * 2 + [True] * 6 + [False]
    assert t.step_starts == [False, False, True, False, False, True, False, False, False]


def test_agent_observations_are_context_and_no_eos(tok):
    ep = episode(
        [{"action": "go", "observation": " ok "}, {"action": "take", "observation": " won"}],
        env_id="oreo/ALFWorld-v0",
        eos=False,
    )
    t = tokenize_episode(ep, tok)
    assert t.action_mask == [False] * 2 + [True] * 2 + [False] * 4 + [True] * 4 + [False] * 4
    assert [i for i, s in enumerate(t.step_starts) if s] == [2, 8]  # each action is a step


def acted(t, tokenizer):
    """The text of an item's action tokens, action by action."""
    runs, run = [], []
    for i, m in zip(t.input_ids, t.action_mask, strict=True):
        if m:
            run.append(i)
        elif run:
            runs, run = [*runs, run], []
    runs += [run] if run else []
    return [tokenizer.decode(r, skip_special_tokens=False) for r in runs]


def test_an_agent_action_known_as_text_trains_the_newline_that_ends_it(tok, chat_tokenizer):
    # Expert episodes carry text only. The collector stops an agent's generation at the end of
    # its line, so the newline after each action is the policy's output and is trained; without
    # it an SFT policy never learns to stop and writes on to max_new_tokens.
    steps = [
        {"action": "go to shelf 1", "observation": "\nOn the shelf 1, you see a mug 1.\n> ",
         "env_observation": "On the shelf 1, you see a mug 1."},
        {"action": "take mug 1 from shelf 1", "observation": "\nYou pick up the mug 1.\n> ",
         "env_observation": "You pick up the mug 1."},
    ]  # fmt: skip
    for tokenizer in (tok, chat_tokenizer):  # bytes, and byte-level BPE
        t = tokenize_episode(episode(steps, env_id="oreo/ALFWorld-v0", eos=False), tokenizer)
        assert acted(t, tokenizer) == ["go to shelf 1\n", "take mug 1 from shelf 1\n"]
        full = "Q:" + "".join(s["action"] + s["observation"] for s in steps)
        assert tokenizer.decode(t.input_ids, skip_special_tokens=False) == full
    # the env's kind decides too when no step keeps the raw reply (imported episodes)
    plain = [{"action": s["action"], "observation": s["observation"]} for s in steps]
    t = tokenize_episode(episode(plain, env_id="oreo/ALFWorld-v0", eos=False), tok)
    assert acted(t, tok) == ["go to shelf 1\n", "take mug 1 from shelf 1\n"]
    # an answer env's newline after a line is the env's (step mode), as before
    t = tokenize_episode(episode(plain, env_id="oreo/GSM8K-v0", eos=False), tok)
    assert acted(t, tok) == ["go to shelf 1", "take mug 1 from shelf 1"]


def test_a_chat_agent_action_trains_the_end_of_turn_token(chat_tokenizer):
    tok = chat_tokenizer
    user = "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    steps = [
        {"action": "go to shelf 1", "observation": user.format("On the shelf 1, you see a mug."),
         "env_observation": "On the shelf 1, you see a mug."},
        {"action": "take mug 1 from shelf 1", "observation": "<|im_end|>\n",
         "env_observation": "You pick up the mug 1."},
    ]  # fmt: skip
    t = tokenize_episode(episode(steps, env_id="oreo/ALFWorld-v0", eos=False), tok)
    assert tok.eos_token == "<|im_end|>"
    assert acted(t, tok) == ["go to shelf 1<|im_end|>", "take mug 1 from shelf 1<|im_end|>"]


def test_immediate_eos_is_a_lone_action(tok):
    t = tokenize_episode(episode([{"action": "", "observation": ""}], eos=True), tok)
    assert t.action_mask == [False, False, True] and t.step_starts == [False, False, True]


def test_dpo_pairs_per_task_are_capped_and_one_sided_tasks_skipped(tok):
    eps = [episode([{"action": "a", "observation": ""}], reward=r, task_id=t)
           for t, rs in (("x", [1, 1, 1, 0, 0, 0]), ("y", [1, 1]), ("z", [1, 0]))
           for r in rs]  # fmt: skip
    tokd = [tokenize_episode(e, tok) for e in eps]
    pairs = dpo_pairs(tokd, max_pairs_per_task=6, seed=0)
    by_task = [c.task_id for c, _ in pairs]
    assert by_task.count("x") == 6 and by_task.count("y") == 0 and by_task.count("z") == 1
    assert all(c.reward > 0 >= r.reward and c.task_id == r.task_id for c, r in pairs)
    assert len({(id(c), id(r)) for c, r in pairs}) == len(pairs)


def test_length_grouped_batches_cover_everything_with_little_padding():
    lengths = [5, 100, 6, 101, 7, 102, 8, 103]
    batches = length_grouped_batches(lengths, 2, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(abs(lengths[b[0]] - lengths[b[1]]) <= 3 for b in batches)
    assert batches == length_grouped_batches(lengths, 2, seed=0)


def test_collate_and_mismatched(tok):
    a = tokenize_episode(episode([{"action": "abc", "observation": ""}]), tok)
    b = tokenize_episode(episode([{"action": "z", "observation": ""}], reward=0.0), tok)
    batch = collate([a, b], tok.pad_token_id)
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 4 + [0] * 2]
    assert batch["rewards"].tolist() == [1.0, 0.0]
    m = mismatched([a, b])
    assert m[0].input_ids == a.input_ids[:2] + b.input_ids[2:]


def test_micro_batches_are_collated_on_read_and_split_across_processes(tok):
    from oreo_agents.algorithms import get_algorithm
    from oreo_agents.data.batches import TrainPlan

    eps = [episode([{"action": "x" * (1 + i % 7), "observation": ""}], task_id=str(i))
           for i in range(20)]  # fmt: skip
    items = [tokenize_episode(e, tok) for e in eps]
    plan = TrainPlan(items, tok.pad_token_id, micro_batch_size=2, accumulation=2, epochs=2,
                     seed=0, spec=get_algorithm("sft"))  # fmt: skip
    batches = plan.micro_batches()
    # 20 items, optimizer batches of 4: 5 per epoch, 2 micro-batches each, 2 epochs.
    assert len(batches) == 20 == plan.optimizer_steps * plan.accumulation
    first, again = batches[3], batches[3]
    assert first is not again and torch.equal(first["input_ids"], again["input_ids"])
    assert [b["input_ids"].shape[0] for b in batches[:4]] == [2, 2, 2, 2]
    # Two processes share each optimizer batch of 2 x 2 x 2 = 8 items (2 per epoch; the last
    # 4 items are dropped): rank 0 and 1 take alternate micro-batches, no item twice an epoch.
    r0, r1 = plan.micro_batches(world=2, rank=0), plan.micro_batches(world=2, rank=1)
    assert len(r0) == len(r1) == 8
    seen = collections.Counter(k for part in (r0, r1) for g in part.groups for k in g)
    assert sum(seen.values()) == 32 and max(seen.values()) <= 2
