"""How long each stage of `oreo demo` is expected to take: what its overall ETA starts from
(`oreo_agents.recipes.eta.StageClock`) before it learns this machine's pace."""

from __future__ import annotations

from oreo_agents.recipes.demo import CHAIN, DemoConfig, stage_names

# Each stage's seconds in `oreo demo` and `oreo demo --fast` (seed 0; report.json's timings_s)
# on the 2-core machine, alone, on 2026-12-06, with PPO's from docs/results.md (about 4.5
# minutes): what the demo's overall ETA starts from before it learns this machine's pace
# (`oreo_agents.recipes.eta`). `benchmarks/demo_eta.py` prints them anew and measures the ETA
# against the real time.
STAGE_SECONDS = {
    "build tiny model": 2.0, "collect gold": 1.1, "SFT": 132.7, "check SFT": 1.0,
    "collect from SFT": 13.5,
    "train oreo": 15.4, "train rft": 2.1, "train dpo": 9.1, "train kto": 13.2, "train rcrl": 25.0,
    "train orm": 6.7, "train ppo": 270.0, "eval sft": 0.7, "eval oreo-r0": 0.7, "eval rft-r0": 0.7,
    "eval dpo-r0": 0.7, "eval kto-r0": 0.7, "eval rcrl-r0": 0.7, "eval ppo": 0.7,
    "eval OREO + beam": 11.2, "eval OREO + value@K": 12.0, "eval SFT + ORM rerank": 3.1,
    "train verifier": 65.0, "train paper": 15.4, "eval paper-r0": 0.7,
    "eval OREO-paper + beam": 11.2, "eval OREO-paper + value@K": 12.0,
}  # fmt: skip
FAST_STAGE_SECONDS = {
    "build tiny model": 1.9, "collect gold": 0.1, "SFT": 2.2, "check SFT": 0.3,
    "collect from SFT": 1.1,
    "train oreo": 0.9, "train rft": 0.1, "train dpo": 0.2, "train kto": 0.7, "train rcrl": 0.4,
    "train orm": 0.4, "train ppo": 1.7, "eval sft": 0.1, "eval oreo-r0": 0.1, "eval rft-r0": 0.1,
    "eval dpo-r0": 0.1, "eval kto-r0": 0.1, "eval rcrl-r0": 0.1, "eval ppo": 0.1,
    "eval OREO + beam": 0.5, "eval OREO + value@K": 0.4, "eval SFT + ORM rerank": 0.9,
    "train verifier": 0.8, "train paper": 0.9, "eval paper-r0": 0.1,
    "eval OREO-paper + beam": 0.5, "eval OREO-paper + value@K": 0.4,
}  # fmt: skip


def expected_seconds(cfg: DemoConfig, names: list[str] | None = None) -> dict[str, float]:
    """The expected seconds of each stage of ``names`` (default: `stage_names`): the measured
    ones of the default demo (or of ``--fast``, for a config on another task), a later round's
    stage as its first round's, the evaluations scaled by the number of test tasks."""
    fast = cfg.env_options != CHAIN
    table, tasks = (FAST_STAGE_SECONDS, 32) if fast else (STAGE_SECONDS, 200)
    expected = {}
    for name in names or stage_names(cfg):
        words = name.split()
        if words[0] in ("collect", "train") and words[1].startswith("r") and words[1][1:].isdigit():
            base = "collect from SFT" if words[0] == "collect" else f"train {words[2]}"
        elif words[0] == "eval" and "-r" in name:
            base = f"{name.partition('-r')[0]}-r0"
        else:
            base = name
        seconds = table.get(base, sum(table.values()) / len(table))
        expected[name] = seconds * (cfg.test_tasks / tasks if words[0] == "eval" else 1.0)
    return expected
