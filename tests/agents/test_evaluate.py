"""Evaluation metrics with hand-computed values, the config's validation, and a scripted run."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from oreo_agents.evaluation.evaluate import RolloutConfig, load_report, run_rollout, save_report
from oreo_agents.evaluation.metrics import (
    curves,
    k_grid,
    line_metrics,
    majority_index,
    pass_at_k,
    subsets,
    value_auroc,
    wilson_interval,
)


def test_wilson_interval_matches_hand_values():
    # 0/3: upper = z^2 / (n + z^2) = 3.8416 / 6.8416
    assert wilson_interval(0, 3) == pytest.approx((0.0, 0.56151), abs=1e-5)
    # 2/4: centred on 0.5, half-width 1.96 * sqrt(1/16 + 3.8416/64) / 1.9604
    assert wilson_interval(2, 4) == pytest.approx((0.15003, 0.84997), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(3, 1, 1) == pytest.approx(1 / 3)
    assert pass_at_k(4, 0, 3) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # fewer than k wrong samples: some draw holds a right one
    with pytest.raises(ValueError, match="at least 3 samples"):
        pass_at_k(2, 1, 3)


def test_majority_vote_clusters_equivalent_answers():
    assert majority_index(["1/2", "3", "0.5", None, "3"]) == 0  # tie 2-2: the first cluster
    assert majority_index(["3", "1/2", "0.5", "\\frac{1}{2}"]) == 1
    assert majority_index([None, ""]) is None
    assert k_grid(1) == [1] and k_grid(4) == [1, 2, 4] and k_grid(6) == [1, 2, 4, 6]


def _rec(task, samples, chosen=None, **subset):
    return {
        "task_id": task,
        "samples": [{"success": s, "answer": a, "value": v} for s, a, v in samples],
        "chosen": chosen,
        "subset": subset,
        "success": float(samples[chosen][0] if chosen is not None else samples[0][0]),
    }


def test_curves_and_subsets_by_hand():
    records = [
        # answers: 2 (right) once, 5 twice -> maj wrong; the value picks the right one
        _rec("t1", [(True, "2", 0.9), (False, "5", 0.1), (False, "5", 0.2)], 0, level="L1"),
        _rec("t2", [(False, None, 0.5), (True, "7", 0.4), (True, "7.0", 0.3)], 0, level="L2"),
    ]
    got = curves(records, answers=True)
    assert got["pass_at_k"] == pytest.approx({"1": (1 / 3 + 2 / 3) / 2, "2": 5 / 6, "3": 1.0})
    # maj@1: t1 "2" right, t2 no answer (wrong); maj@2: t1 tie -> first ("2"), t2 "7" right.
    assert got["maj_at_k"] == pytest.approx({"1": 0.5, "2": 1.0, "3": 0.5})
    # value@1: first samples (right, wrong); value@3: t1 picks 0.9 (right), t2 0.5 (wrong).
    assert got["value_at_k"] == pytest.approx({"1": 0.5, "2": 0.5, "3": 0.5})
    assert "maj_at_k" not in curves(records, answers=False)
    assert subsets(records) == {
        "level": {"L1": {"tasks": 1, "success_rate": 1.0}, "L2": {"tasks": 1, "success_rate": 0.0}}
    }


def test_rerank_at_k_follows_the_outcome_reward_model_by_hand():
    records = [
        _rec("t1", [(True, "2", 0.9), (False, "5", 0.1), (False, "5", 0.2)]),
        _rec("t2", [(False, None, 0.5), (True, "7", 0.4), (True, "7.0", 0.3)]),
    ]
    for r, orm in zip(records, ([0.2, 0.1, 0.8], [0.3, 0.9, 0.1]), strict=True):
        for s, score in zip(r["samples"], orm, strict=True):
            s["orm"] = score
    got = curves(records, answers=True)
    # rerank@1: first samples (right, wrong); @2: t1 0.2 (right), t2 0.9 (right);
    # @3: t1 0.8 (wrong), t2 0.9 (right)
    assert got["rerank_at_k"] == pytest.approx({"1": 0.5, "2": 1.0, "3": 0.5})
    assert "value_at_k" not in got  # no value model chose among these samples
    del records[0]["samples"][2]["orm"]
    assert "rerank_at_k" not in curves(records, answers=True)  # not every sample was scored


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reranker": "r"}, "--reranker ranks K samples"),
        ({"strategy": "nucleus"}, "strategy must be one of"),
        ({"k": 4}, "greedy decoding gives one response"),
        ({"strategy": "beam"}, "pass --value DIR"),
        ({"strategy": "best-of-k", "value": "v", "policy": "expert"}, "greedy or sample only"),
        ({"admissible": True}, "--admissible applies"),
        ({"beam_width": 0}, "beam_width must be >= 1"),
        ({"tasks": 0}, "tasks must be >= 1"),
    ],
)
def test_config_refuses_what_it_cannot_run(kwargs, message):
    base = {"env": "oreo/GSMSymbolic-v0", "policy": "p", "out": "r.json"}
    with pytest.raises(ValueError, match=message):
        RolloutConfig(**{**base, **kwargs})


def test_gold_policy_report_is_consistent_and_reloads(tmp_path):
    from oreo_agents.rollout.scripted import GoldPolicy
    from oreo_cli.options import make_env

    options = {"size": 12, "granularity": "step"}
    cfg = RolloutConfig(env="oreo/GSMSymbolic-v0", policy="gold", out=str(tmp_path / "r.json"),
                        env_options=options, tasks=5)  # fmt: skip
    seen = []
    report = run_rollout(
        cfg, lambda: make_env(cfg.env, options), scripted=GoldPolicy,
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert report["tasks"] == 5 and report["success_rate"] == 1.0
    assert report["pass_at_k"] == {"1": 1.0} and report["maj_at_k"] == {"1": 1.0}
    assert report["ci95"][1] == 1.0 and report["mean_steps"] > 1
    assert seen[0] == (0.0, 5) and seen[-1] == (5.0, 5)
    assert all(r["samples"][0]["answer"] for r in report["records"])
    assert report["subsets"]["split"] == {"test": {"tasks": 5, "success_rate": 1.0}}
    path = save_report(report, cfg.out)
    assert load_report(path) == report
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ValueError, match="not an oreo rollout report"):
        load_report(tmp_path / "bad.json")


def _report(writer: int, i: int) -> dict:
    # ~40 kB: long enough for writes to overlap
    return {"strategy": "greedy", "writer": writer, "i": i, "records": [f"{writer}-{i}"] * 4000}


def _assert_one_whole_report(path, reports):
    assert json.loads(path.read_text()) in reports
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_concurrent_saves_of_one_report_from_threads(tmp_path):
    """300 saves of one path at once: none fails, and one writer's whole report wins."""
    path = tmp_path / "r.json"
    reports = [_report(0, i) for i in range(300)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: save_report(r, path), reports))  # re-raises any failure
    _assert_one_whole_report(path, reports)


