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


def cut(item, max_length):
    """What `tokenize_episode` gave before it bounded its work: everything, then the cut."""
    n = max_length
    return (item.input_ids[:n], item.action_mask[:n], item.step_starts[:n], min(item.prompt_len, n))


def as_tuple(item, max_length):
    return (item.input_ids, item.action_mask, item.step_starts, min(item.prompt_len, max_length))


def with_ids(ep, tok, split):
    """``ep`` with logged ids: the prompt's own, and each action and observation as ``split``
    encodes it (one id per character is a tokenization too, just not the canonical one)."""
    from oreo_agents.data.inputs import encode_prompt, tokenizer_id

    ep.prompt_ids = encode_prompt(tok, ep.prompt)
    for s in ep.steps:
        s["action_ids"], s["observation_ids"] = split(s["action"]), split(s["observation"])
    ep.meta["tokenizer"] = tokenizer_id(tok)
    return ep


def long_episodes(tok, n):
    """Episodes of each kind (answer, agent, chat, logged ids, control) whose text is ``n``
    sentences per segment; non-ASCII text so that cuts fall inside characters' bytes."""
    text = "".join(f"Tom has {i} apples, é€ and buys {i + 3}.\n" for i in range(n))
    chat = "<|im_end|>\n<|im_start|>user\nok<|im_end|>\n<|im_start|>assistant\n"
    encode = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    by_char = lambda s: [t for c in s for t in encode(c)]  # noqa: E731
    eps = [
        episode([{"action": text, "observation": ""}], eos=True),
        episode([{"action": text, "observation": text}] * 2, env_id="oreo/ALFWorld-v0"),
        episode([{"action": text, "observation": chat}] * 2, env_id="oreo/ALFWorld-v0"),
        with_ids(episode([{"action": text, "observation": text}] * 2), tok, encode),
        with_ids(episode([{"action": text, "observation": text}] * 2), tok, by_char),
        episode([{"action": "", "observation": text}, {"action": "", "observation": ""}]),
    ]
    eps[0].meta["control"] = "<good>"
    eps[1].prompt = text  # a long prompt
    return eps


@pytest.mark.parametrize("n", [3, 80])
def test_a_cut_episode_keeps_the_ids_of_tokenizing_everything(tok, chat_tokenizer, n):
    # Only what max_length keeps is tokenized now; the kept ids must be those of the whole.
    for tokenizer in (tok, chat_tokenizer):
        for ep in long_episodes(tokenizer, n):
            whole = tokenize_episode(ep, tokenizer)
            for max_length in (1, 7, 50, 333, 100_000):
                item = tokenize_episode(ep, tokenizer, max_length=max_length)
                assert as_tuple(item, max_length) == cut(whole, max_length), (ep, max_length)


class SpyTokenizer:
    """A tokenizer that records the longest text it encoded and the most ids it decoded at
    once, and refuses (rather than spending minutes on) any text longer than ``most``."""

    def __init__(self, tokenizer, most):
        self.tokenizer, self.most, self.longest, self.decoded = tokenizer, most, 0, 0

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __call__(self, text, **kwargs):
        self.longest = max(self.longest, len(text))
        assert len(text) <= self.most, f"encoded {len(text):,} characters"
        return self.tokenizer(text, **kwargs)

    def decode(self, ids, **kwargs):
        self.decoded = max(self.decoded, len(ids))
        return self.tokenizer.decode(ids, **kwargs)

    def batch_decode(self, batch, **kwargs):
        self.decoded = max(self.decoded, sum(map(len, batch)))
        assert self.decoded <= self.most, f"decoded {self.decoded:,} ids"
        return self.tokenizer.batch_decode(batch, **kwargs)


@pytest.mark.parametrize("where", ["prompt", "observation", "action", "chat action", "ids"])
def test_a_50_mb_segment_is_tokenized_only_as_far_as_max_length(chat_tokenizer, where):
    # A 50 MB episode line took 375 s and 9.8 GB in `oreo train`: all of it was tokenized
    # before the cut at max_length (and a huge action's step starts decoded every prefix).
    from oreo_agents.data.inputs import tokenizer_id

    tok, max_length = chat_tokenizer, 256
    huge = ("go to shelf 1. On the shelf 1, you see a mug, é€.\n" * 1_000_000)[:50_000_000]
    steps = [{"action": "look", "observation": ""}]
    if where in ("observation", "chat action"):
        steps = [{"action": "look", "observation": huge}]
    if where in ("action", "chat action", "ids"):
        following = "<|im_end|>\n" if where == "chat action" else "\n> "
        steps = [{"action": huge[: 10_000_000 if where == "ids" else None],
                  "observation": following}, *steps]  # fmt: skip
    ep = episode(steps, env_id="oreo/ALFWorld-v0", eos=False)
    if where == "prompt":
        ep.prompt = huge
    if where == "ids":  # logged ids, as many as characters: not its canonical encoding
        ep = with_ids(ep, tok, lambda s: [tok.convert_tokens_to_ids("a")] * len(s))
        assert ep.meta["tokenizer"] == tokenizer_id(tok)
    longest_token = max(map(len, tok.get_vocab()))  # characters one token can stand for
    spy = SpyTokenizer(tok, most=10 * max_length * longest_token)
    item = tokenize_episode(ep, spy, max_length=max_length)
    assert len(item) == max_length and spy.decoded <= 2 * max_length**2
