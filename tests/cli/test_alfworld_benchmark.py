"""`benchmarks/alfworld_agents.py --fast`: the issue-19 pipeline (expert episodes, a tiny agent,
SFT, samples, OREO / rejection sampling / DPO, greedy and value-guided evaluation) runs end to
end on the bundled games and writes its reports. The numbers of so small a run mean nothing, so
only their shape is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fast_pipeline_runs_and_reports(tmp_path):
    pytest.importorskip("alfworld")
    out = tmp_path / "alf"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "alfworld_agents.py"), "--fast", "--ks", "2",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["bundled"]
    assert list(rows) == ["sft", "oreo", "rft", "dpo", "oreo+value K=2"]
    for row in rows.values():
        assert row["tasks"] == 6 and 0.0 <= row["success_rate"] <= 1.0
        assert row["ci95"][0] <= row["success_rate"] <= row["ci95"][1]
        assert len(row["wins"]) == 6
        # the rate the table prints is the one its per-game wins give (the paired columns' source)
        assert row["success_rate"] == sum(row["wins"].values()) / 6
    table = (out / "summary.md").read_text()
    for label in (
        "| SFT |",
        "| OREO |",
        "| rejection sampling |",
        "| DPO |",
        "| OREO + value K=2 |",
    ):
        assert label in table
    assert (out / "summary.png").stat().st_size > 0
    for method in ("sft", "oreo", "rft", "dpo"):
        assert (out / method / "policy" / "config.json").exists()
    assert (out / "oreo" / "value" / "config.json").exists()