SAVER = """
import sys
from oreo_agents.evaluation.evaluate import save_report
writer, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(n):
    save_report({"strategy": "greedy", "writer": writer, "i": i,
                 "records": [f"{writer}-{i}"] * 4000}, path)
"""


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_saves_of_one_report_from_processes(tmp_path, processes):
    """Two to four `oreo rollout` processes writing one report path (300 saves in all)."""
    path = tmp_path / "r.json"
    n = 300 // processes
    procs = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(w), str(n), str(path)],
                         stderr=subprocess.PIPE, text=True)
        for w in range(processes)
    ]  # fmt: skip
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * processes, "\n".join(errors)
    _assert_one_whole_report(path, [_report(w, i) for w in range(processes) for i in range(n)])


@pytest.mark.parametrize("granularity", ["response", "step"])
def test_chain_reports_line_faithfulness_from_the_env(granularity):
    """The gold policy's chains are right line by line; GSM8K-style envs give no labels."""
    from oreo_agents.rollout.scripted import GoldPolicy
    from oreo_cli.options import make_env

    options = {"size": 12, "granularity": granularity}
    cfg = RolloutConfig(env="oreo/Chain-v0", policy="gold", out="unused", env_options=options,
                        tasks=4)  # fmt: skip
    report = run_rollout(cfg, lambda: make_env(cfg.env, options), scripted=GoldPolicy)
    assert report["lines"] == {
        "line_accuracy": 1.0, "correct_chain_rate": 1.0, "wrong_line_success_share": 0.0
    }  # fmt: skip
    assert all(len(r["samples"][0]["line_correct"]) == 3 for r in report["records"])  # 3 steps
    gsm = RolloutConfig(env="oreo/GSMSymbolic-v0", policy="gold", out="unused", tasks=2,
                        env_options={"size": 12})  # fmt: skip
    report = run_rollout(gsm, lambda: make_env(gsm.env, {"size": 12}), scripted=GoldPolicy)
    assert "lines" not in report


def scored(*tasks):
    """Records from per-task lists of (value, success)."""
    return [
        {"samples": [{"value": v, "success": ok} for v, ok in task], "chosen": 0} for task in tasks
    ]


