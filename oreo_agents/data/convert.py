"""Import and export the formats published with the OREO paper.

- ``oreo-math``: one JSON object per line with ``prompt``, ``response``, ``reward`` (the format of
  the math data released with the paper). One episode per line, one step holding the response;
  the task id is a hash of the prompt, so samples of one problem share it (DPO pairs need that).
- ``oreo-agent``: ALFWorld trajectories in the OREO/ETO format: ``conversations`` (a list of
  ``{"from": "human"|"gpt", "value": ...}`` or ``{"role": "user"|"assistant", "content": ...}``)
  and ``reward``; a JSON list or JSON Lines. Turns before the first action (an instruction and
  the agent's "OK" acknowledgement, as ETO writes them) are kept in ``meta["chat_prefix"]``; the
  user turn before the first action is the prompt; each later assistant turn is an action and the
  user turn after it its observation.

Both directions keep every field, so import then export gives equal records.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from oreo_agents.data.episodes import (
    MANIFEST,
    Episode,
    EpisodeFormatError,
    EpisodeWriter,
    read_episodes,
)
from oreo_envs.files import atomic_write

FORMATS = ("oreo-math", "oreo-agent")
_ROLE_KEYS = {"from": ("value", "human", "gpt"), "role": ("content", "user", "assistant")}


def prompt_task_id(prompt: str) -> str:
    """A stable task id for an imported prompt (12 hex digits of its SHA-1)."""
    return hashlib.sha1(prompt.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line or index, record)`` from a JSON Lines file or a file holding one JSON list.

    Raises:
        EpisodeFormatError: Unparseable input (not UTF-8, not JSON), with the file and line.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        raise EpisodeFormatError(f"{path}:{lineno}: not UTF-8 text ({e.reason})") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise EpisodeFormatError(f"{path}: not valid JSON ({e})") from None
        yield from enumerate(records)
        return
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise EpisodeFormatError(f"{path}:{lineno}: not valid JSON ({e})") from None


def from_oreo_math(records: Iterable[tuple[int, dict]], env_id: str) -> Iterator[Episode]:
    """Episodes from ``{"prompt", "response", "reward"}`` records."""
    samples: dict[str, int] = defaultdict(int)
    for where, rec in records:
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get("prompt"), str)
            and isinstance(rec.get("response"), str)
            and isinstance(rec.get("reward"), (int, float))
        ):
            raise EpisodeFormatError(f"record {where}: needs 'prompt', 'response' and 'reward'")
        task_id = prompt_task_id(rec["prompt"])
        extra = {k: v for k, v in rec.items() if k not in ("prompt", "response", "reward")}
        meta = {"sample": samples[task_id], "source_format": "oreo-math", "extra": extra}
        samples[task_id] += 1
        yield Episode(
            env_id=env_id,
            task_id=task_id,
            prompt=rec["prompt"],
            steps=[{"action": rec["response"], "observation": ""}],
            reward=float(rec["reward"]),
            success=rec["reward"] > 0,
            meta=meta,
        )


def to_oreo_math(episode: Episode) -> dict[str, Any]:
    """The ``{"prompt", "response", "reward"}`` record of an episode."""
    extra = episode.meta.get("extra", {})
    reward = episode.reward
    if episode.meta.get("source_format") == "oreo-math" and reward == int(reward):
        reward = int(reward)  # the published files write 0/1 as integers
    return {"prompt": episode.prompt, "response": episode.response, "reward": reward, **extra}


def from_oreo_agent(records: Iterable[tuple[int, dict]], env_id: str) -> Iterator[Episode]:
    """Episodes from ``{"conversations": [...], "reward"}`` records (module docstring)."""
    samples: dict[str, int] = defaultdict(int)
    for where, rec in records:
        try:
            prefix, prompt, steps, style = _split_conversation(rec.get("conversations"))
        except (EpisodeFormatError, AttributeError) as e:
            raise EpisodeFormatError(f"record {where}: {e}") from None
        if not isinstance(rec.get("reward"), (int, float)):
            raise EpisodeFormatError(f"record {where}: needs a numeric 'reward'")
        task_id = str(rec.get("id", prompt_task_id(prompt)))
        extra = {k: v for k, v in rec.items() if k not in ("conversations", "reward")}
        meta = {
            "sample": samples[task_id],
            "source_format": "oreo-agent",
            "chat_prefix": prefix,
            "chat_keys": style,
            "extra": extra,
        }
        samples[task_id] += 1
        yield Episode(
            env_id=env_id,
            task_id=task_id,
            prompt=prompt,
            steps=steps,
            reward=float(rec["reward"]),
            success=rec["reward"] > 0,
            meta=meta,
        )


def to_oreo_agent(episode: Episode) -> dict[str, Any]:
    """The ``{"conversations", "reward"}`` record of an episode."""
    style = episode.meta.get("chat_keys", "from")
    text_key, user, agent = _ROLE_KEYS[style]
    turns = list(episode.meta.get("chat_prefix", []))
    turns.append({style: user, text_key: episode.prompt})
    for i, step in enumerate(episode.steps):
        turns.append({style: agent, text_key: step["action"]})
        if i + 1 < len(episode.steps) or step["observation"]:
            turns.append({style: user, text_key: step["observation"]})
    reward = episode.reward
    if episode.meta.get("source_format") == "oreo-agent" and reward == int(reward):
        reward = int(reward)
    return {"conversations": turns, "reward": reward, **episode.meta.get("extra", {})}


def _split_conversation(turns: Any) -> tuple[list, str, list[dict[str, str]], str]:
    if not isinstance(turns, list) or not turns:
        raise EpisodeFormatError("needs a non-empty 'conversations' list")
    style = "from" if "from" in turns[0] else "role"
    text_key, user, agent = _ROLE_KEYS[style]
    roles = [t.get(style) for t in turns]
    texts = [t.get(text_key) for t in turns]
    if not all(isinstance(x, str) for x in texts):
        raise EpisodeFormatError(f"every turn needs a string {text_key!r}")
    first_agent = roles.index(agent) if agent in roles else len(roles)
    # ETO/ReAct open with an instruction the agent acknowledges ("OK"); that exchange is prefix.
    start = first_agent
    if first_agent + 1 < len(roles) and texts[first_agent].strip() == "OK":
        start = roles.index(agent, first_agent + 1) if agent in roles[first_agent + 1 :] else None
        if start is None:
            raise EpisodeFormatError("no agent action after the 'OK' acknowledgement")
    if start == 0 or roles[start - 1] != user:
        raise EpisodeFormatError("the first action must follow a user turn (the task)")
    prefix, prompt = turns[: start - 1], texts[start - 1]
    steps = []
    i = start
    while i < len(turns):
        if roles[i] != agent:
            raise EpisodeFormatError(f"turn {i}: expected the agent, got {roles[i]!r}")
        obs = texts[i + 1] if i + 1 < len(turns) else ""
        if i + 1 < len(turns) and roles[i + 1] != user:
            raise EpisodeFormatError(f"turn {i + 1}: expected the user, got {roles[i + 1]!r}")
        steps.append({"action": texts[i], "observation": obs})
        i += 2
    return prefix, prompt, steps, style


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    src_format: str,
    dst_format: str | None = None,
    env_id: str | None = None,
) -> int:
    """Convert between a published format and an oreo episode store.

    Importing (``src_format`` in `FORMATS`): ``src`` is the published file, ``dst`` a store folder;
    the episodes get ``env_id`` (default ``oreo/MATH-v0`` or ``oreo/ALFWorld-v0``). The whole file
    is parsed before the store is touched, so a bad record leaves no half store behind.
    Exporting (``src_format == "oreo"``): ``src`` is a store (folder or file) and ``dst`` a JSON
    Lines file in ``dst_format``; by default each episode's ``meta.source_format``, else
    ``oreo-agent`` for ALFWorld/TextWorld episodes and ``oreo-math`` for the rest. ``dst`` appears
    (atomically, replacing any old one) only once every episode converted.

    Returns:
        The number of records converted.

    Raises:
        EpisodeFormatError: A malformed input record, with its file (and line when known).
        ValueError: An unknown format, or an output that would overwrite the input.
    """
    if src_format in FORMATS:
        default_env = "oreo/MATH-v0" if src_format == "oreo-math" else "oreo/ALFWorld-v0"
        return _import(src, Path(dst), src_format, env_id or default_env)
    if src_format != "oreo":
        raise ValueError(f"unknown format {src_format!r}; expected one of {FORMATS + ('oreo',)}")
    if dst_format is not None and dst_format not in FORMATS:
        raise ValueError(f"unknown format {dst_format!r}; expected one of {FORMATS}")
    _check_export_target(Path(src), Path(dst))
    return _write_atomically(Path(dst), _export_lines(src, dst_format))


def _import(src: str | Path, dst: Path, src_format: str, env_id: str) -> int:
    if _inside(Path(src), dst):
        raise ValueError(f"the input {src} is inside the output store {dst}; import elsewhere")
    reader = from_oreo_math if src_format == "oreo-math" else from_oreo_agent
    try:
        # All of it before the store is made: a bad record halfway must not leave half a store
        # that a later resume would mistake for the start of a good import.
        episodes = list(reader(read_records(src), env_id))
    except EpisodeFormatError as e:
        if not str(e).startswith("record "):  # read_records' own errors name the file already
            raise
        raise EpisodeFormatError(f"{src}: {e}") from None
    manifest = {"env_id": env_id, "source": str(src), "source_format": src_format}
    n = 0
    with EpisodeWriter(dst, manifest, resume_keys=("env_id", "source")) as writer:
        for ep in episodes:
            if ep.key not in writer.done:
                writer.write(ep)
                n += 1
    return n


def _export_lines(src: str | Path, dst_format: str | None) -> Iterator[str]:
    for ep in read_episodes(src):
        agent_env = "ALFWorld" in ep.env_id or "TextWorld" in ep.env_id
        fmt = dst_format or ep.meta.get("source_format")
        fmt = fmt or ("oreo-agent" if agent_env else "oreo-math")
        record = to_oreo_agent(ep) if fmt == "oreo-agent" else to_oreo_math(ep)
        yield json.dumps(record, ensure_ascii=False) + "\n"


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (symbolic links resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def _check_export_target(src: Path, dst: Path) -> None:
    """Refuse an export that would overwrite its input (the file, or anything in its store)."""
    store = src if src.is_dir() else src.parent
    if (src.is_dir() or (store / MANIFEST).is_file()) and _inside(dst, store):
        raise ValueError(
            f"the output {dst} is inside the input store {store}; export to a file outside it"
        )
    if dst.exists() and src.exists() and dst.samefile(src):
        raise ValueError(f"the output {dst} is the input; export to another file")
    if dst.is_dir():
        raise ValueError(f"the output {dst} is a folder; export to a .jsonl file")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"no folder {dst.parent} to write the output {dst} in")


def _write_atomically(path: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` to a temporary file beside ``path``, then rename it onto ``path``.

    Returns:
        The number of lines written. If ``lines`` raises, ``path`` is left as it was.
    """
    n = 0
    with atomic_write(path, text=True) as f:
        for line in lines:
            f.write(line)
            n += 1
    return n
