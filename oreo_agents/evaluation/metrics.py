"""Evaluation metrics over per-task records: Wilson intervals, pass@k, maj@k, value@k, subsets,
the value model's AUROC and the chains' per-line faithfulness.

A record is ``{"task_id", "samples": [{"success", "answer", "value", ...}], "chosen",
"subset": {key: label}, "success"}`` (`oreo_agents.evaluation.evaluate` builds them); these
functions are pure, so the report's numbers can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% for z = 1.96)."""
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_difference(
    base: Sequence[float], other: Sequence[float], z: float = 1.96
) -> dict[str, Any]:
    """How ``other``'s success differs from ``base``'s on the same tasks (two aligned lists of
    0/1 outcomes): ``{"diff", "ci95", "won", "lost", "tasks"}``, ``diff`` = other's rate minus
    base's, ``won`` / ``lost`` the tasks only ``other`` / only ``base`` solved.

    The interval is Newcombe's for paired proportions (Newcombe 1998, Statistics in Medicine
    17:2635, method 10): each rate's Wilson interval, combined with the correlation of the
    pairs, so tasks both solve or both fail narrow it as paired data should.

    Raises:
        ValueError: The lists differ in length, are empty, or hold other values than 0 and 1.
    """
    if len(base) != len(other) or not base:
        raise ValueError(f"need two aligned, non-empty outcome lists: {len(base)}, {len(other)}")
    if any(x not in (0, 1) for x in (*base, *other)):
        raise ValueError("outcomes must be 0 or 1")
    n = len(base)
    both = sum(1 for a, b in zip(base, other, strict=True) if a and b)
    lost = sum(1 for a, b in zip(base, other, strict=True) if a and not b)
    won = sum(1 for a, b in zip(base, other, strict=True) if b and not a)
    neither = n - both - lost - won
    p1, p2 = (both + won) / n, (both + lost) / n  # other's rate, base's rate
    (l1, u1), (l2, u2) = wilson_interval(both + won, n, z), wilson_interval(both + lost, n, z)
    margins = (both + won) * (lost + neither) * (both + lost) * (won + neither)
    phi = (both * neither - won * lost) / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                                + (u2 - p2) ** 2))  # fmt: skip
    high = diff + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
                                 + (p2 - l2) ** 2))  # fmt: skip
    return {"diff": diff, "ci95": [low, high], "won": won, "lost": lost, "tasks": n}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: ``1 - C(n-c, k) / C(n, k)`` (Chen et al.
    2021, Codex paper, Eq. 1).

    Raises:
        ValueError: k > n.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_index(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool] | None = None
) -> int | None:
    """Index of a representative of the largest cluster of equivalent answers (None answers do
    not vote); ties go to the cluster that appeared first. None when nothing voted."""
    if equivalent is None:
        from oreo_envs.verifiers import is_equivalent as equivalent
    clusters: list[list[int]] = []
    for i, answer in enumerate(answers):
        if answer is None or answer == "":
            continue
        for cluster in clusters:
            if answer == answers[cluster[0]] or equivalent(answer, answers[cluster[0]]):
                cluster.append(i)
                break
        else:
            clusters.append([i])
    if not clusters:
        return None
    return max(clusters, key=len)[0]  # max() keeps the first of equal sizes


def k_grid(k: int) -> list[int]:
    """1, 2, 4, ... up to k, and k itself: the points of a success-vs-k curve."""
    ks, x = [], 1
    while x < k:
        ks.append(x)
        x *= 2
    return ks + [k]


