"""The episode store: schema validation, append-only writes, resume, torn lines, readers."""

from __future__ import annotations

import errno
import json
import os
import random
import re

import pytest

from oreo_agents.data.episodes import (
    SCHEMA_VERSION,
    Episode,
    EpisodeFormatError,
    EpisodeWriter,
    episode_line,
    load_episodes,
    read_episodes,
)

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def make_episode(task_id="t0", sample=0, reward=1.0, steps=None):
    return Episode(
        env_id="oreo/GSM8K-v0",
        task_id=task_id,
        prompt="User: 1+1?\nAssistant:",
        steps=steps or [{"action": " 1+1=2\n#### 2", "observation": ""}],
        reward=reward,
        success=reward > 0,
        info={"answer": "2", "gold": "2"},
        meta={"model": "tiny", "sample": sample, "seed": 0},
    )


MANIFEST = {
    "env_id": "oreo/GSM8K-v0",
    "env_options": {},
    "model": "tiny",
    "sampling": {},
    "seed": 0,
}


def test_round_trip_and_properties(tmp_path):
    eps = [make_episode("t0", 0), make_episode("t0", 1, 0.0), make_episode("t1", 0)]
    with EpisodeWriter(tmp_path, MANIFEST) as w:
        for ep in eps:
            w.write(ep)
    assert load_episodes(tmp_path) == eps
    assert eps[1].key == ("t0", 1)
    assert eps[0].response == " 1+1=2\n#### 2"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["episodes"] == 3 and manifest["schema_version"] == SCHEMA_VERSION


def test_resume_knows_done_keys_and_refuses_duplicates(tmp_path):
    with EpisodeWriter(tmp_path, MANIFEST) as w:
        w.write(make_episode("t0", 0))
    w = EpisodeWriter(tmp_path, MANIFEST)
    assert w.done == {("t0", 0)} and w.count == 1
    with pytest.raises(ValueError, match="already in"):
        w.write(make_episode("t0", 0))
    w.write(make_episode("t0", 1))
    w.close()
    assert [e.key for e in load_episodes(tmp_path)] == [("t0", 0), ("t0", 1)]


def test_resume_with_other_settings_is_refused(tmp_path):
    with EpisodeWriter(tmp_path, MANIFEST) as w:
        w.write(make_episode("t0", 0))
    with pytest.raises(ValueError, match="another run: 'model'"):
        EpisodeWriter(tmp_path, {**MANIFEST, "model": "other"})
    EpisodeWriter(tmp_path, MANIFEST).close()  # the refused writer released its lock


@pytest.mark.parametrize("shards", [0, 2])
def test_store_of_another_run_without_episodes_is_taken_over(tmp_path, shards):
    EpisodeWriter(tmp_path, MANIFEST).close()  # a run that failed before its first episode
    for i in range(shards):
        (tmp_path / f"episodes-{i:05d}.jsonl").write_bytes(b"" if i == 0 else b"\n")
    with EpisodeWriter(tmp_path, {**MANIFEST, "model": "other"}) as w:
        w.write(make_episode("t0", 0))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == "other" and manifest["episodes"] == 1
    assert [e.key for e in load_episodes(tmp_path)] == [("t0", 0)]


def test_second_writer_on_a_store_is_refused_until_the_first_closes(tmp_path):
    first = EpisodeWriter(tmp_path, MANIFEST)
    message = rf"another process \(pid {os.getpid()}\) is writing to {re.escape(str(tmp_path))}"
    with pytest.raises(ValueError, match=message):
        EpisodeWriter(tmp_path, MANIFEST)
    first.write(make_episode("t0", 0))
    first.close()
    with pytest.raises(ValueError, match="closed"):
        first.write(make_episode("t1", 0))
    with EpisodeWriter(tmp_path, MANIFEST) as second:
        second.write(make_episode("t1", 0))
    assert [e.key for e in load_episodes(tmp_path)] == [("t0", 0), ("t1", 0)]


def test_duplicate_episodes_are_read_once_with_a_warning(tmp_path):
    with EpisodeWriter(tmp_path, MANIFEST, shard_size=2) as w:
        for ep in [make_episode("t0", 0), make_episode("t0", 1), make_episode("t1", 0)]:
            w.write(ep)
    first, second = sorted(tmp_path.glob("episodes-*.jsonl"))
    lines = first.read_bytes().splitlines(keepends=True)
    first.write_bytes(lines[0] + lines[0] + lines[1])  # what two writers at once left behind
    second.write_bytes(second.read_bytes() + lines[1])
    with pytest.warns(UserWarning, match=rf"{re.escape(str(tmp_path))}: skipped 2 duplicate"):
        episodes = load_episodes(tmp_path)
    assert [e.key for e in episodes] == [("t0", 0), ("t0", 1), ("t1", 0)]


def test_torn_last_line_is_cut_on_resume_and_skipped_by_readers(tmp_path):
    with EpisodeWriter(tmp_path, MANIFEST) as w:
        w.write(make_episode("t0", 0))
    shard = tmp_path / "episodes-00000.jsonl"
    with shard.open("ab") as f:
        f.write(b'{"env_id": "oreo/GSM8K-v0", "task_id": "t1", "pro')  # a killed write
    with pytest.warns(UserWarning, match="torn last line"):
        assert len(load_episodes(tmp_path)) == 1
    with pytest.warns(UserWarning, match="removed a torn last line"):
        w = EpisodeWriter(tmp_path, MANIFEST)
    w.write(make_episode("t1", 0))
    w.close()
    assert [e.key for e in load_episodes(tmp_path)] == [("t0", 0), ("t1", 0)]


