"""How `benchmarks/alfworld_agents.py` shows a run: the markdown tables of docs/results.md
(``summary.md``), the lines it prints, and ``summary.png`` (value-guided acting against K)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHODS = {"oreo": "OREO", "rft": "rejection sampling", "dpo": "DPO"}


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    """The tables of docs/results.md: per split, each method's success with its 95% Wilson
    interval, games won and lost against SFT on the same games (paired), and success per task
    type (games of that type in the header)."""
    from oreo_agents.evaluation.metrics import wilson_interval

    out = []
    for split, rows in summary.items():
        types = sorted(next(iter(rows.values()))["task_type"])
        sizes = {t: next(iter(rows.values()))["task_type"][t]["tasks"] for t in types}
        head = ["method", "success (95% CI)", "vs SFT: won / lost",
                *(f"{SHORT.get(t, t)} ({sizes[t]})" for t in types)]  # fmt: skip
        out += [f"**{split}** ({next(iter(rows.values()))['tasks']} games)", "",
                "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
        sft = rows["sft"]["wins"]
        for name, row in rows.items():
            lo, hi = row["ci95"]
            won = sum(row["wins"][t] > sft[t] for t in sft)
            lost = sum(row["wins"][t] < sft[t] for t in sft)
            cells = [label(name), f"{row['success_rate']:.1%} ({lo:.1%}-{hi:.1%})",
                     "" if name == "sft" else f"{won} / {lost}"]  # fmt: skip
            for t in types:
                sub = row["task_type"][t]
                k = round(sub["success_rate"] * sub["tasks"])
                a, b = wilson_interval(k, sub["tasks"])
                cells.append(f"{sub['success_rate']:.0%} ({a:.0%}-{b:.0%})")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


# ALFWorld's task types, as the paper's tables name them
SHORT = {"pick_and_place_simple": "pick", "look_at_obj_in_light": "look",
         "pick_clean_then_place_in_recep": "clean", "pick_heat_then_place_in_recep": "heat",
         "pick_cool_then_place_in_recep": "cool", "pick_two_obj_and_place": "pick two"}  # fmt: skip


def label(name: str) -> str:
    return METHODS.get(name, "SFT" if name == "sft" else name.replace("oreo+value", "OREO + value"))


def print_summary(summary: dict[str, dict[str, Any]]) -> None:
    for split, rows in summary.items():
        print(f"\n{split}: greedy unless noted (95% interval)")
        for name, row in rows.items():
            lo, hi = row["ci95"]
            print(f"  {label(name):<28} {row['success_rate']:6.1%}  ({lo:.1%}-{hi:.1%}, "
                  f"{row['tasks']} games)")  # fmt: skip


def plot(summary: dict[str, Any], path: Path) -> None:
    """Value-guided acting's success against K per split (K = 1: OREO greedy), SFT dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ticks = {1}
    for split, rows in summary.items():
        ks = sorted(int(name.split("=")[1]) for name in rows if name.startswith("oreo+value K="))
        if not ks:
            continue
        ticks.update(ks)
        ys = [rows["oreo"]["success_rate"]] + [
            rows[f"oreo+value K={k}"]["success_rate"] for k in ks
        ]
        ax.plot([1, *ks], ys, marker="o", label=f"OREO + value, {split} (K=1: greedy)")
        ax.axhline(rows["sft"]["success_rate"], linestyle="--", linewidth=1, label=f"SFT, {split}")
    ax.set_xticks(sorted(ticks))
    ax.set_xlabel("K candidate actions per step")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
