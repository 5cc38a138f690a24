"""Episodes -> token ids, action masks and step starts; DPO and ranking pairs, KTO labels; batches.

Each episode becomes prompt, action_1, observation_1, ... ids (`oreo_agents.data.inputs`): the
ids the policy was fed and generated when the episode logged them with this tokenizer, else each
segment encoded by the model's own tokenizer; so action boundaries are exact and an action's
tokens are the ones the policy generated (or would) after its context. Action tokens get
``action_mask = 1``; the prompt and observations are context. When the episode's model stopped
with EOS (``meta["eos"]``, or no flag at all as in gold or imported data), an EOS token closes
the last action and is an action too (unless the logged ids hold it already).

Step starts mark the first token of each reasoning step inside the actions (steps split on the
env's delimiters, e.g. lines for GSM8K), found through the tokenizer's character offsets; the
OREO step-level loss puts its states there. An agent's action is one step.
"""

from __future__ import annotations

import random
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from oreo_agents.data.episodes import Episode
from oreo_agents.data.inputs import MARGIN_TOKENS, max_token_chars, stored_ids, with_control
from oreo_envs import step_delimiters_of


@dataclass
class TokenizedEpisode:
    """One episode as model inputs (lists, unpadded).

    Attributes:
        input_ids: Prompt, actions and observations, in order.
        action_mask: True at action tokens.
        step_starts: True at the first token of each step (a subset of the action tokens).
        prompt_len: Number of prompt tokens (KTO mismatches prompts and responses).
        reward: The episode's terminal reward.
        task_id: Its task (DPO pairs come from one task).
        sample: Which of its task's samples it is (with task_id, the episode's key).
    """

    input_ids: list[int]
    action_mask: list[bool]
    step_starts: list[bool]
    prompt_len: int
    reward: float
    task_id: str
    sample: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def _step_starts_in(text: str, offsets: Sequence[tuple[int, int]], delims: Sequence[str]):
    """Flags for each token of ``text``: does a step begin in it?"""
    begins = {0}
    i = 0
    while i < len(text):
        for d in delims:
            if text.startswith(d, i):
                begins.add(i + len(d))
                i += len(d) - 1
                break
        i += 1
    flags, seen = [], set()
    for start, end in offsets:
        hit = next((b for b in begins if start <= b < max(end, start + 1) and b not in seen), None)
        if hit is not None:
            seen.add(hit)
        flags.append(hit is not None)
    return flags


def tokenize_episode(
    episode: Episode,
    tokenizer: Any,
    *,
    step_delimiters: Sequence[str] | None = None,
    max_length: int | None = None,
) -> TokenizedEpisode:
    """Tokenize one episode (module docstring). Longer sequences are cut at ``max_length``.

    Only what the cut keeps is tokenized (`oreo_agents.data.inputs.stored_ids`): a 50 MB
    observation costs what ``max_length`` tokens of it cost. A prompt longer than that gets a
    ``prompt_len`` of at least ``max_length`` (not its whole length, which is never computed).

    Raises:
        ValueError: The prompt tokenizes to nothing (no context for the first action).
    """
    delims = step_delimiters or step_delimiters_of(episode.env_id)
    prompt, segments = stored_ids(episode, tokenizer, max_length)
    if not prompt:
        raise ValueError(f"task {episode.task_id}: the prompt is empty after tokenization")
    # A control text (return conditioning, `oreo_agents.algorithms.rcrl`) is context before the
    # prompt, its own segment, as `oreo rollout --control` feeds it.
    prompt = with_control(tokenizer, prompt, episode.meta.get("control") or "")
    ids, prompt_len = list(prompt), len(prompt)
    mask, starts = [False] * len(ids), [False] * len(ids)
    last_action_end = len(ids)
    for step, (action, observation) in zip(episode.steps, segments, strict=True):
        last_action_end = len(ids)
        if action:
            ids += action
            mask += [True] * len(action)
            starts += _step_starts(tokenizer, step["action"], action, delims)
            last_action_end = len(ids)
        ids += observation
        mask += [False] * len(observation)
        starts += [False] * len(observation)
    # The model emitted EOS right after its last action, before any reply of the env (in step
    # mode the env's closing newline comes after it), so EOS goes there as one more action token.
    stopped = episode.meta.get("eos", True) and episode.terminated
    eos = _eos_id(episode, tokenizer)
    k = last_action_end
    if stopped and eos is not None and not (mask[k - 1] and ids[k - 1] == eos):  # not logged yet
        ids.insert(k, eos)
        starts.insert(k, not mask[k - 1])  # alone (empty last action), EOS is its own step
        mask.insert(k, True)
    if max_length is not None and len(ids) > max_length:
        ids, mask, starts = ids[:max_length], mask[:max_length], starts[:max_length]
    reward, sample = float(episode.reward), int(episode.meta.get("sample", 0))
    return TokenizedEpisode(ids, mask, starts, prompt_len, reward, episode.task_id, sample)


