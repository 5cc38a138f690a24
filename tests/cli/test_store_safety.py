"""Nothing lost, ever: `oreo convert` never eats its input, one writer per store, a failed start
does not block the retry, a full disk loses nothing and the re-run resumes, garbage input is
named (the real CLI; in a process of its own where the test is about processes)."""

from __future__ import annotations

import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import oreo_in_process
from oreo_agents.data.episodes import EpisodeWriter, load_episodes

# A wide console so rich does not wrap the long tmp paths inside the messages we match.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "1000"}


def oreo(*args: str):
    """The CLI in this process; a test of another process's lock starts one (`oreo_process`)."""
    return oreo_in_process(*args, env={"COLUMNS": "1000"})


def oreo_process(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "oreo_cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)


def collect_args(out: Path, policy: str = "gold", tasks: int = 20, samples: int = 1) -> list[str]:
    return [
        "collect", "--env", "oreo/GSMSymbolic-v0", "--policy", policy,
        "--tasks", str(tasks), "--samples", str(samples), "--out", str(out),
    ]  # fmt: skip


def test_convert_refuses_to_write_into_its_input_store(tmp_path):
    store = tmp_path / "gold"
    assert oreo(*collect_args(store)).returncode == 0
    shard = store / "episodes-00000.jsonl"
    before = shard.read_bytes()
    run = oreo("convert", str(store), str(shard), "--from", "oreo", "--to", "oreo-math")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "inside the input store" in run.stdout
    assert shard.read_bytes() == before and len(load_episodes(store)) == 20


def test_two_collects_at_once_one_wins(tmp_path):
    out = tmp_path / "cc"
    # 1,000 episodes keep the store busy long enough for the two runs to overlap.
    cmd = [sys.executable, "-m", "oreo_cli", *collect_args(out, tasks=200, samples=5)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": ENV}
    procs = [subprocess.Popen(cmd, **pipes) for _ in "ab"]
    results = [(p.communicate(timeout=300)[0], p.returncode)[::-1] for p in procs]
    assert 0 in [rc for rc, _ in results], results
    for rc, text in results:  # the two may not overlap on a busy machine: then both succeed
        assert rc == 0 or (rc == 2 and "is writing to" in text and "another process (pid" in text)
    episodes = load_episodes(out)
    assert len(episodes) == 1000 and len({e.key for e in episodes}) == 1000
    assert sum(len(p.read_bytes().splitlines()) for p in out.glob("episodes-*.jsonl")) == 1000


def test_collect_is_refused_while_another_process_writes(tmp_path):
    out = tmp_path / "cc"
    manifest = {"env_id": "oreo/GSMSymbolic-v0", "env_options": {}, "model": "gold"}
    with EpisodeWriter(out, manifest):  # this test process holds the store
        run = oreo_process(*collect_args(out))
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"another process (pid {os.getpid()}) is writing to {out}" in run.stdout
    assert not list(out.glob("episodes-*.jsonl"))
    assert oreo(*collect_args(out)).returncode == 0 and len(load_episodes(out)) == 20


def test_failed_start_does_not_block_the_corrected_command(tmp_path):
    out = tmp_path / "eps"
    # 'random' needs an agent env: refused before any work (it used to fail at the first
    # action, after the store was made); either way the corrected command runs.
    failed = oreo(*collect_args(out, policy="random", tasks=5))
    assert failed.returncode == 2 and "needs an env with admissible actions" in failed.stdout
    manifest = out / "manifest.json"
    assert not manifest.exists() or json.loads(manifest.read_text())["model"] == "random"
    run = oreo(*collect_args(out, tasks=5))
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((out / "manifest.json").read_text())["model"] == "gold"
    counts = collections.Counter(e.key for e in load_episodes(out))
    assert len(counts) == 5 and set(counts.values()) == {1}


def test_binary_garbage_is_named_by_convert(tmp_path):
    (tmp_path / "runs[2]").mkdir()  # brackets: the message must not be read as rich markup
    garbage = tmp_path / "runs[2]" / "garbage.jsonl"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    for fmt, dst in [("oreo-math", tmp_path / "store"), ("oreo", tmp_path / "out.jsonl")]:
        run = oreo("convert", str(garbage), str(dst), "--from", fmt)
        assert run.returncode == 2, run.stdout + run.stderr
        assert f"{garbage}:" in run.stdout and "Traceback" not in run.stdout + run.stderr
        assert not dst.exists()


# The CLI with a disk that fills up after BUDGET bytes written under ROOT: the write that crosses
# it is cut short (as the kernel does), later writes and fsyncs there raise ENOSPC.
FULL_DISK = """
import errno, os, sys
budget, root = int(sys.argv.pop(1)), sys.argv.pop(1)
write, fsync = os.write, os.fsync
def under_root(fd):
    return os.readlink(f"/proc/self/fd/{fd}").startswith(root)
def full_write(fd, data):
    global budget
    if not under_root(fd):
        return write(fd, data)
    if budget <= 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    n = write(fd, bytes(data[:budget]))
    budget -= n
    return n
def full_fsync(fd):
    if budget <= 0 and under_root(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return fsync(fd)
os.write, os.fsync = full_write, full_fsync
from oreo_cli.main import app
app(prog_name="oreo")
"""


def check_full_disk_run(run, out: Path) -> int:
    """The run that met a full disk: one line naming the shard and what was kept, no temporary
    file, and a manifest that counts no episode that is not on disk. Returns the kept count."""
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    line = run.stdout.splitlines()[-1]
    found = re.fullmatch(
        rf"error: could not write {re.escape(str(out))}/episodes-00000\.jsonl \(No space left on "
        r"device\); the (\d+) episodes before it are kept; free some space and run the same "
        r"command again to continue",
        line,
    )
    assert found, line
    kept = int(found.group(1))
    assert [p.name for p in out.iterdir() if "tmp" in p.name] == []
    shard = (out / "episodes-00000.jsonl").read_bytes()
    assert shard.count(b"\n") == kept and shard.endswith(b"\n")
    assert json.loads((out / "manifest.json").read_text())["episodes"] <= kept
    return kept


def check_resumed(out: Path, run, kept: int, total: int) -> None:
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"resuming: {kept} episodes already in" in run.stdout
    counts = collections.Counter(e.key for e in load_episodes(out))
    assert len(counts) == total and set(counts.values()) == {1}
    assert json.loads((out / "manifest.json").read_text())["episodes"] == total


def test_a_full_disk_during_collect_is_one_line_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "eps"
    cmd = [sys.executable, "-c", FULL_DISK, "12000", str(tmp_path), *collect_args(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    kept = check_full_disk_run(run, out)
    assert 0 < kept < 20
    check_resumed(out, oreo(*collect_args(out)), kept, 20)


def test_a_real_full_disk_during_collect(tmp_path):
    """The same on a 24 kB tmpfs, mounted in a private mount namespace (skipped where that is
    not permitted); the store is copied out before and after space is freed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = ["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", str(disk)]
    if not shutil.which("unshare") or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs in a user and mount namespace here")
    collect = " ".join([sys.executable, "-m", "oreo_cli", *collect_args(disk / "eps")])
    script = f"""
        mount -t tmpfs -o size=24k tmpfs {disk} || exit 9
        {collect} > {tmp_path}/first.out 2>&1; echo $? > {tmp_path}/first.rc
        cp -r {disk}/eps {tmp_path}/first
        mount -o remount,size=1m {disk}
        {collect} > {tmp_path}/second.out 2>&1; echo $? > {tmp_path}/second.rc
        cp -r {disk}/eps {tmp_path}/second
    """
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=ENV, timeout=300, check=True)

    def result(name: str) -> subprocess.CompletedProcess:
        rc = int((tmp_path / f"{name}.rc").read_text())
        return subprocess.CompletedProcess([], rc, (tmp_path / f"{name}.out").read_text(), "")

    first = result("first")
    first.stdout = first.stdout.replace(str(disk / "eps"), str(tmp_path / "first"))
    kept = check_full_disk_run(first, tmp_path / "first")
    assert 0 < kept < 20
    check_resumed(tmp_path / "second", result("second"), kept, 20)
