"""How long each stage of `oreo demo` is expected to take: what its overall ETA starts from
(`oreo_agents.recipes.eta.StageClock`) before it learns this machine's pace."""

from __future__ import annotations

from oreo_agents.recipes.demo import CHAIN, DemoConfig, stage_names

# Each stage's seconds in `oreo demo` (seed 14; rft and dpo from seed 11, which trained them on
# more samples) and `oreo demo --fast` (seed 0) from report.json's timings_s, on the 2-core
# machine, alone, on 2026-12-06, with PPO's from docs/results.md (about 4.5
# minutes): what the demo's overall ETA starts from before it learns this machine's pace
# (`oreo_agents.recipes.eta`). `benchmarks/demo_eta.py` prints them anew and measures the ETA
# against the real time.
STAGE_SECONDS = {
    "build tiny model": 2.4, "collect gold": 1.4, "SFT": 145.1, "check SFT": 0.5,
    "train verifier": 73.1, "collect from SFT": 18.1,
    "train oreo": 17.8, "train paper": 17.0, "train rft": 3.4, "train dpo": 9.1, "train kto": 14.6,
    "train rcrl": 31.1, "train orm": 7.8, "train ppo": 270.0, "eval sft": 0.9, "eval oreo-r0": 0.9,
    "eval paper-r0": 0.9, "eval rft-r0": 0.9, "eval dpo-r0": 1.1, "eval kto-r0": 0.9,
    "eval rcrl-r0": 0.9, "eval ppo": 0.9, "eval OREO + beam": 33.4, "eval OREO + value@K": 16.0,
    "eval OREO-paper + beam": 30.6, "eval OREO-paper + value@K": 16.1,
    "eval SFT + ORM rerank": 4.2,
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
