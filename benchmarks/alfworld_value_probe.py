"""Does an agent's OREO value model rank its sampled episodes? Run by hand on a finished
``benchmarks/alfworld_agents.py`` folder (it prints a table and asserts nothing)::

    python benchmarks/alfworld_value_probe.py --run runs/alf0 --tasks 200

Value-guided acting (`oreo_agents.evaluation.acting`) can only beat greedy when the value of a
state after a candidate action says whether the episode will end well. This script reads the
OREO value model (``RUN/oreo/value``) on the SFT policy's samples (``RUN/samples``, the episodes
it was trained on: an in-sample check, the easiest one to pass) along each episode, at the
i-th action (i = 1..``--steps``), in three places:

- ``state``: before the action's first token (the state the action is chosen in);
- ``action``: before the action's last token (its closing newline or end-of-turn): all of its
  words are in, and the next token is an action token, so training fits V here. Value-guided
  acting reads a candidate here;
- ``after``: after the whole action. The next token is the env's reply, not an action, so
  training never fits V here (`oreo_agents.losses.oreo`).

``--likelihood`` reads, instead of a value model, the SFT policy's own log-likelihood of the
episode's actions so far (the ``logprob`` value form with weight 1 and no head). The samples were
drawn from that policy, and a sample that took unlikely actions fails more often, so this
reading ranks a game's samples without any training; but as a value for acting it picks the
candidate the policy finds most likely, which is greedy. A value model changes what acting picks
only where it ranks otherwise than this likelihood, so its AUROC is read against this row.
``--policy DIR`` reads another policy's likelihood instead (e.g. one trained further on the
expert episodes: a verifier that may know more than the policy that drew the samples).

``--targets`` adds what the value was fitted to at the ``action`` place: OREO's target
``R - beta * sum of log pi/pi_ref over the later action tokens`` (Eq. 7 of Wang et al. 2024;
``RUN/oreo/policy`` against ``RUN/sft/policy``, the reference), and the same for the
policy's sum alone. When the targets do not rank success either, the value model is
fitting them well and the objective, at this policy, is what does not rank.

For each it prints the within-task AUROC against the episode's success (pairs of samples of
the same game: what picking among one state's candidates needs; 0.5 is chance) and the overall
AUROC (all pairs: a model that only knows which games are hard scores here). Values are rounded
to 1e-4 first, so that float noise between sequences of different lengths does not break ties:
``state`` at the first action sees one prompt per game, and its within-game AUROC is 0.5.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

import torch

WHERE = ("state", "action", "after")
TARGETS = ("target", "kl part")


def main() -> None:
    from oreo_agents.data.episodes import load_episodes
    from oreo_agents.data.tokenization import action_spans, tokenize_episode
    from oreo_agents.losses.logprobs import token_logps
    from oreo_agents.losses.oreo import suffix_sum
    from oreo_agents.models.loading import load_causal_lm, load_tokenizer
    from oreo_agents.models.value import ValueModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a benchmarks/alfworld_agents.py --out")
    ap.add_argument("--value", type=Path, help="value model folder (default RUN/oreo/value)")
    ap.add_argument("--samples", type=Path, help="episode store (default RUN/samples)")
    ap.add_argument("--tasks", type=int, default=200, help="games to read (a seeded sample)")
    ap.add_argument("--steps", type=int, default=8, help="action indices to report")
    ap.add_argument("--max-length", type=int, default=2048, help="as training cut episodes")
    ap.add_argument("--targets", action="store_true", help="also OREO's targets (module doc)")
    ap.add_argument("--beta", type=float, default=0.03, help="OREO's beta (the paper's ALFWorld)")
    ap.add_argument(
        "--likelihood", action="store_true",
        help="read the SFT policy's own log-likelihood of the actions so far instead of a value "
        "model (module doc: the bar a value model must clear to change what acting picks)",
    )  # fmt: skip
    ap.add_argument(
        "--policy",
        type=Path,
        help="the policy whose likelihood --likelihood reads (default RUN/sft/policy)",
    )
    args = ap.parse_args()
    value_dir = args.value or args.run / "oreo" / "value"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(str(args.run / "sft" / "policy"))
    if args.likelihood:  # V = sum of log pi_SFT over the action tokens so far: w = 1, head 0
        value_dir = args.policy or args.run / "sft" / "policy"
        model = ValueModel.from_pretrained(str(value_dir), form="logprob").eval().to(device)
        with torch.no_grad():
            model.head.logprob_weight.fill_(1.0)
    else:
        model = ValueModel.from_pretrained(str(value_dir)).eval().to(device)
    if args.targets:  # the OREO policy and its reference, in float32 as training scored them
        lms = [
            load_causal_lm(str(args.run / name / "policy"), device=device, dtype=torch.float32)
            for name in ("oreo", "sft")
        ]
    episodes = load_episodes(args.samples or args.run / "samples")
    games = sorted({e.task_id for e in episodes})
    random.Random(0).shuffle(games)
    keep = set(games[: args.tasks])
    episodes = [e for e in episodes if e.task_id in keep]
    reads: dict = defaultdict(lambda: defaultdict(list))  # (where, i) -> game -> [(v, ok)]
    for e in episodes:
        item = tokenize_episode(e, tokenizer, max_length=args.max_length)
        ids = torch.tensor([item.input_ids], device=device)
        with torch.inference_mode():
            # as training reads them: the logprob form sums over action tokens only
            v = model(ids, None, torch.tensor([item.action_mask], device=device))[0].tolist()
            if args.targets:  # log pi/pi_ref of token t + 1, summed over later action tokens
                lp = [token_logps(lm(ids).logits[:, :-1].float(), ids[:, 1:])[0] for lm in lms]
                mask = torch.tensor(item.action_mask[1:], device=device)
                later = suffix_sum(lp[0] - lp[1], mask).tolist()  # from position t on
        for i, (first, last) in enumerate(action_spans(item.action_mask)[: args.steps]):
            for where, pos in zip(WHERE, (first - 1, last - 1, last), strict=True):
                reads[(where, i)][e.task_id].append((round(v[pos], 4), e.reward > 0))
            if args.targets:
                kl = -args.beta * later[last - 1]
                reads[("target", i)][e.task_id].append((e.reward + kl, e.reward > 0))
                reads[("kl part", i)][e.task_id].append((kl, e.reward > 0))
    wins = sum(e.reward > 0 for e in episodes)
    print(f"{value_dir}: {len(episodes)} episodes of {len(keep)} games, {wins} successful")
    print_table(reads, WHERE + (TARGETS if args.targets else ()), args.steps)


def print_table(reads: dict, columns: tuple[str, ...], steps: int) -> None:
    """The within-game / overall AUROC per action index and place, and each place's mean."""
    from oreo_agents.evaluation.metrics import value_auroc

    print("AUROC within game / overall, at the i-th action of each episode")
    print("| i | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    means: dict[str, list[float]] = defaultdict(list)
    for i in range(steps):
        cells = []
        for where in columns:
            games_ = reads[(where, i)].values()
            records = [{"samples": [{"value": v, "success": ok} for v, ok in g]} for g in games_]
            a = value_auroc(records)
            within = a.get("within_task", float("nan"))
            cells.append(f"{within:.2f} / {a.get('overall', float('nan')):.2f}")
            # before the first action every sample of a game is in one state: always 0.5
            if within == within and not (i == 0 and where == "state"):
                means[where].append(within)
        print(f"| {i + 1} | " + " | ".join(cells) + " |")
    cells = [f"{sum(means[w]) / len(means[w]):.2f}" if means[w] else "-" for w in columns]
    print("| mean within game (state: i >= 2) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
