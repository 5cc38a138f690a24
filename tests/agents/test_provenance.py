"""The software record in reports and checkpoints: the lock file's hash and any package whose
installed version differs from its pin."""

import hashlib
from importlib import metadata

from oreo_agents.runtime.provenance import LOCK_FILE, lock_status, software


def test_lock_status_names_each_pin_the_install_does_not_match(tmp_path):
    numpy = metadata.version("numpy")
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# a comment\n"
        f"numpy=={numpy} \\\n    --hash=sha256:00\n"
        "torch==0.0.1 \\\n    --hash=sha256:11\n"
        "no-such-package-oreo==1.0 ; python_version >= '3'\n"
    )
    status = lock_status(lock)
    assert status["sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert status["differs"] == [
        f"torch 0.0.1 != {metadata.version('torch')}",
        "no-such-package-oreo 1.0 != not installed",
    ]


def test_no_lock_file_is_recorded_as_none(tmp_path):
    assert lock_status(tmp_path / "requirements.lock") is None


def test_the_repository_lock_is_recorded_in_software():
    lock = software()["lock"]
    assert lock is not None and LOCK_FILE.is_file()
    assert lock["sha256"] == hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()
