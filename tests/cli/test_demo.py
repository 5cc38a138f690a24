"""`oreo demo --fast` end to end: the report has a number for every method."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EXPECTED = {"sft", "oreo-r0", "rft-r0", "dpo-r0", "kto-r0", "oreo+beam"}


@pytest.mark.slow
def test_demo_fast_reports_every_method(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "oreo_cli", "demo", "--fast", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == EXPECTED
    for name, result in report["results"].items():
        rate, (low, high) = result["success_rate"], result["ci95"]
        assert 0.0 <= low <= rate <= high <= 1.0, name
        assert result["tasks"] == report["config"]["test_tasks"]
    assert (out / "demo.png").stat().st_size > 1000
    assert "OREO + value-guided beam" in run.stdout and "rejection sampling" in run.stdout
