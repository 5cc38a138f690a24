"""`benchmarks/alfworld_agents.py --fast`: the issue-19 pipeline (expert episodes, a tiny agent,
SFT, samples, OREO / rejection sampling / DPO, greedy and value-guided evaluation) runs end to
end on the bundled games and writes its reports and the seed's record. The numbers of so small
a run mean nothing, so only their shape is checked; `benchmarks/alfworld_records.py` tables the
record and a copy of it (another seed, one outcome flipped), checked by hand."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oreo_agents.evaluation.metrics import wilson_interval

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
    check_record(out / "seed-0.json", rows, tmp_path)


RUNS = ["sft", "oreo", "rft", "dpo", "oreo+value K=2"]


def check_record(path, rows, tmp_path):
    """The seed's record (--fast: OUT/seed-N.json) holds every field item 2 of issue 36 asks,
    agrees with the summary, and tables with a second seed to numbers computed by hand."""
    from oreo_agents.evaluation.embodied import games_sha256

    record = json.loads(path.read_text())
    assert path.stat().st_size < 50_000  # kilobytes, no weights
    assert record["seed"] == 0 and record["env"] == "oreo/ALFWorld-v0"
    assert record["settings"]["args"]["fast"] is True and record["settings"]["args"]["ks"] == [2]
    assert record["settings"]["plan"]["limit"] == ["-o", "max_episode_steps=4"]
    assert "beta=0.03" in record["settings"]["methods"]["oreo"]  # the training flags
    stages = record["timings"]["stages"]
    # lanes (the default 2): the SFT policy's evaluation ran beside its samples
    assert set(stages) == {"expert", "sft", "samples, SFT evaluation", "oreo", "rft", "dpo",
                           "eval bundled"}  # fmt: skip
    assert all(v > 0 for v in stages.values())
    assert record["timings"]["total_s"] == pytest.approx(sum(stages.values()), abs=0.2)
    assert record["provenance"]["software"]["torch"] is not None
    assert len(record["provenance"]["git"]["commit"] or "0" * 40) == 40
    split = record["splits"]["bundled"]
    games = split["games"]
    assert len(games) == 6 and split["games_sha256"] == games_sha256(games)
    assert len(split["game_files_sha256"]) == 64 and split["step_cap"] == 4
    assert split["versions"]["alfworld"] is not None
    assert sorted(split["task_types"]) == sorted(t.split("-")[0] for t in games)
    assert list(split["runs"]) == RUNS
    for name, run in split["runs"].items():
        assert run["won"] == [int(rows[name]["wins"][g]) for g in games]  # aligned with games
        assert len(run["steps"]) == 6 and all(1 <= s <= 4 for s in run["steps"])
        assert run["success_rate"] == sum(run["won"]) / 6 and run["wall_s"] > 0
        assert 0 <= run["nothing_happens_rate"] <= 1
        assert run["decoding"]["k"] == (2 if "K=2" in name else 1)
        assert run["decoding"]["rank_actions"] is True
    # a second seed: the same record, relabelled, with OREO's first game flipped
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "seed-0.json").write_text(path.read_text())
    other = json.loads(path.read_text())
    other["seed"] = 1
    flipped = other["splits"]["bundled"]["runs"]["oreo"]["won"]
    flipped[0] = 1 - flipped[0]
    (folder / "seed-1.json").write_text(json.dumps(other))
    table = records_table(folder, tmp_path / "tables.md")
    sft = split["runs"]["sft"]["won"]
    oreo = [split["runs"]["oreo"]["won"], flipped]  # seeds 0 and 1
    rates = [sum(w) / 6 for w in oreo]
    mean = (rates[0] + rates[1]) / 2
    std = abs(rates[0] - rates[1]) / math.sqrt(2)  # the sample std of two values: 1/6 / sqrt 2
    assert f"| OREO greedy | 2 | {100 * mean:.1f} ± {100 * std:.1f} |" in table
    for seed, won in enumerate(oreo):
        better = sum(a > b for a, b in zip(won, sft, strict=True))
        worse = sum(a < b for a, b in zip(won, sft, strict=True))
        lo, hi = wilson_interval(sum(won), 6)
        rate = f"{100 * sum(won) / 6:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"
        assert f"| OREO greedy | {seed} | {rate} | {better} / {worse} |" in table
    sft_rate = 100 * sum(sft) / 6
    assert f"| SFT | 2 | {sft_rate:.1f} ± 0.0 |" in table  # the same outcomes in both seeds
    assert "6 games, step cap 4, seeds 0, 1" in table


def records_table(folder, out):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "alfworld_records.py"), str(folder),
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return out.read_text()


GAMES = ["a-1/t0", "b-2/t1", "c-3/t2", "d-4/t3"]


def fake_record(seed, runs, games=GAMES, step_cap=40, total_s=3723.0, stages=None):
    """A record as alfworld_agents.py writes one, reduced to what the tables read."""
    from oreo_agents.evaluation.embodied import games_sha256

    decoding = {"strategy": "greedy", "k": 1, "rank_actions": True}
    return {
        "record_version": 1, "env": "oreo/ALFWorld-v0", "seed": seed,
        "timings": {"stages": stages or {}, "total_s": total_s},
        "provenance": {"git": {"commit": "0123456789abcdef", "dirty": False}},
        "splits": {"valid_unseen": {
            "split": "valid_unseen", "games": list(games), "games_sha256": games_sha256(games),
            "game_files_sha256": "f" * 64, "step_cap": step_cap,
            "runs": {name: {"won": won, "steps": [5 if w else step_cap for w in won],
                            "decoding": decoding, "nothing_happens_rate": 0.1,
                            "loop_share_of_lost": 0.5} for name, won in runs.items()},
        }},
    }  # fmt: skip


def write_records(folder, *records):
    folder.mkdir(exist_ok=True)
    for r in records:
        (folder / f"seed-{r['seed']}.json").write_text(json.dumps(r))
    return folder


def test_records_table_by_hand(tmp_path):
    folder = write_records(
        tmp_path / "records",
        fake_record(
            0,
            {"sft": [1, 0, 0, 0], "oreo": [1, 1, 0, 0], "oreo+value K=3": [0, 1, 1, 1]},
            stages={"sft": 1200.4, "eval valid_unseen": 2522.6},
        ),
        fake_record(
            1, {"sft": [0, 1, 0, 0], "oreo": [1, 1, 1, 0]}, stages={"sft": 900.0, "dpo": 2823.0}
        ),
    )
    table = records_table(folder, tmp_path / "t.md")
    assert "**valid_unseen**: 4 games, step cap 40, seeds 0, 1" in table
    # SFT 25% and 25%; OREO 50% and 75%: mean 62.5, sample std 0.25 / sqrt(2) = 17.7 points
    assert "| SFT | 2 | 25.0 ± 0.0 | 10.0 | 50.0 |" in table
    assert "| OREO greedy | 2 | 62.5 ± 17.7 | 10.0 | 50.0 |" in table
    # Wilson 95% of 2/4: 0.5 -+ 1.96 sqrt(1/16 + 3.8416/64) / (1 + 3.8416/4) = 15.0%-85.0%
    assert "| OREO greedy | 0 | 50.0 (15.0-85.0) | 1 / 0 |" in table  # won game 2, lost none
    assert "| OREO greedy | 1 | 75.0 (30.1-95.4) | 2 / 0 |" in table  # won games 1 and 3
    assert table.index("| SFT |") < table.index("| OREO greedy |") < table.index("| OREO + value")
    # value-guided against SFT: won games 2-4, lost game 1; against OREO greedy: won 3-4, lost 1
    assert "| OREO + value K=3 | 0 | 75.0 (30.1-95.4) | 3 / 1 | 2 / 1 |" in table
    assert "| OREO greedy | 0 | 50.0 (15.0-85.0) | 1 / 0 |  |" in table  # not guided: no column
    # seed 1 has no such run: one pooled row over 1 seed, one per-seed row
    assert "| OREO + value K=3 | 1 | 75.0 | 10.0 | 50.0 |" in table
    assert sum(line.startswith("| OREO + value K=3 |") for line in table.splitlines()) == 2
    assert "| 0 | 1:02:03 | 0123456789 |" in table  # 3723 s
    # stages in first-seen order, a stage a seed lacks is "-", totals from total_s
    assert "| stage (s) | seed 0 | seed 1 |" in table
    assert "| sft | 1,200 | 900 |" in table
    assert "| eval valid_unseen | 2,523 | - |" in table
    assert "| dpo | - | 2,823 |" in table
    assert "| **all** | **3,723** | **3,723** |" in table
    assert max(len(line) for line in table.splitlines()) <= 80


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"games": GAMES[::-1]}, "differ in their valid_unseen games"),
        ({"step_cap": 50}, "differ in their valid_unseen step cap"),
    ],
)
def test_records_of_other_games_or_step_caps_are_refused(tmp_path, other, message):
    folder = write_records(
        tmp_path / "records",
        fake_record(0, {"sft": [1, 0, 0, 0]}),
        fake_record(1, {"sft": [1, 0, 0, 0]}, **other),
    )
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "alfworld_records.py"), str(folder)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and message in run.stderr, run.stdout + run.stderr
    assert "Traceback" not in run.stderr


def test_rollout_reports_pool_over_seeds(tmp_path):
    """--reports: oreo rollout reports of seeds 0 and 1 (their fields that matter) pooled."""
    paths = []
    for seed, rate in ((0, 0.5), (1, 0.25)):
        block = fake_record(seed, {"sft": [1, 0, 0, 0]})["splits"]["valid_unseen"]
        embodied = {k: block[k] for k in ("split", "games", "games_sha256", "game_files_sha256",
                                          "step_cap")}  # fmt: skip
        embodied.update(decoding={"strategy": "greedy", "k": 1}, nothing_happens_rate=0.2,
                        loop_share_of_lost=None, mean_steps_won=5.0,
                        mean_steps_lost=40.0)  # fmt: skip
        report = {"env": "oreo/ALFWorld-v0", "seed": seed, "success_rate": rate,
                  "embodied": embodied}  # fmt: skip
        paths.append(tmp_path / f"r{seed}.json")
        paths[-1].write_text(json.dumps(report))
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "alfworld_records.py"), "--reports",
         *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "| 1 | 25.0 | 20.0 | - | 5.0 | 40.0 |" in run.stdout
    # mean 37.5, sample std 0.25 / sqrt(2) = 17.7 points
    assert "| mean ± std | 37.5 ± 17.7 | 20.0 ± 0.0 | - | 5.0 | 40.0 |" in run.stdout


def test_sft_choice_variants_and_the_wrong_object_count():
    """`benchmarks/alfworld_sft_choice.py`'s variant names and its count of lost games whose
    first ``take`` was another object than the task's (read off the task id)."""
    import argparse

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from alfworld_sft_choice import variant, wrong_first

    assert variant("0x6r") == (0, 6, True) and variant("600x10") == (600, 10, False)
    with pytest.raises(argparse.ArgumentTypeError, match="GAMESxEPOCHS"):
        variant("6 epochs")
    task = "look_at_obj_in_light-AlarmClock-None-DeskLamp-316/trial_1"
    text = "go to desk 1\nOn it, a book 1.\n> take {} 1 from desk 1\nYou pick it up."
    record = {"task_id": task, "samples": [{"text": text.format("book")}]}
    assert wrong_first(record)
    record["samples"][0]["text"] = text.format("alarmclock")
    assert not wrong_first(record)
    record["samples"][0]["text"] = "take alarmclock 2 from desk 1\nYou pick it up."
    assert not wrong_first(record)  # the first action of a text has no "> " before it
    record["samples"][0]["text"] = "go to desk 1\nNothing."
    assert not wrong_first(record)  # took nothing


