"""One way to turn text and logged episodes into model inputs: collection, training, scoring.

A model's context is built segment by segment, the prompt first (with a BOS when the tokenizer
has one and the text does not), then each action and observation without special tokens. The
collector feeds a policy exactly these ids, appends the ids the policy generated, and logs them
with the episode (``prompt_ids``, and ``action_ids`` / ``observation_ids`` in each step, with
the tokenizer's identity in ``meta["tokenizer"]``). Training and value scoring read the stored
ids back when the tokenizer is the same, so they see the token sequence the policy produced,
even where it is not the canonical tokenization of its own text (byte-level BPE samples often
are not) and at segment boundaries, where encoding the whole text at once would merge tokens.
Episodes without ids (gold solutions, imported data, another tokenizer) are encoded segment by
segment with the same two functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

_IDS: dict[int, tuple[Any, str]] = {}  # id(tokenizer) -> (tokenizer, its identity), a cache
_CHARS: dict[int, tuple[Any, int]] = {}  # id(tokenizer) -> (tokenizer, max_token_chars), a cache
# Tokens encoded beyond a limit before a text is cut: BPE merges are not stable under a cut
# (the last tokens before it can change), so the cut stays this many tokens past what is kept.
MARGIN_TOKENS = 64


def encode_prompt(tokenizer: Any, text: str, limit: int | None = None) -> list[int]:
    """The ids of a context's first segment: a BOS is added when the tokenizer has one and the
    text does not start with it (chat templates write their own). ``limit``: `encode_within`."""
    bos = tokenizer.bos_token
    add_bos = bos is not None and not text.startswith(bos)
    return encode_within(tokenizer, text, limit, add_special_tokens=add_bos)


def encode_text(tokenizer: Any, text: str, limit: int | None = None) -> list[int]:
    """The ids of a later segment (an action or an observation): no special tokens added.
    ``limit``: `encode_within`."""
    if not text:
        return []
    return encode_within(tokenizer, text, limit, add_special_tokens=False)


def max_token_chars(tokenizer: Any) -> int:
    """How many characters of text one token can stand for at most: its longest vocabulary
    string (cached per tokenizer). Byte-level BPE writes one character per byte there, and a
    character is at least one byte, so this bounds it; `encode_within` copes where it does not
    (a WordPiece ``[UNK]`` stands for a whole word)."""
    cached = _CHARS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    longest = max(map(len, tokenizer.get_vocab()), default=1)
    _CHARS[id(tokenizer)] = (tokenizer, longest)
    return longest


def encode_within(
    tokenizer: Any, text: str, limit: int | None, *, add_special_tokens: bool = False
) -> list[int]:
    """The first ``limit`` ids of ``text`` (all of them if None), encoding only a prefix of it.

    ``limit`` tokens stand for at most ``limit * max_token_chars`` characters, so a text cut a
    margin (`MARGIN_TOKENS`) past that gives the same first ``limit`` ids as the whole text. A
    cut can still change a merge chain inside one long word, so the prefix doubles until two
    agree; a 50 MB observation under a 2,048-token limit costs two short encodings, not 9 GB.
    """

    def encode(part: str) -> list[int]:
        return list(tokenizer(part, add_special_tokens=add_special_tokens)["input_ids"])

    if limit is None:
        return encode(text)
    if limit <= 0:
        return []
    cut, kept = (limit + MARGIN_TOKENS) * max_token_chars(tokenizer), None
    while cut < len(text):
        ids = encode(text[:cut])[:limit]
        if len(ids) == limit and ids == kept:
            return ids
        kept, cut = ids, 2 * cut
    return encode(text)[:limit]


def with_control(tokenizer: Any, prompt_ids: list[int], control: str) -> list[int]:
    """A prompt's ids with a control text's ids in front (after a leading BOS): return
    conditioning (`oreo_agents.algorithms.rcrl`) as a prefix of its own, which keeps the
    distances between the prompt's tokens and the answer as the policy learned them."""
    if not control:
        return list(prompt_ids)
    bos = tokenizer.bos_token_id
    k = 1 if prompt_ids and bos is not None and prompt_ids[0] == bos else 0
    return [*prompt_ids[:k], *encode_text(tokenizer, control), *prompt_ids[k:]]


def policy_prompt_ids(tokenizer: Any, prompt: str, control: str = "") -> list[int]:
    """The ids a policy is fed for a rendered prompt (`oreo_agents.rollout.prompting`): the
    prompt's ids with the control text's in front (`with_control`). Collection, acting and beam
    search all start a context here; training reads those ids from the episode, or, for an
    episode of text only, encodes its prompt the same way (`stored_ids`, then `with_control`
    of the episode's ``meta["control"]``)."""
    return with_control(tokenizer, encode_prompt(tokenizer, prompt), control)


def tokenizer_id(tokenizer: Any) -> str:
    """``name@hash``: the tokenizer's identity, equal for two tokenizers that encode alike.

    The hash covers the whole fast-tokenizer definition (vocabulary, merges, normalizer,
    pre-tokenizer, added tokens) but not padding and truncation settings, so a tokenizer saved
    by ``oreo train`` next to the policy matches the one that collected its data.
    """
    cached = _IDS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("padding", None)
        spec.pop("truncation", None)
    else:  # a slow tokenizer: its vocabulary and special tokens
        vocab = sorted(tokenizer.get_vocab().items())
        spec = {"vocab": vocab, "special": tokenizer.all_special_ids}
    digest = hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=6).hexdigest()
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    ident = f"{name}@{digest}"
    _IDS[id(tokenizer)] = (tokenizer, ident)
    return ident


