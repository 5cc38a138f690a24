"""The demo's overall time left (oreo_agents/recipes/eta.py), on a hand-driven clock."""

import pytest

from oreo_agents.recipes.eta import StageClock

EXPECTED = {"a": 10.0, "b": 20.0, "c": 30.0}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_before_any_stage_the_expected_times_are_the_estimate():
    clock = Clock()
    eta = StageClock(EXPECTED, clock)
    eta.start("a")
    assert eta.remaining() == 60.0
    clock.now = 4.0  # no progress reported: what is left of a at the expected pace
    assert eta.remaining() == 56.0


def test_a_machine_twice_as_slow_doubles_what_is_left_after_one_stage():
    clock = Clock()
    eta = StageClock(EXPECTED, clock)
    eta.start("a")
    clock.now = 20.0
    eta.start("b")
    assert eta.ratio() == 2.0
    assert eta.remaining() == 2 * 20 + 2 * 30


def test_the_current_stage_paces_itself_from_its_progress():
    clock = Clock()
    eta = StageClock(EXPECTED, clock)
    eta.start("a")
    eta.progress(0, 100)
    clock.now = 5.0
    eta.progress(50, 100)  # half of a in 5 s: as expected
    assert eta.ratio() == 1.0
    assert eta.remaining() == 5.0 + 20 + 30


def test_a_resumed_stage_paces_from_its_first_report_not_from_zero():
    clock = Clock()
    eta = StageClock(EXPECTED, clock)
    eta.start("a")
    eta.progress(80, 100)  # 80% was done before the restart
    clock.now = 2.0
    eta.progress(90, 100)  # 10% in 2 s: twice the expected 1 s
    assert eta.ratio() == pytest.approx(2.0)
    assert eta.remaining() == pytest.approx(2.0 + 2 * 50)
    clock.now = 4.0
    eta.start("b")  # a did 20% of its 10 s here, in 4 s
    assert eta.ratio() == pytest.approx(2.0)


def test_a_stage_that_was_already_done_is_not_timed_as_work():
    clock = Clock()
    eta = StageClock(EXPECTED, clock)
    eta.start("a")
    clock.now = 0.1  # resumed: nothing left to do, no progress reported
    eta.start("b")
    assert eta.ratio() == 1.0 and eta.remaining() == 50.0


def test_a_stage_without_an_expected_time_counts_as_the_mean():
    eta = StageClock(EXPECTED, Clock())
    eta.start("x")
    assert eta.remaining() == 60.0 + 20.0


def test_the_pace_blends_the_finished_stages_with_the_current_ones_progress():
    clock = Clock()
    eta = StageClock(EXPECTED, clock)
    eta.start("a")
    clock.now = 20.0  # a: twice its expected 10 s
    eta.start("b")
    eta.progress(0, 100)
    clock.now = 30.0
    eta.progress(50, 100)  # half of b's expected 20 s in 10 s: as expected
    assert eta.ratio() == pytest.approx((20 + 10) / (10 + 10))
    assert eta.remaining() == pytest.approx(10 + 1.5 * 30)