def curves(records: Sequence[dict[str, Any]], answers: bool) -> dict[str, dict[str, float]]:
    """pass@k, maj@k (with ``answers``: envs that grade a final answer, where a sample without
    one loses the vote), value@k (when the value model chose among samples) and rerank@k (when
    an outcome reward model scored every sample: its highest-scored one) at the points of
    `k_grid`, over the samples every task has."""
    n = min((len(r["samples"]) for r in records), default=0)
    out: dict[str, dict[str, float]] = {
        "pass_at_k": {}, "maj_at_k": {}, "value_at_k": {}, "rerank_at_k": {},
    }  # fmt: skip
    if n == 0:
        return out
    # a value model chose among the samples (a strategy may choose by something else)
    has_values = all(
        r["chosen"] is not None and all(s.get("value") is not None for s in r["samples"])
        for r in records
    )
    has_orm = all("orm" in s for r in records for s in r["samples"])
    for k in k_grid(n):
        out["pass_at_k"][str(k)] = _mean(
            pass_at_k(n, sum(s["success"] for s in r["samples"][:n]), k) for r in records
        )
        if answers:
            out["maj_at_k"][str(k)] = _mean(_pick_success(r, _maj(r, k)) for r in records)
        if has_values:
            out["value_at_k"][str(k)] = _mean(_pick_success(r, _best_value(r, k)) for r in records)
        if has_orm:
            best = (_pick_success(r, _best(r, k, "orm")) for r in records)
            out["rerank_at_k"][str(k)] = _mean(best)
    return {key: value for key, value in out.items() if value}


def value_auroc(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """How well the value model's scores of finished samples separate successes from failures.

    ``overall``: the AUROC over all samples (the probability that a random success scores
    above a random failure, ties counting half; Mann-Whitney). ``within_task``: the same over
    pairs from one task only, which is what reranking needs: a value model that only knows
    which tasks are hard scores well overall and 0.5 within tasks. A key is left out when no
    pair exists; no values at all gives ``{}``.
    """
    scored = [
        [(s["value"], bool(s["success"])) for s in r["samples"] if s.get("value") is not None]
        for r in records
    ]
    out = {}
    overall = _auroc([x for task in scored for x in task])
    if overall is not None:
        out["overall"] = overall
    wins = pairs = 0.0
    for task in scored:
        pos = [v for v, ok in task if ok]
        neg = [v for v, ok in task if not ok]
        wins += sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
        pairs += len(pos) * len(neg)
    if pairs:
        out["within_task"] = wins / pairs
    return out


def line_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Faithfulness of the samples' chains, from the env's per-line labels (``line_correct``:
    `oreo_envs.chain_env.line_labels`): ``line_accuracy`` (right lines / lines),
    ``correct_chain_rate`` (samples with at least one line, all right) and
    ``wrong_line_success_share`` (successes holding a wrong line: right for a wrong reason).
    ``{}`` when no sample is labelled."""
    labelled = [s for r in records for s in r["samples"] if s.get("line_correct") is not None]
    if not labelled:
        return {}
    lines = [ok for s in labelled for ok in s["line_correct"]]
    successes = [s for s in labelled if s["success"]]
    out = {
        "line_accuracy": sum(lines) / len(lines) if lines else 0.0,
        "correct_chain_rate": _mean(
            float(bool(s["line_correct"]) and all(s["line_correct"])) for s in labelled
        ),
    }
    if successes:
        wrong = _mean(float(not all(s["line_correct"])) for s in successes)
        out["wrong_line_success_share"] = wrong
    return out


def _auroc(scored: list[tuple[float, bool]]) -> float | None:
    """Mann-Whitney AUROC via ranks with ties averaged (O(n log n))."""
    n_pos = sum(ok for _, ok in scored)
    n_neg = len(scored) - n_pos
    if not n_pos or not n_neg:
        return None
    order = sorted(range(len(scored)), key=lambda i: scored[i][0])
    ranks = [0.0] * len(scored)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scored[order[j + 1]][0] == scored[order[i]][0]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1  # 1-based average rank of the tie group
        i = j + 1
    rank_sum = sum(r for r, (_, ok) in zip(ranks, scored, strict=True) if ok)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _maj(record, k):
    return majority_index([s["answer"] for s in record["samples"][:k]])


def _best_value(record, k):
    return _best(record, k, "value")


def _best(record, k, key):
    """The first of the top-scored samples among the first k (ties: the earliest)."""
    return max(range(k), key=lambda i: record["samples"][i][key])


def _pick_success(record, index) -> float:
    return 0.0 if index is None else float(record["samples"][index]["success"])


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def subsets(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Success per subset label: ``{key: {label: {"tasks": n, "success_rate": x}}}``."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in records:
        for key, label in r["subset"].items():
            out.setdefault(key, {}).setdefault(str(label), []).append(r["success"])
    return {
        key: {
            label: {"tasks": len(xs), "success_rate": sum(xs) / len(xs)}
            for label, xs in sorted(groups.items())
        }
        for key, groups in out.items()
    }
