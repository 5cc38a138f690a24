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

    config = {"search_k": 16, "samples": 16}
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
    assert "PIPELINE CHECK (--fast), not a result" in text and "500 test tasks" in text