def test_value_auroc_by_hand():
    # Task a: the success scores 0.9 > both failures; task b: its success 0.2 ties one failure
    # and loses to the other.
    records = scored([(0.9, True), (0.5, False), (0.1, False)], [(0.2, True), (0.2, False),
                                                                  (0.3, False)])  # fmt: skip
    got = value_auroc(records)
    # Within task: a gives 2/2 wins, b gives 0.5 + 0 = 0.5 of 2 pairs -> 2.5 / 4.
    assert got["within_task"] == pytest.approx(2.5 / 4)
    # Overall: successes 0.9 and 0.2 against failures 0.5, 0.1, 0.2, 0.3:
    # 0.9 beats all 4; 0.2 beats 0.1, ties 0.2 -> 1.5. (4 + 1.5) / 8.
    assert got["overall"] == pytest.approx(5.5 / 8)


def test_value_auroc_sees_a_difficulty_only_value_model():
    # Values that only know the task (easy 0.8, hard 0.2) rank well overall, at chance within.
    records = scored([(0.8, True), (0.8, False), (0.8, True)], [(0.2, False), (0.2, True)],
                     [(0.2, False)])  # fmt: skip
    got = value_auroc(records)
    assert got["within_task"] == 0.5 and got["overall"] > 0.6
    assert value_auroc(scored([(0.3, True)])) == {}  # no failure: nothing to rank
    assert value_auroc([{"samples": [{"success": True}], "chosen": None}]) == {}


def test_line_metrics_by_hand():
    def sample(success, lines):
        return {"success": success, "line_correct": lines}

    records = [
        {"samples": [sample(True, [True, True]), sample(True, [False, True])]},
        {"samples": [sample(False, [False]), sample(False, []), {"success": True}]},
    ]
    got = line_metrics(records)
    # lines: 3 right of 5; one fully right chain of 4 labelled samples (an empty chain is
    # not right); of the 2 labelled successes one holds a wrong line
    assert got == pytest.approx(
        {"line_accuracy": 3 / 5, "correct_chain_rate": 1 / 4, "wrong_line_success_share": 1 / 2}
    )
    assert line_metrics([{"samples": [{"success": True}]}]) == {}


def test_paired_difference_counts_and_interval():
    from oreo_agents.evaluation.metrics import paired_difference

    # 10 tasks: 3 both solve, 1 only base, 4 only other, 2 neither
    base = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    other = [1, 1, 1, 0, 1, 1, 1, 1, 0, 0]
    d = paired_difference(base, other)
    assert (d["won"], d["lost"], d["tasks"]) == (4, 1, 10)
    assert d["diff"] == pytest.approx(0.3)
    low, high = d["ci95"]
    assert low < 0.3 < high and -1 <= low and high <= 1
    # swapping the two negates the difference and mirrors the interval
    s = paired_difference(other, base)
    assert s["diff"] == pytest.approx(-0.3) and s["ci95"] == pytest.approx([-high, -low])
    # identical outcomes: no difference, and an interval around 0
    same = paired_difference(base, base)
    assert same["diff"] == 0 and same["ci95"][0] < 0 < same["ci95"][1]


def test_paired_difference_approaches_the_normal_interval_on_many_tasks():
    """On 4,000 tasks Newcombe's interval is close to the Wald interval of the mean of the
    per-task differences, sd^2 = ((won + lost) / n - diff^2) / n; and pairs that agree more
    (the same discordant counts, more tasks both solve) do not widen it."""
    import math

    from oreo_agents.evaluation.metrics import paired_difference

    n, won, lost, both = 4000, 600, 400, 1500
    base = [1] * both + [0] * won + [1] * lost + [0] * (n - both - won - lost)
    other = [1] * both + [1] * won + [0] * lost + [0] * (n - both - won - lost)
    d = paired_difference(base, other)
    diff = (won - lost) / n
    half = 1.96 * math.sqrt(((won + lost) / n - diff**2) / n)
    assert d["diff"] == pytest.approx(diff)
    assert d["ci95"] == pytest.approx([diff - half, diff + half], abs=2e-3)
    # the unpaired interval (Newcombe's method 10 with no correlation) is wider here
    assert d["ci95"][1] - d["ci95"][0] < 2 * 1.96 * math.sqrt((0.525 * 0.475 + 0.475 * 0.525) / n)


def test_paired_difference_refuses_bad_lists():
    from oreo_agents.evaluation.metrics import paired_difference

    with pytest.raises(ValueError, match="aligned"):
        paired_difference([1, 0], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        paired_difference([1, 0.5], [1, 0])
