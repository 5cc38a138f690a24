"""Learned ALFWorld agents on a CPU: the OREO paper's Table 2 and Fig. 4 in miniature.

Run by hand (it prints tables and asserts nothing; every step resumes)::

    python benchmarks/alfworld_agents.py --data ../shared/data/alfworld --out runs/alfworld
    python benchmarks/alfworld_agents.py --fast --out /tmp/alfworld-fast   # bundled games

The recipe (Wang et al. 2024, Sec. 5.2), through the public CLI:

1. expert episodes (`--model expert`, the games' walkthroughs) of ``--train-games`` games of
   ``train_fit`` (default all 3,339: train without its held-out tasks, `oreo_envs.alfworld.data`);
2. a from-scratch Llama with a BPE tokenizer trained on those episodes' text
   (`oreo_agents.models.tiny.agent_model`), SFT on the expert episodes (``--sft-epochs``, 3),
   and its greedy success on ``train_heldout``, where its recipe was chosen
   (`benchmarks/alfworld_sft_choice.py`);
3. ``--samples`` episodes per train game from the SFT policy at temperature 1;
4. OREO (beta 0.03, alpha 0.01: the paper's ALFWorld run), rejection sampling and DPO, each from
   the SFT policy on those samples with the expert episodes (every method then has successes
   to learn from, also when the SFT policy's samples have none);
5. greedy evaluation of SFT and each method on valid_seen and valid_unseen, and OREO with
   value-guided acting (K candidate actions per step, its value model picks one) for each K of
   ``--ks``: a table per split with 95% intervals, and ``summary.json``, ``summary.png`` and
   ``summary.md`` (per split: each method's success, games won and lost against SFT on the same
   games, and success per task type, all with 95% intervals);
6. the seed's record (`write_record`; ``--record``, default ``docs/results/alfworld/seed-N.json``,
   with ``--fast`` OUT/seed-N.json): every evaluated game's outcome and steps per method and K,
   the games, their hashes and the step cap, the settings, the stages' wall times and the
   software. It is small and self-contained, meant to be committed;
   ``benchmarks/alfworld_records.py`` turns the records of several seeds into docs/results.md's
   tables.

Every prompt repeats the task's line after each observation (``--remind-task``, on by default:
after 3 epochs of SFT the agent won 56.5% of the held-out train games with it and 19.2%
without; 6 epochs with it won 57.0%, docs/results.md).

``--acting rank`` (the default) makes every policy act by ranking the admissible actions by
its own likelihood (`oreo rollout --rank-actions`): greedy is the most likely one, samples are
drawn in proportion to it, and value-guided acting picks among the K most likely. A
from-scratch agent of a few M parameters rarely writes an admissible action by itself
(``--acting generate``: 1.5% of valid_unseen after SFT on 600 games, docs/results.md).

``--lanes 2`` (the default) runs commands that do not depend on each other two at a time, one
torch thread each on 2 cores (`sh_lanes`): the SFT policy's evaluations beside its samples, and
each split's other evaluations. Two such acting runs side by side do about 1.55 times the work of
one run with both threads; training runs one at a time, since it gains nothing.

``--fast`` runs the six bundled games as both train and evaluation games with a smaller model
(a check that the pipeline runs; its numbers mean nothing). Choices of settings belong on train
games, never on the evaluation splits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from alfworld_commands import sh, sh_lanes, stage  # noqa: E402
from alfworld_summary import label, markdown, plot, print_summary  # noqa: E402

RECORDS = ROOT / "docs" / "results" / "alfworld"  # where the seeds' records are committed
RECORD_VERSION = 1
# what a record keeps of each run's "embodied" block besides its per-game lists
EPISODE_NUMBERS = (
    "nothing_happens_rate",
    "loop_share_of_lost",
    "mean_steps_won",
    "mean_steps_lost",
)
ENV = "oreo/ALFWorld-v0"
HELDOUT = "train_heldout"  # train games never trained on (`oreo_envs.alfworld.data`)
# oreo train flags per method (OREO: the paper's ALFWorld beta and alpha)
SETTINGS = {
    "oreo": ["--set", "beta=0.03", "--set", "alpha=0.01", "--set", "value_lr=1e-4", "--lr", 1e-4],
    "rft": ["--lr", 1e-4],
    "dpo": ["--lr", 1e-5],
}


def data_dir(source: Path, out: Path) -> Path:
    """An ``alfworld-download`` tree with the train games unpacked: ``source`` when it has
    them, else OUT/data with the train tarball extracted and the eval splits linked."""
    if (source / "json_2.1.1" / "train").is_dir():
        return source
    tree = out / "data" / "json_2.1.1"
    if not (tree / "train").is_dir():
        tarball = source / "train_game_files.tar.xz"
        if not tarball.exists():
            raise SystemExit(f"{source} has neither json_2.1.1/train nor {tarball.name}")
        print(f"unpacking {tarball} ...", flush=True)
        partial = out / "data.partial"  # renamed into place whole: a kill leaves no half tree
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(partial, filter="data")
        tree.mkdir(parents=True, exist_ok=True)
        (partial / "json_2.1.1" / "train").rename(tree / "train")
        shutil.rmtree(partial)
    for split in ("valid_seen", "valid_unseen"):
        link = tree / split
        if not link.exists():
            link.symlink_to((source / "json_2.1.1" / split).resolve())
    return out / "data"


@dataclass(frozen=True)
class Plan:
    """What one run does: env options, sizes and the flags shared by its commands."""

    out: Path
    seed: int
    train_env: list[Any]  # -o options of the train games
    splits: dict[str, list[Any]]  # evaluation split -> its -o options
    model: dict[str, Any]  # agent_model sizes
    sft: list[Any]  # oreo train flags of SFT
    rl: list[Any]  # and of the methods trained on samples
    games: int  # train games with expert episodes
    sample_games: int  # the first N of them sampled from the SFT policy (0: all of them)
    samples: int  # SFT samples per sampled game
    eval_games: int  # per split; 0: all
    ks: dict[str, list[int]]  # split -> the Ks of value-guided acting on it
    value_splits: list[str]  # the splits of value-guided acting
    limit: list[Any]  # -o max_episode_steps=N
    loop: list[Any]  # oreo train flags every training shares
    acting: list[Any]  # oreo collect / rollout flags of model acting
    prompt: list[Any]  # agent prompt flags of every collect and rollout (--remind-task)
    lanes: int  # commands run side by side where they are independent (`sh_lanes`)


def plan(args: argparse.Namespace) -> Plan:
    if args.fast:
        bundled = ["-o", "split=bundled"]
        env, splits, steps, games, batch = bundled, {"bundled": bundled}, 4, 6, 4
        model = {"vocab_size": 600, "hidden_size": 64, "num_layers": 2}
        sft, rl = ["--max-steps", 4, "--lr", 1e-3], ["--max-steps", 2]
    else:
        where = ["-o", f"data_dir={data_dir(args.data, args.out)}"]
        env = ["-o", "split=train_fit", *where]  # train without its held-out tasks
        # held-out train games first (SFT only: where settings are chosen), then unseen: the
        # paper's headline split (Wang et al. 2024, Table 2 / Fig. 4)
        splits = {s: ["-o", f"split={s}", *where]
                  for s in ("train_heldout", "valid_unseen", "valid_seen")}  # fmt: skip
        steps, games, batch = args.max_episode_steps, args.train_games, 16
        model = {"vocab_size": 1024, "hidden_size": 256, "num_layers": 4}
        sft, rl = ["--epochs", args.sft_epochs, "--lr", 1e-3], ["--epochs", args.rl_epochs]
    loop = ["--batch-size", batch, "--micro-batch-size", 2, "--max-length", 2048,
            "--seed", args.seed, "--report-to", "none"]  # fmt: skip
    prompt = ["--remind-task"] if args.remind_task else []
    acting = ["--backend", "hf", "--max-new-tokens", 16, "--seed", args.seed, "--env-workers", 2,
              "--batch-size", args.acting_batch,
              *(["--rank-actions"] if args.acting == "rank" else [])]  # fmt: skip
    # the first N of the expert games (0: as many as they are; all train_fit when that is 0)
    sampled = min(args.sample_games or games, games) if games else args.sample_games
    return Plan(
        out=args.out, seed=args.seed, train_env=env, splits=splits, model=model, sft=sft, rl=rl,
        games=games, sample_games=sampled, samples=args.samples,
        eval_games=args.eval_games,
        ks={s: args.seen_ks if s == "valid_seen" else args.ks for s in splits},
        value_splits=list(splits) if args.fast or not args.value_splits else args.value_splits,
        limit=["-o", f"max_episode_steps={steps}"], loop=loop, acting=[*acting, *prompt],
        prompt=prompt, lanes=args.lanes,
    )  # fmt: skip


def train_all(p: Plan) -> dict[str, Path]:
    """Steps 1-4 of the module docstring; the policy folder of each method."""
    out = p.out
    print("1. expert episodes", flush=True)
    expert = out / "expert"
    with stage(out, "expert"):
        tasks = ["--tasks", p.games] if p.games else []  # 0: every train game
        sh(["collect", "--env", ENV, *p.train_env, "--model", "expert", *tasks, *p.prompt,
            "--seed", p.seed, "--env-workers", 2, "--out", expert])  # fmt: skip
    print("2. model and SFT", flush=True)
    init = out / "init"
    with stage(out, "sft"):
        _sft(p, expert, init)
    policies = {"sft": out / "sft" / "policy"}
    print("3. samples of the SFT policy", flush=True)
    samples = out / "samples"
    collect = ["collect", "--env", ENV, *p.train_env, *p.limit, "--model", policies["sft"],
               *(["--tasks", p.sample_games] if p.sample_games else []), "--samples", p.samples,
               "--temperature", 1.0, *p.acting, "--out", samples]  # fmt: skip
    # With lanes, the SFT policy's greedy evaluations (step 5's) run beside its samples: both
    # only need the SFT policy, and they take about as long as the samples do.
    beside = [rollout_job(p, split, "sft", policies["sft"], []) for split in p.splits]
    beside = [job for job in beside if not Path(job[-1]).exists()] if p.lanes > 1 else []
    with stage(out, "samples, SFT evaluation" if p.lanes > 1 else "samples"):
        sh_lanes([collect, *beside], p.lanes)
    print("4. OREO, rejection sampling, DPO", flush=True)
    with stage(out, "expert"):
        expert = _sampled_experts(p, expert)
    for method, extra in SETTINGS.items():
        with stage(out, method):
            sh(["train", "--algo", method, "--data", f"{samples},{expert}", "--model",
                policies["sft"], "--out", out / method, *p.rl, *p.loop, *extra])  # fmt: skip
        policies[method] = out / method / "policy"
    return policies


def _sampled_experts(p: Plan, expert: Path) -> Path:
    """The expert episodes of the sampled games only, beside their samples in step 4: the
    methods then learn from each game's samples and its walkthrough, and one epoch over 4
    samples a game does not turn into one over every train game's walkthrough (3,339 of them by
    default). ``collect --tasks N`` with the seed picks the same N games as the samples did."""
    if p.sample_games == p.games:
        return expert
    sampled = p.out / "expert_sampled"
    sh(["collect", "--env", ENV, *p.train_env, "--model", "expert", "--tasks", p.sample_games,
        *p.prompt, "--seed", p.seed, "--env-workers", 2, "--out", sampled])  # fmt: skip
    return sampled


def _sft(p: Plan, expert: Path, init: Path) -> None:
    """Step 2: the from-scratch model and its tokenizer, then SFT on the expert episodes."""
    out = p.out
    init_model(init, expert, p.seed, p.model)
    sh(["train", "--algo", "sft", "--data", expert, "--model", init, "--out", out / "sft",
        *p.sft, *p.loop])  # fmt: skip


def init_model(init: Path, expert: Path, seed: int, sizes: dict[str, Any]) -> None:
    """The from-scratch agent (`agent_model`) in ``init``, its BPE tokenizer trained on the
    instruction and the expert episodes' text; kept when it exists."""
    if (init / "config.json").exists():
        return
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.models.tiny import agent_model
    from oreo_agents.rollout.agent_prompt import DEFAULT_INSTRUCTION

    texts = [DEFAULT_INSTRUCTION] + [
        e.prompt + "".join(s["action"] + s["observation"] for s in e.steps)
        for e in load_episodes(expert)
    ]
    agent_model(init, texts, seed=seed, **sizes)


