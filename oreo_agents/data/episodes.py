"""Logged episodes: the schema and its append-only, resumable JSON Lines store.

One episode per line (docs/architecture.md)::

    {"schema_version": 2, "env_id": "oreo/GSM8K-v0", "task_id": "17", "prompt": "User: ...",
     "steps": [{"action": "...", "observation": "", "action_ids": [...], "observation_ids": []}],
     "reward": 1.0, "success": true, "terminated": true, "truncated": false,
     "info": {"answer": "42", "gold": "42"}, "prompt_ids": [...],
     "meta": {"model": "...", "tokenizer": "name@hash", "sampling": {...}, "seed": 0, ...}}

``prompt + action_1 + observation_1 + action_2 + ...`` is the exact text the agent saw (for chat
formatted agents the formatter rebuilds its messages from the same pieces). Episodes a model
generated also carry the token ids it was fed and produced (`oreo_agents.data.inputs`), which
training and scoring use when their tokenizer is the same; episodes without ids (gold
solutions, imported data; schema version 1) are tokenized at train time.

A store is a folder: ``manifest.json`` (what produced it) and ``episodes-NNNNN.jsonl`` shards.
Each episode is written with one ``write`` of a whole line and flushed, so a killed writer
leaves whole lines (plus at worst one torn last line, which the next writer cuts off); the
writer knows which ``(task_id, sample)`` keys are done, so re-running resumes without duplicates.
One writer at a time: it holds an exclusive ``flock`` on the store's ``.lock`` file (with its pid
in it) for its whole life; the kernel drops the lock when the process dies, however it dies.
The ranks of one multi-process job (``torchrun``, ``accelerate launch``) write side by side:
each holds ``.lock`` shared and its own ``.lock-rR`` exclusively, writes its own shards
(``episodes-rR-NNNNN.jsonl``) and reads every shard's keys, so no key is written twice.
Readers keep the first of repeated keys, so a store written before the lock still reads once.
A write that fails (a full disk) leaves no part of its line and no temporary manifest; the
manifest (replaced whole) never counts an episode that is not in a shard, and re-running the
same job once space is freed resumes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oreo_envs.files import FolderLockedError, WriterLock, atomic_write

SCHEMA_VERSION = 2  # 2: optional token ids (prompt_ids, steps' action_ids/observation_ids)
MANIFEST = "manifest.json"
SHARD_PATTERN = "episodes-*.jsonl"


class EpisodeFormatError(ValueError):
    """A stored episode is malformed; the message names the file and line."""


StoreLockedError = FolderLockedError  # another live process is writing to the store


class StoreWriteError(OSError):
    """A shard or the manifest could not be written (a full disk...): the message names the
    file and what the store kept; ``errno`` is the cause's."""


@dataclass
class Episode:
    """One episode of an agent in a text env.

    Attributes:
        env_id: The env it ran in (or the format it was imported from).
        task_id: The env's task id.
        prompt: The first observation (what the agent saw first).
        steps: ``{"action": str, "observation": str}`` in order; the observation is the env's
            reply to that action (as the prompt renders it). Single-shot math has one step
            holding the whole response. Generated episodes add ``action_ids`` (what the model
            produced; it may reach into the rendering after the action, such as an agent's
            closing newline) and ``observation_ids`` (the context after them).
        reward: The episode's (sparse) return.
        success: Whether the task was solved.
        terminated: Ended by the task's rules; ``truncated``: cut by a step limit.
        info: JSON-safe fields of the last ``info`` (extracted answer, gold, task type...).
        meta: Provenance: model, sampling parameters, seed, ``sample`` (which of the K samples
            of its task this is), ``tokenizer`` (the identity of the ids' tokenizer),
            timestamps.
        prompt_ids: The prompt's token ids as the model was fed them (None: not logged).
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
    prompt_ids: list[int] | None = None
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
            for name in ("action_ids", "observation_ids"):
                if name in step and not _is_ids(step[name]):
                    raise EpisodeFormatError(f"steps[{i}].{name} must be a list of token ids")
        if record.get("prompt_ids") is not None and not _is_ids(record["prompt_ids"]):
            raise EpisodeFormatError("prompt_ids must be a list of token ids")
        known = {f: record[f] for f in cls.__dataclass_fields__ if f in record}
        return cls(**known)


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(type(t) is int for t in value)


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

    A torn last line (a writer killed mid-write) is skipped with a warning. A repeated
    ``(task_id, sample)`` key (two writers at once, before stores were locked) is read once: the
    first one is kept, and one warning at the end counts the others.

    Raises:
        EpisodeFormatError: A malformed record, with its file and line number.
    """
    seen: set[tuple[str, int]] = set()
    duplicates = 0
    for file in shard_files(path):
        for ep in _read_file(file):
            if ep.key in seen:
                duplicates += 1
                continue
            seen.add(ep.key)
            yield ep
    if duplicates:
        warnings.warn(
            f"{path}: skipped {duplicates} duplicate episodes (a repeated task_id and sample; "
            "the first of each is kept)",
            stacklevel=2,
        )