def _lanes_module(monkeypatch):
    """`benchmarks/alfworld_commands.py` with its commands run as ``python -c JOB``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import alfworld_commands

    monkeypatch.setattr(alfworld_commands, "OREO", [sys.executable, "-c"])
    return alfworld_commands


def test_lanes_run_commands_side_by_side_with_the_cores_shared(monkeypatch, tmp_path):
    """Three commands in 2 lanes: the first two overlap, the third starts when one of them has
    ended, and each sees the cores shared out in OMP_NUM_THREADS."""
    bench = _lanes_module(monkeypatch)
    job = (
        "import os, time; t = time.time(); time.sleep({}); threads = os.environ['OMP_NUM_THREADS']"
        "; open({!r}, 'w').write(f'{{t}} {{time.time()}} {{threads}}')"
    )
    logs = [tmp_path / f"{i}.txt" for i in range(3)]
    bench.sh_lanes([[job.format(s, str(log))] for s, log in zip((2, 1, 1), logs, strict=True)], 2)
    times = [list(map(float, log.read_text().split())) for log in logs]
    (a0, a1, _), (b0, b1, _), (c0, _, _) = times
    assert b0 < a1 and a0 < b1  # the first two ran at the same time
    assert c0 >= min(a1, b1) - 0.05  # the third waited for a lane
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert all(t[2] == threads for t in times)


def test_a_failing_lane_stops_the_others(monkeypatch, tmp_path):
    import time

    bench = _lanes_module(monkeypatch)
    never = tmp_path / "never"
    started = time.perf_counter()
    with pytest.raises(subprocess.CalledProcessError) as failed:
        bench.sh_lanes([["import time; time.sleep(60)"], ["import sys; sys.exit(3)"],
                        [f"open({str(never)!r}, 'w')"]], lanes=2)  # fmt: skip
    assert failed.value.returncode == 3
    assert time.perf_counter() - started < 30  # the sleeper was stopped, not waited for
    assert not never.exists()  # nothing after the failure started
