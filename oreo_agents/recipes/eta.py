"""The time left of a run made of known stages of very different lengths (`oreo demo`).

A stage's own pace says nothing about the next one: the demo's SFT is half of its time, a KTO
run a few seconds. So each stage has an expected length, measured once on a reference machine
(`oreo_agents.recipes.demo_times.expected_seconds`), and the run learns how much slower or faster
this machine is from the work it has done (the finished stages, and the current one's progress):
the time left is the expected time of what is left, scaled by that ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

# Progress through a stage below this share says too little about its pace.
MIN_SHARE = 0.05


class StageClock:
    """Tracks the stages of one run and estimates its time left.

    A resumed stage is not timed as work: its first progress report (how much was done before)
    is where its pace starts, and a stage that reports no progress and ends in under
    ``MIN_SHARE`` of its expected time had nothing left to do.

    Args:
        expected: Each stage's expected seconds on the reference machine, in run order. A
            stage not named here counts as the mean of the others.
        clock: Seconds, monotonic (tests pass their own).
    """

    def __init__(self, expected: Mapping[str, float], clock: Callable[[], float] = time.monotonic):
        self.expected = dict(expected)
        self.clock = clock
        # finished stages: (seconds here, expected seconds of the work done here)
        self.done: dict[str, tuple[float, float]] = {}
        self.current: str | None = None
        self.started = 0.0
        self.base: tuple[float, float] | None = None  # (share, time) at the first report
        self.share: float | None = None  # of the current stage, from its latest report

    def start(self, name: str) -> None:
        """``name`` starts; the stage before it, if any, has finished."""
        self.finish()
        self.current, self.started, self.base, self.share = name, self.clock(), None, None

    def progress(self, done: float, total: float | None) -> None:
        """How far the current stage is, in its own units."""
        if not total:
            return
        self.share = min(done / total, 1.0)
        if self.base is None:
            self.base = (self.share, self.clock())

    def finish(self) -> None:
        if self.current is None:
            return
        seconds = self.clock() - self.started
        expected = self._expected(self.current)
        if self.base is not None:
            work = expected * (1 - self.base[0])
        else:  # no progress reported: all of it, unless it ended at once (resumed, done)
            work = expected if seconds >= MIN_SHARE * expected else 0.0
        self.done[self.current] = (seconds, work)
        self.current = None

    def _expected(self, name: str) -> float:
        if name in self.expected:
            return self.expected[name]
        return sum(self.expected.values()) / max(len(self.expected), 1)

    def _pace(self) -> tuple[float, float] | None:
        """The current stage's (seconds since its first report, share done since), once that
        share says enough."""
        if self.base is None or self.share is None:
            return None
        share = self.share - self.base[0]
        return (self.clock() - self.base[1], share) if share >= MIN_SHARE else None

    def ratio(self) -> float:
        """Seconds here per expected second, over the work done so far: the finished stages'
        and the current stage's progress since its first report (1 before any)."""
        seconds = sum(s for s, work in self.done.values() if work > 0)
        work = sum(work for _, work in self.done.values())
        pace = self._pace()
        if pace is not None and self.current is not None:
            seconds += pace[0]
            work += pace[1] * self._expected(self.current)
        return seconds / work if work > 0 else 1.0

    def remaining(self) -> float:
        """Seconds left: the stages not started and what is left of the current one, at this
        machine's ratio."""
        ratio = self.ratio()
        later = [n for n in self.expected if n not in self.done and n != self.current]
        left = ratio * sum(self._expected(name) for name in later)
        if self.current is not None:
            pace = self._pace()
            if pace is not None:
                left += pace[0] / pace[1] * (1 - self.share)
            else:
                expected = ratio * self._expected(self.current)
                share = self.base[0] if self.base is not None else 0.0
                left += max(expected * (1 - share) - (self.clock() - self.started), 0.0)
        return left