def split_generation(
    tokenizer: Any,
    token_ids: Sequence[int],
    text: str,
    eos_id: int | None,
    action: str,
    following: str,
) -> tuple[list[int], str] | None:
    """Which part of the context after an action the policy itself generated.

    The context continues with ``action + following`` (the env's action as logged, then what
    the prompt renders after it: an agent's newline and the env's reply, a chat template's
    end-of-turn token...). When the generation's text is a prefix of that, its ids are the
    action's ids; an EOS the model stopped on is theirs too when the context continues with
    it (a chat template ends each assistant turn with it).

    Args:
        tokenizer: The policy's tokenizer.
        token_ids: The generated ids (without the EOS).
        text: Their text (the backend's decoding).
        eos_id: The EOS id the generation stopped on, if it did.
        action: The action as the env got it.
        following: The rendering after the action.

    Returns:
        ``(action ids, rest of following they do not cover)``, or None when the logged action
        is not what was generated (an agent's action parsed from a longer line, or snapped to
        an admissible one): then the context holds re-encoded text.
    """
    whole = action + following
    if len(text) < len(action) or not whole.startswith(text):
        return None
    if tokenizer.decode(list(token_ids), skip_special_tokens=False) != text:
        return None  # a special token inside the text: its ids are not its text
    ids, used = list(token_ids), len(text)
    if eos_id is not None:
        eos_text = tokenizer.decode([eos_id], skip_special_tokens=False)
        if eos_text and whole.startswith(eos_text, used):
            ids.append(eos_id)
            used += len(eos_text)
    return ids, whole[used:]


def stored_ids(
    episode: Any, tokenizer: Any, limit: int | None = None
) -> tuple[list[int], list[tuple[list[int], list[int]]]]:
    """An episode's ``(prompt ids, [(action ids, observation ids), ...])``: the ids logged with
    it when they are complete and ``tokenizer`` is the one that produced them, else the text
    encoded segment by segment (`encode_prompt`, `encode_text`).

    With ``limit``, each segment keeps only what is left of ``limit`` ids after the segments
    before it, so the first ``limit`` ids are exact and a huge segment is never encoded whole.
    """
    stored = has_ids(episode, tokenizer)
    if stored:
        prompt = list(episode.prompt_ids[:limit])
    else:
        prompt = encode_prompt(tokenizer, episode.prompt, limit)
    agent = not stored and is_agent_episode(episode)
    steps, used = [], len(prompt)
    for s in episode.steps:
        if stored:
            action = list(s["action_ids"][: _left(limit, used)])
            observation = list(s["observation_ids"][: _left(limit, used + len(action))])
        else:
            left = _left(limit, used)
            action, rest = action_segment(tokenizer, s["action"], s["observation"], agent, left)
            observation = encode_text(tokenizer, rest, _left(limit, used + len(action)))
        steps.append((action, observation))
        used += len(action) + len(observation)
    return prompt, steps


def _left(limit: int | None, used: int) -> int | None:
    """What is left of ``limit`` ids after ``used`` (None: no limit)."""
    return None if limit is None else max(limit - used, 0)


# An agent's action is one line: the collector stops its generation at the line's end.
AGENT_STOP = "\n"


def action_segment(
    tokenizer: Any, action: str, following: str, agent: bool, limit: int | None = None
) -> tuple[list[int], str]:
    """An action's ids when only its text is known, and the rest of what follows it.

    What ended the action is the policy's own output, so its ids belong to the action (they
    are trained, as in the ids a generation logs, `split_generation`): the tokenizer's EOS
    that a chat template closes an assistant turn with, or, for an agent, the newline after
    its one-line action (`AGENT_STOP`), which the rendering puts before the env's reply.
    Without them a policy fine-tuned on expert text never learns to stop its action.
    ``limit``: at most this many ids (`encode_within`).
    """
    ids = encode_text(tokenizer, action, limit)
    if not action:
        return ids, following
    eos = tokenizer.eos_token
    for end in (eos, AGENT_STOP if agent else None):
        if end and following.startswith(end):
            return (ids + encode_text(tokenizer, end))[:limit], following[len(end) :]
    return ids, following


def is_agent_episode(episode: Any) -> bool:
    """Whether an episode is an agent's (one-line actions, the env's replies between them):
    logged through an agent prompt (its steps keep the env's raw reply), or of an env id whose
    class declares ``kind = "agent"``."""
    from oreo_envs import kind_of

    steps = episode.steps
    return any("env_observation" in s for s in steps) or kind_of(episode.env_id) == "agent"


def has_ids(episode: Any, tokenizer: Any) -> bool:
    """Whether an episode carries complete ids from this tokenizer: one whose `tokenizer_id`
    has the same hash. The name is left out, since it is where the tokenizer was loaded from,
    and a run folder copied to another path or machine still holds its tokenizer's ids."""
    logged = episode.meta.get("tokenizer")
    return (
        episode.prompt_ids is not None
        and isinstance(logged, str)
        and logged.rsplit("@", 1)[-1] == tokenizer_id(tokenizer).rsplit("@", 1)[-1]
        and all("action_ids" in s and "observation_ids" in s for s in episode.steps)
    )


def episode_state(episode: Any, tokenizer: Any) -> list[int]:
    """The ids of an episode's whole context (prompt, every action and observation; no EOS):
    its final state, as a value model reads it."""
    prompt, steps = stored_ids(episode, tokenizer)
    return prompt + [t for action, observation in steps for t in action + observation]
