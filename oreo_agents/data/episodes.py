"""Logged episodes: the schema and its append-only, resumable JSON Lines store.

One episode per line (ARCHITECTURE.md)::

    {"schema_version": 1, "env_id": "oreo/GSM8K-v0", "task_id": "17", "prompt": "User: ...",
     "steps": [{"action": "...", "observation": ""}], "reward": 1.0, "success": true,
     "terminated": true, "truncated": false, "info": {"answer": "42", "gold": "42"},
     "meta": {"model": "...", "sampling": {...}, "seed": 0, "sample": 3, ...}}

``prompt + action_1 + observation_1 + action_2 + ...`` is the exact text the agent saw (for chat
formatted agents the formatter rebuilds its messages from the same pieces). Token ids are not
stored: tokenization happens at train time with the model's own tokenizer.

A store is a folder: ``manifest.json`` (what produced it) and ``episodes-NNNNN.jsonl`` shards.
Each episode is written with one ``write`` of a whole line and flushed, so a killed writer
leaves whole lines (plus at worst one torn last line, which the next writer cuts off); the
writer knows which ``(task_id, sample)`` keys are done, so re-running resumes without duplicates.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SHARD_PATTERN = "episodes-*.jsonl"


class EpisodeFormatError(ValueError):
    """A stored episode is malformed; the message names the file and line."""


@dataclass
class Episode:
    """One episode of an agent in a text env.

    Attributes:
        env_id: The env it ran in (or the format it was imported from).
        task_id: The env's task id.
        prompt: The first observation (what the agent saw first).
        steps: ``{"action": str, "observation": str}`` in order; the observation is the env's
            reply to that action. Single-shot math has one step holding the whole response.
        reward: The episode's (sparse) return.
        success: Whether the task was solved.
        terminated: Ended by the task's rules; ``truncated``: cut by a step limit.
        info: JSON-safe fields of the last ``info`` (extracted answer, gold, task type...).
        meta: Provenance: model, sampling parameters, seed, ``sample`` (which of the K samples
            of its task this is), timestamps.
    """

    env_id: str
    task_id: str
    prompt: str
    steps: list[dict[str, str]]
    reward: float
    success: bool
    terminated: bool = True
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int]:
        """``(task_id, sample)``: unique within one store."""
        return self.task_id, int(self.meta.get("sample", 0))

    @property
    def response(self) -> str:
        """Everything after the prompt: ``action_1 + observation_1 + action_2 + ...``."""
        return "".join(s["action"] + s["observation"] for s in self.steps)

    @property
    def actions(self) -> list[str]:
        return [s["action"] for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Episode:
        """Validate and build an episode.

        Raises:
            EpisodeFormatError: A field is missing, has the wrong type, or the schema version is
                newer than this code understands.
        """
        if not isinstance(record, dict):
            raise EpisodeFormatError(f"an episode is a JSON object, got {type(record).__name__}")
        version = record.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise EpisodeFormatError(
                f"unsupported schema_version {version!r} (this oreo reads <= {SCHEMA_VERSION})"
            )
        for name, types in _REQUIRED.items():
            if name not in record:
                raise EpisodeFormatError(f"missing field {name!r}")
            value = record[name]
            # bool is an int subclass: keep `true` out of reward and require it for success
            is_bool = isinstance(value, bool)
            if (types is bool) != is_bool or not isinstance(value, types):
                raise EpisodeFormatError(f"field {name!r} has type {type(record[name]).__name__}")
        for i, step in enumerate(record["steps"]):
            if not (
                isinstance(step, dict)
                and isinstance(step.get("action"), str)
                and isinstance(step.get("observation"), str)
            ):
                raise EpisodeFormatError(f"steps[{i}] needs string 'action' and 'observation'")
        known = {f: record[f] for f in cls.__dataclass_fields__ if f in record}
        return cls(**known)


_REQUIRED: dict[str, Any] = {
    "env_id": str,
    "task_id": str,
    "prompt": str,
    "steps": list,
    "reward": (int, float),
    "success": bool,
}


def episode_line(episode: Episode) -> bytes:
    """The episode as one JSON line (UTF-8, ending in a newline)."""
    text = json.dumps(episode.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8", errors="surrogatepass")


def shard_files(path: str | Path) -> list[Path]:
    """The episode files of a store folder (sorted), or ``[path]`` for a single file.

    Raises:
        FileNotFoundError: Nothing is there, or the folder holds no episode files.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no episodes at {path}")
    files = sorted(path.glob(SHARD_PATTERN)) or sorted(path.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{path} holds no episode files ({SHARD_PATTERN})")
    return files


def read_episodes(path: str | Path) -> Iterator[Episode]:
    """Yield the episodes of a store folder or a ``.jsonl`` file, in order.

    A torn last line (a writer killed mid-write) is skipped with a warning.

    Raises:
        EpisodeFormatError: A malformed record, with its file and line number.
    """
    for file in shard_files(path):
        with file.open("rb") as f:
            lines = f.read().split(b"\n")
        torn = lines.pop()  # b"" when the file ends in a newline
        for lineno, raw in enumerate(lines, start=1):
            if raw.strip():
                yield _parse(raw, file, lineno)
        if torn.strip():
            warnings.warn(f"{file}:{len(lines) + 1}: skipping a torn last line", stacklevel=2)


def load_episodes(path: str | Path) -> list[Episode]:
    """All episodes of a store folder or file (see `read_episodes`)."""
    return list(read_episodes(path))


def _parse(raw: bytes, file: Path, lineno: int) -> Episode:
    try:
        record = json.loads(raw.decode("utf-8", errors="surrogatepass"))
        return Episode.from_dict(record)
    except (UnicodeDecodeError, json.JSONDecodeError, EpisodeFormatError) as e:
        raise EpisodeFormatError(f"{file}:{lineno}: {e}") from None


class EpisodeWriter:
    """Append episodes to a store folder; resumes an earlier run of the same job.

    Args:
        out_dir: The store folder (created if missing).
        manifest: What produces these episodes (env id and options, model, sampling, seed...).
            An existing store must have been made with the same values for ``resume_keys``,
            otherwise writing into it would mix two runs, and this raises.
        resume_keys: Manifest fields that must match to resume.
        shard_size: Episodes per shard file.
    """

    def __init__(
        self,
        out_dir: str | Path,
        manifest: dict[str, Any],
        *,
        resume_keys: tuple[str, ...] = ("env_id", "env_options", "model", "sampling", "seed"),
        shard_size: int = 10_000,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        manifest_path = self.out_dir / MANIFEST
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if manifest_path.exists():
            old = json.loads(manifest_path.read_text())
            for key in resume_keys:
                if old.get(key) != _jsonable(manifest.get(key)):
                    raise ValueError(
                        f"{self.out_dir} already holds episodes of another run: {key!r} was "
                        f"{old.get(key)!r}, now {manifest.get(key)!r}. Use another --out folder "
                        "or the same settings to resume."
                    )
            self.manifest = {**old, **_jsonable(manifest), "updated": now}
        else:
            self.manifest = {
                "schema_version": SCHEMA_VERSION,
                **_jsonable(manifest),
                "created": now,
                "updated": now,
            }
        self.done: set[tuple[str, int]] = set()
        self._shard_counts: dict[str, int] = {}
        for file in sorted(self.out_dir.glob(SHARD_PATTERN)):
            _cut_torn_line(file)
            n = 0
            for ep in read_episodes(file):
                self.done.add(ep.key)
                n += 1
            self._shard_counts[file.name] = n
        self._fd: int | None = None
        self._shard: str | None = None
        self._write_manifest()

    @property
    def count(self) -> int:
        """Episodes in the store, including those of earlier runs."""
        return sum(self._shard_counts.values())

    def write(self, episode: Episode) -> None:
        """Append one episode as a single whole line and flush it to the OS."""
        if episode.key in self.done:
            raise ValueError(f"episode {episode.key} is already in {self.out_dir}")
        self._open_shard()
        os.write(self._fd, episode_line(episode))
        self.done.add(episode.key)
        self._shard_counts[self._shard] += 1

    def close(self) -> None:
        """fsync the open shard and update the manifest's counts."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        self._write_manifest()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_shard(self) -> None:
        if self._fd is not None and self._shard_counts[self._shard] < self.shard_size:
            return
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        names = sorted(self._shard_counts)
        if names and self._shard_counts[names[-1]] < self.shard_size:
            self._shard = names[-1]
        else:
            self._shard = f"episodes-{len(names):05d}.jsonl"
            self._shard_counts[self._shard] = 0
        path = self.out_dir / self._shard
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _write_manifest(self) -> None:
        self.manifest["episodes"] = self.count
        self.manifest["shards"] = sorted(self._shard_counts)
        tmp = self.out_dir / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.out_dir / MANIFEST)


def _cut_torn_line(file: Path) -> None:
    """Truncate a file after its last newline (drops a line torn by a killed writer)."""
    data = file.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with file.open("r+b") as f:
            f.truncate(keep)
        warnings.warn(f"{file}: removed a torn last line left by an interrupted run", stacklevel=3)


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so manifests compare equal to what was stored (tuples -> lists)."""
    return json.loads(json.dumps(value, default=str))
