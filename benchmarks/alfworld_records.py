"""The ALFWorld tables of docs/results.md, from the committed records of several seeds.

Run by hand (it prints markdown; ``--out FILE`` writes it instead)::

    python benchmarks/alfworld_records.py                      # docs/results/alfworld/*.json
    python benchmarks/alfworld_records.py runs/records --out /tmp/alfworld.md
    python benchmarks/alfworld_records.py --reports s0.json s1.json s2.json

A record is one seed of ``benchmarks/alfworld_agents.py`` (its step 6): the evaluated games of
each split and, per run (SFT, rejection sampling, DPO, OREO greedy, OREO with value-guided
acting at each K), every game's outcome and steps. Per split, in that order of runs:

1. over seeds: each run's success as mean ± sample standard deviation over the seeds (in
   percentage points), with the mean rate of actions answered "Nothing happens." and the mean
   share of lost games that end in a loop (`oreo_agents.evaluation.embodied.across_seeds`,
   which refuses seeds that differ in games, step cap or decoding);
2. per seed: each run's success with its 95% Wilson interval and the games it won and lost
   against SFT on the same games (paired), and for value-guided acting also against OREO
   greedy, the policy it guides (the issue's aim is read there);
3. each seed's wall time (the sum of its stages' times) and commit, then each stage's time.

Success, steps and the paired counts are computed from the per-game lists, never from a stored
rate. Records of one split must list the same games in the same order, with the same step cap:
any other set of records is refused, since their numbers would not be comparable.

``--reports`` pools `oreo rollout` reports of one evaluation with different seeds (ALFWorld or
any agent env) through the same `across_seeds`: a table per seed and the mean ± std row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results" / "alfworld"
LABELS = {"sft": "SFT", "rft": "rejection sampling", "dpo": "DPO", "oreo": "OREO greedy"}
GUIDED = "oreo+value K="  # value-guided acting's runs: oreo+value K=2, ...


class RecordError(ValueError):
    """Records that cannot be tabled together; the message names the files."""


def load_records(folder: Path) -> list[dict[str, Any]]:
    """The records (``*.json``) of a folder, by seed, each with its file name in ``"file"``.

    Raises:
        RecordError: No record, a file that is not one, or two records of one seed.
    """
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or "record_version" not in record:
            raise RecordError(f"{path} is not an alfworld_agents.py record")
        records.append({**record, "file": path.name})
    if not records:
        raise RecordError(f"no records (*.json) in {folder}")
    seeds = [r["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise RecordError(f"two records of one seed in {folder}: seeds {sorted(seeds)}")
    return sorted(records, key=lambda r: r["seed"])


def check_splits(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of each split, after checking that they list the same games.

    Raises:
        RecordError: A split whose records differ in their games (or order), in their games'
            files or in step cap, or a record whose game list does not match its hash.
    """
    from oreo_agents.evaluation.embodied import games_sha256

    by_split: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for split, block in record["splits"].items():
            if games_sha256(block["games"]) != block["games_sha256"]:
                raise RecordError(f"{record['file']}: {split}'s game list does not match its hash")
            by_split.setdefault(split, []).append(record)
    for split, group in by_split.items():
        first = group[0]["splits"][split]
        for record in group[1:]:
            block = record["splits"][split]
            for key, what in (("games_sha256", "games"), ("game_files_sha256", "game files"),
                              ("step_cap", "step cap")):  # fmt: skip
                if block[key] != first[key]:
                    raise RecordError(
                        f"{group[0]['file']} and {record['file']} differ in their {split} {what} "
                        f"({first[key]} vs {block[key]}): seeds of a table must play the same "
                        "games under the same step cap"
                    )
    return by_split