def _step_starts(tokenizer: Any, text: str, ids: list[int], delims: Sequence[str]) -> list[bool]:
    """Step-start flags for an action's ids. Character offsets come from the tokenizer when the
    ids are its encoding of ``text``, else (ids as generated) from decoding each prefix.

    Ids cut at ``max_length`` stand for a prefix of ``text``: only as much of it as they can
    cover is read (`oreo_agents.data.inputs.encode_within`), and they count as the tokenizer's
    encoding when that prefix's encoding begins with them.
    """
    bound = (len(ids) + MARGIN_TOKENS) * max_token_chars(tokenizer)
    cut = len(text) > bound
    text = text[:bound]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if (enc["input_ids"][: len(ids)] if cut else enc["input_ids"]) == ids:
        return _step_starts_in(text, enc["offset_mapping"][: len(ids)], delims)
    ends = [len(t) for t in tokenizer.batch_decode([ids[: k + 1] for k in range(len(ids))])]
    offsets = list(zip([0, *ends[:-1]], ends, strict=True))
    return _step_starts_in(tokenizer.decode(ids), offsets, delims)


def _eos_id(episode: Episode, tokenizer: Any) -> int | None:
    """The EOS the model emitted (``meta["eos_id"]``: a chat model may stop on any of several),
    when it is a special token of this tokenizer; else the tokenizer's own EOS."""
    emitted = episode.meta.get("eos_id")
    if isinstance(emitted, int) and emitted in tokenizer.all_special_ids:
        return emitted
    return tokenizer.eos_token_id


def tokenize_episodes(
    episodes: Iterable[Episode],
    tokenizer: Any,
    *,
    step_delimiters: Sequence[str] | None = None,
    max_length: int | None = None,
) -> list[TokenizedEpisode]:
    """`tokenize_episode` over many; drops (with one warning) episodes with no action token."""
    out, empty, cut = [], 0, 0
    for ep in episodes:
        tok = tokenize_episode(
            ep, tokenizer, step_delimiters=step_delimiters, max_length=max_length
        )
        if not any(tok.action_mask):
            empty += 1
            continue
        cut += max_length is not None and len(tok) == max_length
        out.append(tok)
    if empty:
        warnings.warn(f"dropped {empty} episodes with no action tokens", stacklevel=2)
    if cut:
        warnings.warn(f"{cut} episodes were cut at max_length={max_length}", stacklevel=2)
    return out


def dpo_pairs(
    episodes: Sequence[TokenizedEpisode], *, max_pairs_per_task: int = 6, seed: int = 0
) -> list[tuple[TokenizedEpisode, TokenizedEpisode]]:
    """(chosen, rejected) pairs: a correct and an incorrect episode of the same task.

    At most ``max_pairs_per_task`` pairs per task (6 in the OREO paper's DPO baseline, App. A.3),
    drawn without repeats from all correct x incorrect combinations with a seeded RNG.
    """
    rng = random.Random(seed)
    by_task: dict[str, list[TokenizedEpisode]] = defaultdict(list)
    for ep in episodes:
        by_task[ep.task_id].append(ep)
    pairs = []
    for task in sorted(by_task):
        good = [e for e in by_task[task] if e.reward > 0]
        bad = [e for e in by_task[task] if e.reward <= 0]
        combos = [(g, b) for g in good for b in bad]
        rng.shuffle(combos)
        pairs += combos[:max_pairs_per_task]
    return pairs


