"""How far a policy's own likelihood goes as a verifier: rerank a best-of-K report's samples by it.

Run by hand on the JSON report of ``oreo rollout --strategy best-of-k`` on ``oreo/Chain-v0``
(CPU, seconds; it prints a table and asserts nothing)::

    python benchmarks/likelihood_rerank.py --report best-of-16.json --policy runs/demo/sft/policy

Every sample is scored by the policy's summed token log-probability of its response and by its
least likely token (no training), and the table gives, beside the report's own scorer, the
within-task AUROC against success (`oreo_agents.evaluation.metrics.value_auroc`) and the success
of the highest-scored of the first k samples (value@k, `metrics.curves`). Issue 17 asks whether
a verifier can beat greedy; a likelihood ranker prefers the samples that agree with the
policy's most likely chain, which is greedy's, so it shows the part of the signal a value model
gets for free, and that this part alone only reaches greedy.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch


@torch.no_grad()
def likelihoods(report: dict, policy_path: str) -> list[list[tuple[float, float]]]:
    """Per task, per sample: (summed log-probability, least likely token's log-probability)."""
    import gymnasium
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import oreo_envs  # noqa: F401
    from oreo_agents.data.inputs import encode_prompt, encode_text
    from oreo_agents.losses import token_logps
    from oreo_agents.models.scorer import padded_batches

    env = gymnasium.make(report["env"], **report["config"]["env_options"]).unwrapped
    tokenizer = AutoTokenizer.from_pretrained(policy_path)
    policy = AutoModelForCausalLM.from_pretrained(policy_path).eval()
    seqs, spans, where = [], [], []
    for t, record in enumerate(report["records"]):
        prompt = encode_prompt(tokenizer, env.prompt(env.task(record["task_id"])))
        for s, sample in enumerate(record["samples"]):
            seqs.append(prompt + encode_text(tokenizer, sample["text"]))
            spans.append((len(prompt), len(seqs[-1])))
            where.append((t, s))
    out = [[(0.0, 0.0)] * len(r["samples"]) for r in report["records"]]
    for indices, ids, mask in padded_batches(seqs, 64, tokenizer):
        logps = token_logps(policy(input_ids=ids, attention_mask=mask).logits[:, :-1], ids[:, 1:])
        for row, i in enumerate(indices):
            start, end = spans[i]
            lp = logps[row, start - 1 : end - 1]
            t, s = where[i]
            out[t][s] = (lp.sum().item(), lp.min().item()) if len(lp) else (0.0, 0.0)
    return out


def rescored(report: dict, scores: list[list[float]]) -> dict:
    """The report's records with each sample's ``value`` replaced by ``scores`` (and the chosen
    sample by the best of them), for `metrics.curves` and `metrics.value_auroc`."""
    records = copy.deepcopy(report["records"])
    for record, task_scores in zip(records, scores, strict=True):
        for sample, score in zip(record["samples"], task_scores, strict=True):
            sample["value"] = score
        record["chosen"] = max(range(len(task_scores)), key=task_scores.__getitem__)
    return records


def main() -> None:
    from oreo_agents.evaluation.metrics import curves, value_auroc

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="a best-of-k rollout report")
    parser.add_argument("--policy", required=True, help="the policy whose likelihood ranks")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    if report["strategy"] != "best-of-k":
        raise SystemExit(f"{args.report} is a {report['strategy']!r} report, not best-of-k")
    pairs = likelihoods(report, args.policy)
    rows = {f"the report's scorer ({report['config'].get('scorer', 'value')})": report["records"]}
    rows["summed log-probability"] = rescored(report, [[p[0] for p in t] for t in pairs])
    rows["least likely token"] = rescored(report, [[p[1] for p in t] for t in pairs])
    ks = list(report["pass_at_k"])
    print(f"{args.report}: {len(report['records'])} tasks x {ks[-1]} samples; policy {args.policy}")
    print(f"pass@k {', '.join(f'{k}: {v:.3f}' for k, v in report['pass_at_k'].items())}")
    print(f"\n{'scorer':<34} {'AUROC':>6} " + " ".join(f"{'@' + k:>6}" for k in ks))
    for name, records in rows.items():
        auroc = value_auroc(records).get("within_task")
        at_k = curves(records, answers=True)["value_at_k"]
        cells = " ".join(f"{at_k[k]:>6.3f}" for k in ks)
        print(f"{name:<34} {'-' if auroc is None else f'{auroc:.3f}':>6} {cells}")


if __name__ == "__main__":
    main()