def run_names(group: list[dict[str, Any]], split: str) -> list[str]:
    """The split's runs over all records: SFT, rejection sampling, DPO, OREO greedy, then
    value-guided OREO by K."""
    names = {name for r in group for name in r["splits"][split]["runs"]}
    order = list(LABELS)

    def key(name: str) -> tuple[int, int]:
        if name in order:
            return (order.index(name), 0)
        k = name[len(GUIDED) :] if name.startswith(GUIDED) else ""
        return (len(order), int(k) if k.isdigit() else 0)

    return sorted(names, key=key)


def label(name: str) -> str:
    if name.startswith(GUIDED):
        return "OREO + value K=" + name[len(GUIDED) :]
    return LABELS.get(name, name)


def as_report(record: dict[str, Any], split: str, name: str) -> dict[str, Any]:
    """One run of one record in the shape `across_seeds` pools (a report's fields): success and
    the mean steps of won and lost games from the per-game lists."""
    block = record["splits"][split]
    run = block["runs"][name]
    won, steps = run["won"], run["steps"]
    won_steps = [s for w, s in zip(won, steps, strict=True) if w]
    lost_steps = [s for w, s in zip(won, steps, strict=True) if not w]
    embodied = {key: block[key] for key in ("games", "games_sha256", "game_files_sha256",
                                            "step_cap")}  # fmt: skip
    embodied.update(
        split=split,
        decoding=run["decoding"],
        nothing_happens_rate=run["nothing_happens_rate"],
        loop_share_of_lost=run["loop_share_of_lost"],
        mean_steps_won=_mean(won_steps),
        mean_steps_lost=_mean(lost_steps),
    )
    return {"env": record["env"], "seed": record["seed"], "success_rate": _mean(won),
            "embodied": embodied}  # fmt: skip


def tables(records: list[dict[str, Any]]) -> str:
    """The markdown of every split (module docstring), then the seeds' wall and stage times."""
    out = []
    for split, group in check_splits(records).items():
        block = group[0]["splits"][split]
        seeds = ", ".join(str(r["seed"]) for r in group)
        out += [f"**{split}**: {len(block['games'])} games, step cap {block['step_cap']}, "
                f"seeds {seeds}, games sha256 {block['games_sha256'][:12]}", ""]  # fmt: skip
        names = run_names(group, split)
        out += pooled_rows(group, split, names) + [""]
        out += seed_rows(group, split, names) + [""]
    out += ["| seed | wall (h:mm:ss) | commit |", "|---|---|---|"]
    for record in records:
        commit = (record["provenance"]["git"].get("commit") or "unknown")[:10]
        wall = _clock(record["timings"]["total_s"])
        out.append(f"| {record['seed']} | {wall} | {commit} |")
    return "\n".join(out + [""] + stage_rows(records)) + "\n"