def load_episodes(path: str | Path) -> list[Episode]:
    """All episodes of a store folder or file (see `read_episodes`)."""
    return list(read_episodes(path))


def _read_file(file: Path) -> Iterator[Episode]:
    """Every episode line of one file as written, repeated keys included."""
    with file.open("rb") as f:
        lines = f.read().split(b"\n")
    torn = lines.pop()  # b"" when the file ends in a newline
    for lineno, raw in enumerate(lines, start=1):
        if raw.strip():
            yield _parse(raw, file, lineno)
    if torn.strip():
        warnings.warn(f"{file}:{len(lines) + 1}: skipping a torn last line", stacklevel=3)


def _parse(raw: bytes, file: Path, lineno: int) -> Episode:
    try:
        record = json.loads(raw.decode("utf-8", errors="surrogatepass"))
        return Episode.from_dict(record)
    except (UnicodeDecodeError, json.JSONDecodeError, EpisodeFormatError) as e:
        raise EpisodeFormatError(f"{file}:{lineno}: {e}") from None


class EpisodeWriter:
    """Append episodes to a store folder; resumes an earlier run of the same job.

    The writer holds the store's lock from construction to `close`, so a second writer (in this
    process or another) is refused instead of writing every episode a second time.

    Args:
        out_dir: The store folder (created if missing).
        manifest: What produces these episodes (env id and options, model, sampling, seed...).
            An existing store must have been made with the same values for ``resume_keys``,
            otherwise writing into it would mix two runs, and this raises; a store that holds
            no episode yet (a run that failed before its first) is taken over instead.
        resume_keys: Manifest fields that must match to resume.
        shard_size: Episodes per shard file.
        rank: This process's rank in a multi-process job (module docstring).
        world: The job's number of processes; 1 for a single writer. Rank 0 writes the
            manifest.

    Raises:
        StoreLockedError: Another writer holds the store.
        ValueError: The store holds episodes of a run with other ``resume_keys``.
        StoreWriteError: The manifest could not be written (`write` and `close` raise it too,
            for a shard or the manifest).
    """

    def __init__(
        self,
        out_dir: str | Path,
        manifest: dict[str, Any],
        *,
        resume_keys: tuple[str, ...] = ("env_id", "env_options", "model", "sampling", "seed"),
        shard_size: int = 10_000,
        rank: int = 0,
        world: int = 1,
    ):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a job of {world} processes")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size, self.rank, self.world = shard_size, rank, world
        self._prefix = "episodes-" if world == 1 else f"episodes-r{rank}-"
        self._fd: int | None = None
        self._shard: str | None = None
        # Locked before anything is read: a second writer would cut the first one's line in
        # progress as "torn", and both would write the same keys.
        self._lock = WriterLock(self.out_dir, rank=rank, world=world)
        try:
            self.manifest = self._merged_manifest(manifest, resume_keys)
            self.done: set[tuple[str, int]] = set()
            self._shard_counts: dict[str, int] = {}
            for file in sorted(self.out_dir.glob(SHARD_PATTERN)):
                owned = self._owns(file.name)  # another rank's last line may be in progress
                if owned:
                    _cut_torn_line(file)
                n = 0
                for ep in _read_file(file) if owned else _whole_lines(file):
                    self.done.add(ep.key)
                    n += 1
                self._shard_counts[file.name] = n
            self._write_manifest()
        except BaseException:
            self._lock.release()
            raise

    @property
    def count(self) -> int:
        """Episodes in the store, including those of earlier runs (repeated keys once)."""
        return len(self.done)

    def _owns(self, shard: str) -> bool:
        """Whether this writer may append to (and repair) a shard: a single writer owns every
        shard; a rank, only its own."""
        return self.world == 1 or shard.startswith(self._prefix)

    def write(self, episode: Episode) -> None:
        """Append one episode as a single whole line and flush it to the OS.

        Raises:
            StoreWriteError: The shard could not be written; none of the line is in it.
        """
        if not self._lock.held:
            raise ValueError(f"the writer of {self.out_dir} is closed")
        if episode.key in self.done:
            raise ValueError(f"episode {episode.key} is already in {self.out_dir}")
        try:
            self._open_shard()
            _append_whole(self._fd, episode_line(episode))
        except OSError as e:
            raise self._write_error(self.out_dir / self._shard, e) from None
        self.done.add(episode.key)
        self._shard_counts[self._shard] += 1

    def close(self) -> None:
        """fsync the open shard, update the manifest's counts and release the store's lock.
        The manifest is left as it was if the shard cannot be synced."""
        if not self._lock.held:
            return
        try:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    raise self._write_error(self.out_dir / self._shard, e, counted=False) from None
                finally:
                    os.close(self._fd)
                    self._fd = None
            self._write_manifest()
        finally:
            self._lock.release()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        # The first failure is the one to report (a full disk fails the manifest too); the
        # manifest then keeps its last whole version.
        with contextlib.suppress(OSError):
            self.close()

    def _write_error(self, path: Path, e: OSError, *, counted: bool = True) -> StoreWriteError:
        """One line: the file, the cause, what is kept (a failed fsync may have lost episodes
        written before it: ``counted=False`` does not count them) and how to continue."""
        what = f"the {self.count} episodes before it are" if counted else "the episodes on disk are"
        cure = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
        error = StoreWriteError(
            f"could not write {path} ({e.strerror or e}); {what} kept; {cure} and run the same "
            "command again to continue"
        )
        error.errno = e.errno
        return error

    def _merged_manifest(self, manifest: dict[str, Any], resume_keys: tuple[str, ...]) -> dict:
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        fresh = {"schema_version": SCHEMA_VERSION, **_jsonable(manifest), "created": now}
        manifest_path = self.out_dir / MANIFEST
        if not manifest_path.exists():
            return {**fresh, "updated": now}
        old = json.loads(manifest_path.read_text())
        for key in resume_keys:
            if old.get(key) == _jsonable(manifest.get(key)):
                continue
            if not _holds_episodes(self.out_dir):
                # A run that failed before its first episode: nothing of it to keep or mix.
                return {**fresh, "updated": now}
            raise ValueError(
                f"{self.out_dir} already holds episodes of another run: {key!r} was "
                f"{old.get(key)!r}, now {manifest.get(key)!r}. Use another --out folder "
                "or the same settings to resume."
            )
        return {**old, **_jsonable(manifest), "updated": now}

    def _open_shard(self) -> None:
        if self._fd is not None and self._shard_counts[self._shard] < self.shard_size:
            return
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        names = sorted(n for n in self._shard_counts if self._owns(n))
        if names and self._shard_counts[names[-1]] < self.shard_size:
            self._shard = names[-1]
        else:
            self._shard = f"{self._prefix}{len(names):05d}.jsonl"
            while self._shard in self._shard_counts:  # a single writer after a multi-rank job
                self._shard = f"{self._prefix}{len(names) + 1:05d}.jsonl"
                names.append(self._shard)
        path = self.out_dir / self._shard
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._shard_counts.setdefault(self._shard, 0)

    def _write_manifest(self) -> None:
        if self.rank != 0:
            return
        if self.world > 1:  # the other ranks' shards as they are now
            for file in self.out_dir.glob(SHARD_PATTERN):
                if not self._owns(file.name):
                    self.done |= {ep.key for ep in _whole_lines(file)}
                    self._shard_counts.setdefault(file.name, 0)
        self.manifest["episodes"] = self.count
        self.manifest["shards"] = sorted(self._shard_counts)
        try:
            with atomic_write(self.out_dir / MANIFEST, text=True) as f:
                f.write(json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n")
        except OSError as e:
            raise self._write_error(self.out_dir / MANIFEST, e) from None


def _append_whole(fd: int, data: bytes) -> None:
    """Append ``data`` to a file opened with ``O_APPEND``, whole or not at all: a full disk lets
    the kernel write part of it before refusing the rest, and a part left in place would join
    the next line into one malformed line."""
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        with contextlib.suppress(OSError):  # shrinking a file needs no space
            os.ftruncate(fd, start)
        raise


def _whole_lines(file: Path) -> Iterator[Episode]:
    """The episodes of a shard another process may be appending to (its last line may be
    torn: skipped quietly)."""
    data = file.read_bytes()
    for lineno, raw in enumerate(data[: data.rfind(b"\n") + 1].split(b"\n"), start=1):
        if raw.strip():
            yield _parse(raw, file, lineno)


def _holds_episodes(out_dir: Path) -> bool:
    """Whether any shard of the store has a non-blank line (reads up to the first one)."""
    for file in out_dir.glob(SHARD_PATTERN):
        with file.open("rb") as f:
            if any(line.strip() for line in f):
                return True
    return False


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