class FullDisk:
    """``os.write`` to files under ``root`` as on a disk that fills up after ``budget`` bytes: the
    write that crosses it is cut short (as the kernel does), every later one raises ENOSPC."""

    def __init__(self, root, budget):
        self.root, self.budget, self.write = str(root), budget, os.write

    def __call__(self, fd, data):
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(self.root):
            return self.write(fd, data)
        if self.budget <= 0:
            raise ENOSPC
        n = self.write(fd, bytes(data[: self.budget]))
        self.budget -= n
        return n


def temporary_files(folder):
    return [p.name for p in folder.iterdir() if "tmp" in p.name]


def test_a_full_disk_mid_episode_keeps_whole_episodes_and_resumes(tmp_path, monkeypatch):
    line = len(episode_line(make_episode("t0")))
    monkeypatch.setattr(os, "write", FullDisk(tmp_path, 3 * line + line // 2))
    shard = tmp_path / "episodes-00000.jsonl"
    kept = re.escape(
        f"could not write {shard} (No space left on device); the 3 episodes before it are kept"
    )
    with pytest.raises(OSError, match=kept) as failure:
        with EpisodeWriter(tmp_path, MANIFEST) as w:
            for i in range(10):
                w.write(make_episode(f"t{i}"))
    assert failure.value.errno == errno.ENOSPC
    assert shard.read_bytes().count(b"\n") == 3 and shard.read_bytes().endswith(b"\n")
    assert json.loads((tmp_path / "manifest.json").read_text())["episodes"] == 3
    assert temporary_files(tmp_path) == []
    monkeypatch.undo()  # space freed: the same job resumes
    with EpisodeWriter(tmp_path, MANIFEST) as w:
        assert w.count == 3
        for i in range(3, 10):
            w.write(make_episode(f"t{i}"))
    assert [e.key for e in load_episodes(tmp_path)] == [(f"t{i}", 0) for i in range(10)]
    assert json.loads((tmp_path / "manifest.json").read_text())["episodes"] == 10


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_a_manifest_that_cannot_be_written_is_named_and_leaves_no_temporary_file(
    tmp_path, monkeypatch, fail
):
    """The manifest keeps its last whole version (which never counts more than is on disk).
    (A real full disk, where the write itself fails: tests/cli/test_store_safety.py.)"""
    w = EpisodeWriter(tmp_path, MANIFEST)
    w.write(make_episode("t0"))
    w.write(make_episode("t1"))
    real = getattr(os, fail)

    def full(*args):  # the shard's fsync passes, the manifest's fails
        name = os.path.basename(os.readlink(f"/proc/self/fd/{args[0]}")) if fail == "fsync" else ""
        if fail == "fsync" and not name.startswith(".manifest.json."):
            return real(*args)
        raise ENOSPC

    monkeypatch.setattr(os, fail, full)
    manifest = tmp_path / "manifest.json"
    with pytest.raises(OSError, match=re.escape(f"could not write {manifest} (No space left")):
        w.close()
    monkeypatch.undo()
    assert temporary_files(tmp_path) == []
    assert json.loads(manifest.read_text())["episodes"] == 0  # as the writer started
    assert len(load_episodes(tmp_path)) == 2
    with EpisodeWriter(tmp_path, MANIFEST) as w:  # the lock was released
        assert w.count == 2


def test_shards_rotate(tmp_path):
    with EpisodeWriter(tmp_path, MANIFEST, shard_size=2) as w:
        for i in range(5):
            w.write(make_episode(f"t{i}"))
    assert sorted(p.name for p in tmp_path.glob("episodes-*.jsonl")) == [
        "episodes-00000.jsonl",
        "episodes-00001.jsonl",
        "episodes-00002.jsonl",
    ]
    assert len(load_episodes(tmp_path)) == 5


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON|Expecting"),
        ('{"schema_version": 1}', "missing field 'env_id'"),
        ('{"schema_version": 9}', "unsupported schema_version 9"),
        ("[1]", "an episode is a JSON object"),
    ],
)
def test_malformed_record_names_file_and_line(tmp_path, line, message):
    good = json.dumps(make_episode().to_dict())
    path = tmp_path / "eps.jsonl"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(EpisodeFormatError, match=rf"eps.jsonl:3: ({message})"):
        list(read_episodes(path))


def test_binary_garbage_names_the_file(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n" + random.Random(0).randbytes(4096))
    with pytest.raises(EpisodeFormatError, match=r"garbage.jsonl:2: "):
        load_episodes(path)


def test_wrong_types_are_rejected():
    record = make_episode().to_dict()
    with pytest.raises(EpisodeFormatError, match="'success' has type int"):
        Episode.from_dict({**record, "success": 1})
    with pytest.raises(EpisodeFormatError, match="'reward' has type bool"):
        Episode.from_dict({**record, "reward": True})
    with pytest.raises(EpisodeFormatError, match=r"steps\[0\]"):
        Episode.from_dict({**record, "steps": [{"action": 1}]})


def test_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    with EpisodeWriter(tmp_path, MANIFEST) as w:
        w.write(make_episode("t0", 0))
        w.write(make_episode("t1", 0, 0.0))
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "episodes-*.jsonl"), split="train")
    assert ds.num_rows == 2 and ds[1]["task_id"] == "t1" and ds[0]["steps"][0]["observation"] == ""