def pooled_rows(group: list[dict[str, Any]], split: str, names: list[str]) -> list[str]:
    """Over seeds: each run's success as mean ± std, its "Nothing happens." rate and the share
    of lost games that end in a loop (`across_seeds`)."""
    from oreo_agents.evaluation.embodied import across_seeds

    out = ["| run | seeds | success % (mean ± std) | Nothing happens. % | lost in loop % |",
           "|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        having = [r for r in group if name in r["splits"][split]["runs"]]
        try:
            pooled = across_seeds([as_report(r, split, name) for r in having])
        except ValueError as e:
            raise RecordError(f"{split}, {label(name)}: {e}") from None
        cells = [label(name), str(len(having)), _mean_std(pooled["success_rate"]),
                 _pct(pooled["nothing_happens_rate"]["mean"]),
                 _pct(pooled["loop_share_of_lost"]["mean"])]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return out


def seed_rows(group: list[dict[str, Any]], split: str, names: list[str]) -> list[str]:
    """Per seed: each run's success with its 95% Wilson interval, the games it won and lost
    against SFT on the same games, and for value-guided acting against OREO greedy (the
    policy it guides), both paired game by game."""
    from oreo_agents.evaluation.metrics import wilson_interval

    out = ["| run | seed | success % (95% CI) | vs SFT: won / lost | vs OREO greedy |",
           "|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        for record in group:
            runs = record["splits"][split]["runs"]
            if name not in runs:
                continue
            won = runs[name]["won"]
            lo, hi = wilson_interval(sum(won), len(won))
            vs_sft = _paired(won, runs["sft"]["won"]) if name != "sft" and "sft" in runs else ""
            guided = name.startswith(GUIDED) and "oreo" in runs
            vs_oreo = _paired(won, runs["oreo"]["won"]) if guided else ""
            rate = f"{100 * _mean(won):.1f} ({100 * lo:.1f}-{100 * hi:.1f})"
            out.append(f"| {label(name)} | {record['seed']} | {rate} | {vs_sft} | {vs_oreo} |")
    return out


def stage_rows(records: list[dict[str, Any]]) -> list[str]:
    """Each stage's time per seed (the records' ``timings``, s), in the pipeline's order, and
    each seed's total."""
    stages: list[str] = []
    for record in records:
        stages += [s for s in record["timings"]["stages"] if s not in stages]
    out = ["| stage (s) | " + " | ".join(f"seed {r['seed']}" for r in records) + " |",
           "|---|" + "---|" * len(records)]  # fmt: skip
    for stage in stages:
        times = [r["timings"]["stages"].get(stage) for r in records]
        out.append(f"| {stage} | " + " | ".join("-" if t is None else f"{t:,.0f}"
                                                for t in times) + " |")  # fmt: skip
    totals = [f"**{r['timings']['total_s']:,.0f}**" for r in records]
    return out + ["| **all** | " + " | ".join(totals) + " |"]


def _paired(won: list[int], other: list[int]) -> str:
    """Games won where ``other`` lost / lost where it won, on the same games
    (`oreo_agents.evaluation.metrics.paired_difference`'s counts)."""
    from oreo_agents.evaluation.metrics import paired_difference

    counts = paired_difference(other, won)
    return f"{counts['won']} / {counts['lost']}"


def report_tables(paths: list[Path]) -> str:
    """``--reports``: rollout reports of one evaluation pooled over their seeds (`across_seeds`)
    as markdown: one row per seed and the mean ± std row."""
    from oreo_agents.evaluation.embodied import across_seeds

    reports = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    pooled = across_seeds(reports)
    keys = ("success_rate", "nothing_happens_rate", "loop_share_of_lost", "mean_steps_won",
            "mean_steps_lost")  # fmt: skip
    decoding = pooled["decoding"]
    out = [f"**{pooled['env']}** {pooled['split']}: {pooled['games']} games, step cap "
           f"{pooled['step_cap']}, {decoding['strategy']} (k={decoding['k']})", "",
           "| seed | success % | Nothing happens. % | lost in loop % | steps won | steps lost |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for i, seed in enumerate(pooled["seeds"]):
        values = [pooled[k]["per_seed"][i] for k in keys]
        cells = [_pct(v) for v in values[:3]] + [_num(v) for v in values[3:]]
        out.append(f"| {seed} | " + " | ".join(cells) + " |")
    means = [_mean_std(pooled[k]) for k in keys[:3]]
    means += [_num(pooled[k]["mean"]) for k in keys[3:]]
    out.append("| mean ± std | " + " | ".join(means) + " |")
    return "\n".join(out) + "\n"


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _mean_std(p: dict[str, Any]) -> str:
    """A pooled rate in percentage points: "45.5 ± 2.1", or the one seed's "45.5"."""
    if p["mean"] is None:
        return "-"
    if p["std"] is None:
        return f"{100 * p['mean']:.1f}"
    return f"{100 * p['mean']:.1f} ± {100 * p['std']:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=RECORDS, help="the records' folder")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of printing")
    parser.add_argument(
        "--reports", type=Path, nargs="+",
        help="pool these rollout reports over their seeds instead of reading records",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        text = report_tables(args.reports) if args.reports else tables(load_records(args.folder))
    except ValueError as e:  # RecordError, and across_seeds' refusals
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
