"""The result tables at 80 columns: no cell cut short, none wrapped, no line wider than 80."""

from __future__ import annotations

from rich.console import Console

from oreo_agents.recipes.demo import LABELS, round_label


def render(print_fn, *args) -> str:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    print_fn(console, *args)
    return console.export_text()


def assert_fits(text: str, cells: list[str]) -> None:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text, text
    for cell in cells:  # whole, on one line
        assert any(cell in line for line in lines), f"{cell!r} is cut or wrapped in\n{text}"


def test_the_demo_table_fits_80_columns_with_every_method_and_rounds():
    from oreo_cli.demo import print_results

    config = {"search_k": 16, "samples": 16, "rounds": 2}
    results = {}
    for method in LABELS:  # every row the demo can print, OREO and rejection sampling in rounds
        for key in ([f"{method}-r0", f"{method}-r1"] if method in ("oreo", "rft") else [method]):
            results[key] = {"success_rate": 1.0, "ci95": [0.991, 1.0], "tasks": 500,
                            "lines": {"line_accuracy": 1.0},
                            "value_auroc": {"within_task": 0.875}}  # fmt: skip
    report = {"env": "oreo/Chain-v0", "config": config, "results": results}
    text = render(print_results, report, 12, True)
    labels = [round_label(key, config) for key in results]
    assert "rejection sampling (round 2)" in labels and "OREO + value@16" in labels
    assert_fits(text, [*labels, "100.0%", "99.1-100.0", "0.88"])
    one_round = render(print_results, {**report, "config": {**config, "rounds": 1}}, 0, False)
    assert "(round" not in one_round and "OREO + value@16" in one_round
    assert "PIPELINE CHECK (--fast), not a result" in text and "500 test tasks" in text


def test_the_rollout_tables_fit_80_columns_with_every_column():
    from oreo_cli.rollout import print_report

    curve = {"1": 0.5, "16": 0.875}
    report = {
        "env": "oreo/ALFWorld-v0", "split": "valid_unseen", "model": "runs/alfworld/oreo/policy",
        "strategy": "value-guided K=5", "tasks": 134, "success_rate": 0.119, "ci95": [0.075, 0.185],
        "pass_at_k": curve, "maj_at_k": curve, "value_at_k": curve, "rerank_at_k": curve,
        "value_auroc": {"within_task": 0.61}, "lines": {"line_accuracy": 0.953},
        "mean_steps": 37.2, "mean_tokens_per_task": 1234.0, "timings": {"s_per_task": 2.75},
        "embodied": {"games": ["g"] * 134, "games_sha256": "d994c3de0faad1a7", "step_cap": 40,
                     "won": 16, "lost": 118, "mean_steps_won": 12.3, "mean_steps_lost": 40.0,
                     "nothing_happens_rate": 0.314, "loop_share_of_lost": 0.627},
        "subsets": {"task_type": {"pick_cool_then_place_in_recep": {"tasks": 21,
                                                                    "success_rate": 0.095}}},
    }  # fmt: skip
    text = render(print_report, report)
    assert_fits(text, ["value-guided K=5", "11.9%", "7.5%-18.5%", "87.5%", "0.61", "95.3%",
                       "37.2", "1234", "2.75", "Nothing happens.", "31.4%", "62.7%",
                       "pick_cool_then_place_in_recep"])  # fmt: skip
