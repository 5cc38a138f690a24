"""Can a value model rank a problem's samples? Variants trained on the demo's SFT samples.

Run by hand on a finished ``oreo demo`` folder (it prints a table and asserts nothing)::

    python benchmarks/value_probe.py --demo runs/demo --out /tmp/value-probe.json

Issue 17 asks why OREO's value model ranks a problem's samples at chance (within-task AUROC
about 0.5), so value-guided search cannot beat greedy. This script takes the demo's samples of
the SFT policy on *train* tasks (``samples-r0``), holds out a fifth of the tasks (never the test
tasks), and scores each finished sample with:

- ``loglik``: the SFT policy's summed log-probability of the sample (no training: the signal the
  policy itself holds);
- ``probe L``: logistic regression on the frozen SFT's hidden state of layer L at the sample's
  last token (is correctness linearly readable there?);
- ``value ...``: a `ValueModel` (the class OREO trains) fitted by binary cross-entropy at every
  state of the response, with outcome targets (the sample's success at each state: a
  Monte-Carlo value) or dense targets (1 while no wrong line has been completed: the label a
  perfect step checker gives), from the SFT backbone or a fresh one, with the head's learning
  rate equal to the backbone's (OREO's setting today) or higher.

``--backbone DIR`` starts the value variants (and adds a log-likelihood row) from another LM on
the same tokenizer, e.g. a wider one fine-tuned on the same gold solutions
(``calibrate_chain.py --preset value-1m``): can a verifier that knows more arithmetic than the
policy rank the policy's samples? ``--samples DIR`` reads another store of the SFT policy's samples
on train tasks (e.g. 16 per task from ``oreo collect``) instead of the demo's ``samples-r0``.

For each it reports within-task AUROC (`oreo_agents.evaluation.metrics.value_auroc`) on the
training tasks and on the held-out tasks, against success and against "the chain is right"
(success with every line right), and the share of successes that hold a wrong line: when most
successes are right for a wrong reason, even a perfect step checker cannot rank by success.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Variant:
    """A value model fitted to the samples.

    Attributes:
        name: Row label.
        targets: "outcome" (success at every state), "dense" (no wrong line completed yet) or
            "control" (whether the last token's id is even: a label the last state shows, to
            check that the fitting itself works; scored against that label).
        fresh: A randomly initialised backbone of the SFT's shape instead of the SFT weights.
        lr: Backbone learning rate (AdamW, constant after a 5% warmup).
        head_lr: The head's learning rate.
        epochs: Passes over the training samples.
        cumulative: V(s_t) = sum over i <= t of head(h_i) (a sum of per-token terms, the shape
            of OREO's implicit value: V(s_t+1) - V(s_t) = beta log pi/pi_ref(a_t | s_t))
            instead of head(h_t): a wrong digit then needs to be seen only where it is written.
        logprob: V(s_t) = head(h_t) + w * (sum of the backbone LM's log-probabilities of the
            response tokens so far) + c * (their number), w and c learnt (from 0): a value whose
            increments read how surprising each token is to the backbone.
    """

    name: str
    targets: str = "outcome"
    fresh: bool = False
    lr: float = 3e-4
    head_lr: float = 3e-4
    epochs: int = 4
    cumulative: bool = False
    logprob: bool = False


VARIANTS = [
    Variant("value outcome, head lr = lr"),
    Variant("value outcome, head lr 1e-2", head_lr=1e-2),
    Variant("value dense, head lr = lr", targets="dense"),
    Variant("value dense, head lr 1e-2", targets="dense", head_lr=1e-2),
    Variant("value dense, fresh backbone", targets="dense", fresh=True, lr=1e-3, head_lr=1e-2),
    Variant("value dense, cumulative head", targets="dense", head_lr=1e-2, cumulative=True),
    Variant("value outcome, cumulative head", head_lr=1e-2, cumulative=True),
    Variant("value dense, 12 epochs, lr 1e-3", targets="dense", lr=1e-3, head_lr=1e-2, epochs=12),
    Variant("value outcome, logprob form", head_lr=1e-2, logprob=True),
    Variant("value dense, logprob form", targets="dense", head_lr=1e-2, logprob=True),
    Variant("control: even last token id", targets="control", head_lr=1e-2, epochs=1),
    Variant("control, 4 epochs", targets="control", head_lr=1e-2, epochs=4),
]


class CumulativeValue(torch.nn.Module):
    """A `ValueModel` whose value is the running sum of its head over the tokens so far."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask):
        terms = self.inner(input_ids, attention_mask) - self.inner.head.bias
        return (terms * attention_mask).cumsum(dim=1) + self.inner.head.bias


class LogprobValue(torch.nn.Module):
    """A causal LM as a value model: ``head(h_t) + w * sum logp + c * count`` over the response
    tokens up to t (``start``: the first response position of each row)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.head = torch.nn.Linear(lm.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        # w and c live on the head, so they train at the head's learning rate
        self.head.register_parameter("w", torch.nn.Parameter(torch.zeros(())))
        self.head.register_parameter("c", torch.nn.Parameter(torch.zeros(())))

    def forward(self, input_ids, attention_mask, start=None):
        from oreo_agents.losses import token_logps

        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        logp = token_logps(out.logits[:, :-1].float(), input_ids[:, 1:])  # of token t + 1
        pos = torch.arange(1, input_ids.shape[1], device=input_ids.device)
        keep = attention_mask[:, 1:].bool()
        if start is not None:
            keep = keep & (pos[None] >= start[:, None])
        terms = torch.where(keep, self.head.w * logp + self.head.c, torch.zeros_like(logp))
        total = torch.cat([torch.zeros_like(terms[:, :1]), terms.cumsum(dim=1)], dim=1)
        head = self.head.weight @ out.hidden_states[-1].float().transpose(1, 2)
        return head.squeeze(1) + self.head.bias + total


@dataclass
class Sample:
    task_id: str
    ids: list[int]  # prompt then response ids, as collected
    prompt_len: int
    success: bool
    chain_right: bool  # success with every line right
    dense: list[float]  # per response position: 1 while no wrong line has been completed

    @property
    def control(self) -> bool:
        return self.ids[-1] % 2 == 0


def load_samples(demo: Path, store: Path | None = None) -> list[Sample]:
    """The demo's SFT samples on train tasks (or those of ``store``), labelled per line with the
    gold solutions."""
    from oreo_agents.data.episodes import load_episodes
    from oreo_envs.chain_env import ChainEnv, line_labels

    config = json.loads((demo / "report.json").read_text())["config"]
    size = max(config["train_tasks"], config["rl_tasks"])
    env = ChainEnv(**{"size": size, **config["env_options"], "split": "train"})  # the demo's
    samples, skipped = [], 0
    for e in load_episodes(store or demo / "samples-r0"):
        (step,) = e.steps
        text, ids = step["action"], list(step["action_ids"])
        if len(text) != len(ids):  # one id per character: the demo's tokenizer
            skipped += 1  # (a response cut inside a character, or not that tokenizer)
            continue
        labels = line_labels(text, env.task(e.task_id).solution)
        dense, ok, line, current = [], 1.0, 0, ""
        for ch in text:  # a line's label applies from its newline on
            if ch == "\n":
                if current.strip() and not current.strip().startswith("####"):
                    ok = ok if line >= len(labels) or labels[line] else 0.0
                    line += 1
                current = ""
            else:
                current += ch
            dense.append(ok)
        right = bool(e.success) and all(labels)
        prompt = list(e.prompt_ids)
        samples.append(Sample(e.task_id, prompt + ids, len(prompt), bool(e.success), right, dense))
    if skipped:
        print(f"skipped {skipped} samples whose ids are not one per character")
    return samples


def batches(samples: list[Sample], size: int, rng: random.Random | None = None):
    """``(indices, ids, mask)``: right-padded batches as the scorers make them, in a shuffled
    order when ``rng`` is given (training), else sorted by length (scoring)."""
    from types import SimpleNamespace

    from oreo_agents.models.scorer import padded_batches

    order = list(range(len(samples)))
    if rng is None:
        groups = [order]
    else:
        rng.shuffle(order)
        groups = [order[i : i + size] for i in range(0, len(order), size)]
    pad = SimpleNamespace(pad_token_id=0)  # the mask hides padding; any id will do
    for group in groups:
        for rows, ids, mask in padded_batches([samples[i].ids for i in group], size, pad):
            yield [group[r] for r in rows], ids, mask


def auroc(samples: list[Sample], scores: list[float], key: str) -> float | None:
    from oreo_agents.evaluation.metrics import value_auroc

    by_task: dict[str, list[dict[str, Any]]] = {}
    for s, v in zip(samples, scores, strict=True):
        by_task.setdefault(s.task_id, []).append({"value": v, "success": getattr(s, key)})
    return value_auroc([{"samples": x} for x in by_task.values()]).get("within_task")


@torch.no_grad()
def loglik_scores(policy, samples: list[Sample]) -> list[float]:
    from oreo_agents.losses import token_logps

    out = [0.0] * len(samples)
    for indices, ids, mask in batches(samples, 64):
        logits = policy(input_ids=ids, attention_mask=mask).logits[:, :-1]
        logps = token_logps(logits, ids[:, 1:])
        for row, i in enumerate(indices):
            s = samples[i]
            out[i] = logps[row, s.prompt_len - 1 : len(s.ids) - 1].sum().item()
    return out


@torch.no_grad()
def last_hidden(policy, samples: list[Sample]) -> torch.Tensor:
    """[N, layers + 1, H]: every layer's hidden state at each sample's last token."""
    rows: list[torch.Tensor] = [torch.empty(0)] * len(samples)
    for indices, ids, mask in batches(samples, 64):
        hidden = policy(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        for row, i in enumerate(indices):
            last = len(samples[i].ids) - 1
            rows[i] = torch.stack([h[row, last] for h in hidden.hidden_states])
    return torch.stack(rows)


def probe_scores(features: torch.Tensor, train: list[int], labels: torch.Tensor) -> list[float]:
    """Logistic regression (standardised features, L2 1e-3, 500 Adam steps) fitted on ``train``."""
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    x = (features - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    for _ in range(500):
        logits = x[train] @ w + b
        loss = F.binary_cross_entropy_with_logits(logits, labels[train]) + 1e-3 * w.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (x @ w + b).detach().tolist()


def fit_value(backbone_dir: Path, train: list[Sample], v: Variant, seed: int, batch: int = 32):
    """A `ValueModel` fitted by BCE at the states before every response token and at the end."""
    from transformers import AutoConfig, AutoModel

    from oreo_agents.models.value import ValueModel

    torch.manual_seed(seed)
    if v.logprob:
        from transformers import AutoModelForCausalLM

        model = LogprobValue(AutoModelForCausalLM.from_pretrained(backbone_dir))
    elif v.fresh:
        backbone = AutoModel.from_config(AutoConfig.from_pretrained(backbone_dir))
        model = ValueModel(backbone)
    else:
        model = ValueModel.from_pretrained(backbone_dir)
    head = model.head
    if v.cumulative:
        model = CumulativeValue(model)
    groups = [
        {"params": [p for p in model.parameters() if all(p is not q for q in head.parameters())],
         "lr": v.lr},
        {"params": list(head.parameters()), "lr": v.head_lr},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    total = v.epochs * -(-len(train) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / (0.05 * total)))
    rng = random.Random(seed)
    model.train()
    for _ in range(v.epochs):
        for indices, ids, mask in batches(train, batch, rng):
            values = _values(model, ids, mask, [train[i] for i in indices])
            target = torch.zeros_like(values)
            weight = torch.zeros_like(values)
            for row, s in enumerate(train[i] for i in indices):
                start, end = s.prompt_len - 1, len(s.ids)  # states before each token, and the end
                if v.targets == "dense":
                    labels = [1.0, *s.dense]  # before the first response token nothing is wrong
                elif v.targets == "control":
                    labels = [float(s.control)] * (end - start)
                else:
                    labels = [float(s.success)] * (end - start)
                target[row, start:end] = torch.tensor(labels[: end - start])
                weight[row, start:end] = 1.0
            loss = F.binary_cross_entropy_with_logits(values, target, weight, reduction="sum")
            loss = loss / weight.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def _values(model, ids, mask, rows: list[Sample]):
    if isinstance(model, LogprobValue):
        return model(ids, mask, torch.tensor([s.prompt_len for s in rows]))
    return model(ids, mask)


@torch.no_grad()
def value_scores(model, samples: list[Sample]) -> list[float]:
    out = [0.0] * len(samples)
    for indices, ids, mask in batches(samples, 64):
        values = _values(model, ids, mask, [samples[i] for i in indices])
        for row, i in enumerate(indices):
            out[i] = values[row, len(samples[i].ids) - 1].item()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="a finished oreo demo folder")
    parser.add_argument("--out", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", type=float, default=0.2, help="share of tasks held out")
    parser.add_argument("--only", nargs="*", help="run only the value variants with these names")
    parser.add_argument("--backbone", type=Path,
                        help="start the value variants from this LM (default: the demo's SFT)")
    parser.add_argument("--samples", type=Path,
                        help="the SFT policy's samples on train tasks (default: DEMO/samples-r0)")
    parser.add_argument("--no-probes", action="store_true",
                        help="skip the frozen-layer logistic probes")  # fmt: skip
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    from transformers import AutoModelForCausalLM

    samples = load_samples(args.demo, args.samples)
    tasks = sorted({s.task_id for s in samples})
    random.Random(args.seed).shuffle(tasks)
    held = set(tasks[: int(len(tasks) * args.held_out)])
    train_idx = [i for i, s in enumerate(samples) if s.task_id not in held]
    test_idx = [i for i, s in enumerate(samples) if s.task_id in held]
    train = [samples[i] for i in train_idx]
    successes = [s for s in samples if s.success]
    print(f"{len(samples)} samples of {len(tasks)} train tasks ({len(held)} held out); "
          f"success {len(successes) / len(samples):.1%}; successes with a wrong line "
          f"{sum(not s.chain_right for s in successes) / max(1, len(successes)):.1%}")  # fmt: skip

    rows = []

    def row(name: str, scores: list[float], seconds: float, keys=("success", "chain_right")):
        r = {"variant": name, "seconds": round(seconds, 1)}
        for part, idx in (("train", train_idx), ("held_out", test_idx)):
            sub = [samples[i] for i in idx]
            sc = [scores[i] for i in idx]
            for key in keys:
                r[f"{part}_auroc_{key}"] = auroc(sub, sc, key)
        rows.append(r)
        print(f"{name:<34} " + "  ".join(
            f"{k}={v:.3f}" for k, v in r.items() if "auroc" in k and v is not None
        ), flush=True)  # fmt: skip

    policy_dir = args.demo / "sft" / "policy"
    policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).eval()
    start = time.time()
    row("loglik (SFT policy)", loglik_scores(policy, samples), time.time() - start)
    backbone_dir, suffix = policy_dir, ""
    if args.backbone:
        backbone_dir, suffix = args.backbone, " [--backbone]"
        lm = AutoModelForCausalLM.from_pretrained(backbone_dir, dtype=torch.float32).eval()
        start = time.time()
        row(f"loglik{suffix}", loglik_scores(lm, samples), time.time() - start)
    if not args.no_probes:
        start = time.time()
        features = last_hidden(policy, samples)
        labels = torch.tensor([float(s.success) for s in samples])
        for layer in range(features.shape[1]):
            scores = probe_scores(features[:, layer], train_idx, labels)
            row(f"probe layer {layer} (frozen SFT)", scores, time.time() - start)
    for v in VARIANTS:
        if args.only and v.name not in args.only:
            continue
        start = time.time()
        model = fit_value(backbone_dir, train, v, args.seed)
        keys = ("control",) if v.targets == "control" else ("success", "chain_right")
        row(v.name + suffix, value_scores(model, samples), time.time() - start, keys)
    if args.out:
        record = {"demo": str(args.demo), "backbone": str(backbone_dir), "rows": rows}
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