def evaluate(p: Plan, policies: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Step 5: greedy rollouts of every policy and OREO's value-guided acting per K, on each
    split (a rollout whose report exists is not run again)."""
    print("5. evaluation", flush=True)
    greedy = [(name, path, []) for name, path in policies.items()]
    summary: dict[str, dict[str, Any]] = {}
    for split in p.splits:
        rows = summary.setdefault(split, {})
        guided = [(f"oreo+value K={k}", policies["oreo"],
                   ["--strategy", "best-of-k", "--k", k, "--value", p.out / "oreo" / "value",
                    "--temperature", 1.0]) for k in p.ks[split]]  # fmt: skip
        runs = greedy + (guided if split in p.value_splits else [])
        if split == HELDOUT:  # settings are chosen on the SFT agent's held-out train games
            runs = greedy[:1]
        # value-guided acting first, largest K first: the longest runs lead the lanes
        jobs = [rollout_job(p, split, name, policy, extra)
                for name, policy, extra in [*runs[len(greedy):][::-1], *runs[:len(greedy)]]
                if not report_path(p, split, name).exists()]  # fmt: skip
        if jobs:
            with stage(p.out, f"eval {split}"):
                sh_lanes(jobs, p.lanes)
        for name, _policy, _extra in runs:
            r = json.loads(report_path(p, split, name).read_text())
            rows[name] = {key: r[key] for key in ("success_rate", "ci95", "tasks")}
            rows[name]["task_type"] = r["subsets"].get("task_type", {})
            rows[name]["wins"] = {rec["task_id"]: rec["success"] for rec in r["records"]}
            rows[name]["wall_s"] = r.get("timings", {}).get("total_s")
    return summary


def rollout_job(p: Plan, split: str, name: str, policy: Path, extra: list[Any]) -> list[Any]:
    """The ``oreo rollout`` arguments of one run on a split; its report is the last one."""
    tasks = ["--tasks", p.eval_games] if p.eval_games else []
    return ["rollout", "--env", ENV, *p.splits[split], *p.limit, "--policy", policy, *tasks,
            *p.acting, *extra, "--out", report_path(p, split, name)]  # fmt: skip


def report_path(p: Plan, split: str, name: str) -> Path:
    """Where the rollout report of one run (``sft``, ``oreo+value K=2``...) on a split lives."""
    return p.out / "eval" / split / f"{name.replace(' ', '_').replace('=', '')}.json"


def write_record(p: Plan, args: argparse.Namespace, summary: dict[str, Any], path: Path) -> Path:
    """Step 6: the seed's record, from the rollout reports of ``summary``'s runs.

    ``splits[split]`` holds the ordered ``games`` with ``task_types`` aligned to them, the
    reports' ``games_sha256``, ``game_files_sha256``, ``step_cap`` and engine ``versions``, and
    per run (``sft``, ``oreo``, ``rft``, ``dpo``, ``oreo+value K=k``) its ``decoding`` block,
    ``won`` and ``steps`` (one entry per game, aligned), ``success_rate``, the report's
    "Nothing happens." rate, loop share and mean steps of won and lost games, and ``wall_s``
    (the rollout's own time). ``settings`` holds the arguments and the plan (every flag passed
    to ``oreo``); ``timings`` the stages' wall seconds (OUT/stages.json) and their sum;
    ``provenance`` the software (`oreo_agents.runtime.provenance.software`) and the git commit. No
    weights: kilobytes.

    Raises:
        SystemExit: A report has no ``embodied`` block (written by an older oreo: delete
            OUT/eval and run again) or two runs of a split evaluated different games.
    """
    from oreo_agents.runtime.provenance import software

    splits: dict[str, Any] = {}
    for split, rows in summary.items():
        block: dict[str, Any] = {}
        runs: dict[str, Any] = {}
        for name in rows:
            report = report_path(p, split, name)
            r = json.loads(report.read_text())
            e = r.get("embodied")
            if e is None:
                raise SystemExit(f"{report} has no 'embodied' block (an older oreo wrote it): "
                                 f"delete {p.out / 'eval'} and run again")  # fmt: skip
            if not block:
                block = {key: e[key] for key in ("games", "games_sha256", "game_files_sha256",
                                                  "step_cap", "versions")}  # fmt: skip
                block["task_types"] = [rec["subset"].get("task_type") for rec in r["records"]]
            elif e["games_sha256"] != block["games_sha256"]:
                raise SystemExit(f"{report} evaluated other games than the {split} runs before it")
            runs[name] = {
                "label": label(name),
                "decoding": e["decoding"],
                "won": [_number(rec["success"]) for rec in r["records"]],
                "steps": [
                    _number(_mean([s["steps"] for s in rec["samples"]])) for rec in r["records"]
                ],
                "success_rate": r["success_rate"],
                **{key: e[key] for key in EPISODE_NUMBERS},
                "wall_s": round(r["timings"]["total_s"], 1),
            }
        splits[split] = {"split": split, **block, "runs": runs}
    stages_file = p.out / "stages.json"
    stages = json.loads(stages_file.read_text()) if stages_file.exists() else {}
    record = {
        "record_version": RECORD_VERSION,
        "benchmark": "benchmarks/alfworld_agents.py",
        "env": ENV,
        "seed": p.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {"args": vars(args), "plan": asdict(p), "methods": SETTINGS},
        "timings": {"stages": stages, "total_s": round(sum(stages.values()), 1)},
        "provenance": {"software": software(), "git": git_state()},
        "splits": splits,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(record) + "\n")
    return path


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _number(x: float) -> float | int:
    """An int where the value is whole (a game's outcome, steps), to keep the record short."""
    return int(x) if float(x).is_integer() else round(x, 4)


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether tracked files differ from it (None without git).
    ``--no-optional-locks``: reading the state never writes git's index."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def dumps(value: Any, indent: str = "") -> str:
    """JSON with one key per line and short lists (a run's per-game outcomes and steps, flags)
    on one line, so a record reads and diffs well."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        flat = json.dumps(value, default=str)
        numbers = all(isinstance(x, (int, float)) or x is None for x in value)
        scalars = all(isinstance(x, (str, int, float)) or x is None for x in value)
        if numbers or (scalars and len(flat) <= 100):
            return flat
        items = [f"{inner}{dumps(v, inner)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return json.dumps(value, default=str)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/alfworld"))
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/alfworld"),
        help="alfworld-download folder (json_2.1.1/, or the train tarball)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-games", type=int, default=0,
        help="expert episodes of a seeded sample of N train_fit games (0: all 3,339)",
    )  # fmt: skip
    parser.add_argument(
        "--sample-games", type=int, default=200,
        help="sample the SFT policy on the first N of the expert games (0: all of them); the "
        "methods of step 4 train on their samples and their expert episodes",
    )  # fmt: skip
    parser.add_argument("--samples", type=int, default=4, help="SFT samples per sampled game")
    parser.add_argument(
        "--rl-epochs", type=int, default=1,
        help="epochs of OREO / rejection sampling / DPO (the paper's ALFWorld run: 3; 1 keeps "
        "a seed within 2 hours of a 2-core machine)",
    )  # fmt: skip
    parser.add_argument(
        "--sft-epochs", type=int, default=3,
        help="SFT passes over the experts (chosen on train_heldout: alfworld_sft_choice.py)",
    )  # fmt: skip
    parser.add_argument(
        "--acting-batch", type=int, default=64, help="episodes side by side when acting"
    )
    parser.add_argument("--eval-games", type=int, default=0, help="per split; 0: all")
    parser.add_argument("--max-episode-steps", type=int, default=40)
    parser.add_argument(
        "--ks", type=int, nargs="+", default=[2, 3, 4, 5],
        help="K of value-guided acting on valid_unseen (and --fast's games); K = 1 is greedy",
    )  # fmt: skip
    parser.add_argument(
        "--seen-ks", type=int, nargs="+", default=[3, 5],
        help="K of value-guided acting on valid_seen",
    )  # fmt: skip
    parser.add_argument(
        "--value-splits", nargs="+", choices=("valid_unseen", "valid_seen"),
        help="the splits of value-guided acting (default both; the paper's Fig. 4: unseen)",
    )  # fmt: skip
    parser.add_argument(
        "--acting", choices=("rank", "generate"), default="rank",
        help="rank: play the admissible action the policy finds most likely (K most likely for "
        "value-guided acting; sampled by likelihood at temperature 1); generate: write actions",
    )  # fmt: skip
    parser.add_argument(
        "--remind-task", action=argparse.BooleanOptionalAction, default=True,
        help="repeat the task's line after every observation (--remind-task of collect and "
        "rollout), in the expert episodes, the samples and every evaluation",
    )  # fmt: skip
    parser.add_argument(
        "--lanes", type=int, default=2,
        help="commands that do not depend on each other (the SFT policy's evaluations beside "
        "its samples, each split's evaluations) run N at a time, the cores shared out (1: one "
        "after the other, as seeds 0 and 1 ran)",
    )  # fmt: skip
    parser.add_argument("--fast", action="store_true", help="bundled games, tiny sizes")
    parser.add_argument(
        "--record", type=Path,
        help="the seed's record (default docs/results/alfworld/seed-N.json; --fast: "
        "OUT/seed-N.json)",
    )  # fmt: skip
    args = parser.parse_args()  # fmt: skip
    if args.lanes < 1:
        parser.error(f"--lanes must be at least 1, got {args.lanes}")
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.record or (args.out if args.fast else RECORDS) / f"seed-{args.seed}.json"
    p = plan(args)
    summary = evaluate(p, train_all(p))
    wall = round(time.perf_counter() - started, 1)
    (args.out / "summary.json").write_text(json.dumps({**summary, "wall_s": wall}, indent=2))
    (args.out / "summary.md").write_text(markdown(summary))
    print_summary(summary)
    plot(summary, args.out / "summary.png")
    print(f"\n{wall:.0f} s; {args.out / 'summary.json'}")
    print(f"record: {write_record(p, args, summary, record)}")


if __name__ == "__main__":
    main()
