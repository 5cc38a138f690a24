"""`CheckpointDir.repair` on run folders laid out by hand as a kill at each point of a save
leaves them (the kill tests in tests/cli/test_train_interrupts.py land there only by chance)."""

import json
import os

import pytest

from oreo_agents.training.checkpoint import CheckpointDir


def checkpoint(out, step, complete=True):
    folder = out / f"ckpt-{step:08d}"
    (folder / "policy").mkdir(parents=True)
    if complete:
        (folder / "progress.json").write_text(json.dumps({"step": step}))
    return folder.name


def current(out, name):
    os.symlink(name, out / "checkpoint")


def kept(out):
    return sorted(p.name for p in out.glob("ckpt-*"))


@pytest.mark.parametrize(
    "complete, partial",
    [
        ((6, 7, 8), ()),  # a kill between the switch and the pruning
        ((5, 7, 8), (6,)),  # inside the pruning: ckpt-6 half deleted, ckpt-5 not yet
    ],
)
def test_a_kill_after_the_switch_leaves_the_current_and_its_fallback_after_repair(
    tmp_path, complete, partial
):
    """A half-deleted folder may keep its progress record: one older than the fallback
    (ckpt-7) goes, and the fallback stays."""
    for step in complete:
        checkpoint(tmp_path, step)
    for step in partial:
        checkpoint(tmp_path, step, complete=False)
    current(tmp_path, "ckpt-00000008")
    CheckpointDir(tmp_path).repair()
    assert kept(tmp_path) == ["ckpt-00000007", "ckpt-00000008"]
    assert os.readlink(tmp_path / "policy") == "checkpoint/policy"  # the export, relinked


def test_a_kill_before_the_switch_keeps_the_current_and_the_one_before(tmp_path):
    """The new folder is removed when incomplete; the current checkpoint and its fallback stay."""
    for step in (6, 7):
        checkpoint(tmp_path, step)
    checkpoint(tmp_path, 8, complete=False)
    current(tmp_path, "ckpt-00000007")
    CheckpointDir(tmp_path).repair()
    assert kept(tmp_path) == ["ckpt-00000006", "ckpt-00000007"]


def test_repair_before_the_first_save_removes_only_partial_folders(tmp_path):
    checkpoint(tmp_path, 1, complete=False)
    CheckpointDir(tmp_path).repair()
    assert kept(tmp_path) == []