def action_spans(action_mask: Sequence[bool]) -> list[tuple[int, int]]:
    """``(first, last)`` positions of each run of action tokens: one per action of an agent's
    episode. Value-guided acting reads a candidate's value at ``last - 1``, the state before
    the action's closing token (`oreo_agents.evaluation.acting`)."""
    spans, start = [], None
    for i, m in enumerate([*action_mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i - 1))
            start = None
    return spans


@dataclass(frozen=True)
class RankedPair:
    """A correct and an incorrect episode of one task, and where a ranking loss compares them.

    Attributes:
        won: The correct episode.
        lost: The incorrect one.
        reads: ``(position in won, position in lost)`` of each comparison: the j-th action's
            place where acting reads a candidate (`action_spans`), for every j at which the two
            histories already differ (before that they are one history).
    """

    won: TokenizedEpisode
    lost: TokenizedEpisode
    reads: tuple[tuple[int, int], ...]


def ranked_pairs(
    episodes: Sequence[TokenizedEpisode], *, max_pairs_per_task: int = 6, seed: int = 0
) -> list[RankedPair]:
    """`dpo_pairs` with their comparisons (`RankedPair`); pairs whose histories never differ at
    an action they both took (one cut short of the other) are left out."""
    out = []
    for won, lost in dpo_pairs(episodes, max_pairs_per_task=max_pairs_per_task, seed=seed):
        shared = min(len(won), len(lost))
        diverge = next(
            (t for t in range(shared) if won.input_ids[t] != lost.input_ids[t]), shared
        )
        # the actions both took (the shorter episode's count); a read at last - 1 needs last > 0
        spans = zip(action_spans(won.action_mask), action_spans(lost.action_mask), strict=False)
        reads = tuple(
            (a - 1, b - 1) for (_, a), (_, b) in spans if max(a, b) > diverge and min(a, b) > 0
        )
        if reads:
            out.append(RankedPair(won, lost, reads))
    return out


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int = 0, group: int = 64
) -> list[list[int]]:
    """Batches of indices with similar lengths, in a seeded random order.

    Indices are shuffled, cut into windows of ``batch_size * group``, sorted by length inside a
    window, then batched; so padding stays small while the data order stays random.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    window = batch_size * group
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def shuffled_batches(lengths: Sequence[int], batch_size: int, *, seed: int = 0) -> list[list[int]]:
    """Batches of indices in a seeded random order, lengths ignored (`length_grouped_batches`
    without the grouping)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(items: Sequence[TokenizedEpisode], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch into tensors ``[B, T]`` (masks are bool; rewards ``[B]``)."""
    width = max(len(x) for x in items)
    n = len(items)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    action = torch.zeros((n, width), dtype=torch.bool)
    starts = torch.zeros((n, width), dtype=torch.bool)
    for i, x in enumerate(items):
        k = len(x)
        input_ids[i, :k] = torch.tensor(x.input_ids)
        attention[i, :k] = 1
        action[i, :k] = torch.tensor(x.action_mask)
        starts[i, :k] = torch.tensor(x.step_starts)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "action_mask": action,
        "step_starts": starts,
        "rewards": torch.tensor([x.reward for x in items], dtype=torch.float32),
    }


def mismatched(
    items: Sequence[TokenizedEpisode], max_length: int | None = None
) -> list[TokenizedEpisode]:
    """Prompt i with the response (actions and observations) of item i+1, for KTO's KL point,
    cut at ``max_length`` as the items themselves were (TRL cuts both kinds alike)."""
    out = []
    cut = slice(0, max_length)
    for i, x in enumerate(items):
        y = items[(i + 1) % len(items)]
        out.append(
            TokenizedEpisode(
                (x.input_ids[: x.prompt_len] + y.input_ids[y.prompt_len :])[cut],
                (x.action_mask[: x.prompt_len] + y.action_mask[y.prompt_len :])[cut],
                (x.step_starts[: x.prompt_len] + y.step_starts[y.prompt_len :])[cut],
                x.prompt_len,
                y.reward,
                x.task_id,
            )
        )
    return out
