"""A toy evaluation strategy registered from outside the library: shortest-of-K.

K sampled episodes a task, and the one with the fewest generated tokens is chosen (a length
heuristic that needs no value model). A `Strategy` subclass and one `register_strategy` call,
nothing else: `test_rollout` installs this module as an ``oreo.strategies`` plug-in and runs it
with ``oreo rollout --strategy shortest-of-k``.
"""

from __future__ import annotations

from oreo_agents.evaluation.strategies import Strategy, collect_records, register_strategy


class ShortestOfK(Strategy):
    def run(self, run):
        records, _episodes = collect_records(run, run.cfg.k, run.cfg.temperature)
        for r in records:
            r["chosen"] = min(range(len(r["samples"])), key=lambda i: r["samples"][i]["tokens"])
        return records


def register_strategies():
    register_strategy(ShortestOfK("shortest-of-k", "the shortest of K samples (a test plug-in)"))
