"""A picture of a rollout report: success by subset, and success vs k (pass@k, maj@k, value@k,
rerank@k).

matplotlib is imported lazily: only ``oreo rollout --plot`` needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CURVES = (
    ("pass_at_k", "pass@k"),
    ("maj_at_k", "maj@k"),
    ("value_at_k", "value-reranked@k"),
    ("rerank_at_k", "ORM-reranked@k"),
)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write a PNG: one bar panel per subset key, and a success-vs-k panel when the report has
    curves over more than one k.

    Raises:
        ImportError: matplotlib is missing (the message names the package to install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers and CI
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from None
    groups = [(key, rows) for key, rows in report["subsets"].items() if rows]
    curves = [(key, name) for key, name in CURVES if len(report.get(key, {})) > 1]
    panels = max(1, len(groups) + bool(curves))
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.8), squeeze=False)
    axes = list(axes[0])
    title = f"{report['env']} {report['strategy']}: success {report['success_rate']:.1%}"
    fig.suptitle(title)
    for ax, (key, rows) in zip(axes, groups, strict=False):
        labels = list(rows)
        ax.bar(range(len(labels)), [rows[label]["success_rate"] for label in labels])
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"success by {key}")
    if curves:
        ax = axes[len(groups)]
        for key, name in curves:
            ks = sorted(report[key], key=int)
            ax.plot([int(k) for k in ks], [report[key][k] for k in ks], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylim(0, 1)
        ax.set_title("success vs k")
        ax.legend()
    if not groups and not curves:
        axes[0].bar([report["strategy"]], [report["success_rate"]])
        axes[0].set_ylim(0, 1)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
