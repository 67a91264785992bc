"""Budgets: parsing, the controller that ends a run on time, the learning-rate curve."""
from __future__ import annotations

import pytest
import torch

from fastvis.train.budget import BudgetController, lr_at, parse_duration
from fastvis.train.ddp import World
from tests.helpers import FakeClock


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("3h", 10800), ("1h30m", 5400),
                                          ("2.5h", 9000), ("45", 45), (" 1m 30s ", 90), ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "10x", "-5m", "0s", "3h extra", "m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def controller(budget=100.0, **kw):
    clock = FakeClock()
    return BudgetController(budget, clock, World(), torch.device("cpu"), **kw), clock


def test_progress_runs_from_the_start_to_the_deadline():
    b, clock = controller(100.0, final_evals=1.0, ckpt_time=1.0)
    b.observe_eval(2.0)
    clock.tick(10)
    b.begin()
    assert b.reserve() == pytest.approx(2 + 1 + b.REPORT)
    assert b.deadline() == pytest.approx(99 - 6)
    assert b.progress() == 0
    clock.t = 10 + (93 - 10) / 2
    assert b.progress() == pytest.approx(0.5)
    clock.t = 93
    assert b.progress() == pytest.approx(1.0)


def test_slower_steps_reserve_more_time_for_the_end_and_progress_never_goes_back():
    b, clock = controller(100.0, final_evals=2.0, ckpt_time=0.5)  # e.g. the test split after a holdout
    b.observe_eval(2.0)
    b.begin()
    for _ in range(10):
        b.observe_step(0.1)  # the speed the evaluation was timed at
    clock.tick(40)
    before = b.progress()
    for _ in range(200):
        b.observe_step(0.3)  # three times slower now
    assert b.slowdown() == pytest.approx(3.0, rel=1e-3)
    assert b.reserve() == pytest.approx(2 * 2 * 3 + 0.5 + b.REPORT * 3, rel=1e-3)  # the report slows down too
    assert b.progress() >= before  # the deadline moved closer: progress jumps, never back
    b.observe_eval(6.0)  # measured at the new speed: no more scaling
    assert b.slowdown() == 1.0 and b.reserve() == pytest.approx(2 * 6 + 0.5 + b.REPORT * 3, rel=1e-3)


def test_evaluations_take_at_most_a_tenth_of_the_time_and_only_when_they_fit():
    b, clock = controller(1000.0)
    b.observe_eval(5.0)
    assert b.eval_every(epoch_seconds=1.0) == 50
    assert b.eval_every(epoch_seconds=100.0) == 1
    b.begin()
    assert b.room_for_eval()
    clock.t = b.deadline() - 4.0  # an evaluation takes 5 s: it would run past the deadline
    assert not b.room_for_eval()


def test_a_resumed_run_continues_its_schedule():
    b, clock = controller(100.0)
    b.observe_eval(1.0)
    clock.tick(50)
    b.begin(progress=0.6)
    assert b.progress() == pytest.approx(0.6)
    clock.t = b.deadline()
    assert b.progress() == pytest.approx(1.0)


def test_lr_schedule():
    assert lr_at(0.0, 1.0, warmup=0.1) == pytest.approx(0.02)
    assert lr_at(0.05, 1.0, warmup=0.1) == pytest.approx(0.5)
    assert lr_at(0.1, 1.0, warmup=0.1) == pytest.approx(1.0)
    assert lr_at(0.55, 1.0, warmup=0.1) == pytest.approx(0.5)
    assert lr_at(1.0, 1.0, warmup=0.1) == pytest.approx(0.0)
    values = [lr_at(p / 100, 0.4, warmup=0.05) for p in range(101)]
    peak = values.index(max(values))
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))


def test_the_speed_of_the_first_steps_is_told_once_without_the_warm_up_and_an_outlier():
    from fastvis.train import recipe

    skip, timed = recipe.get("replan_steps")
    b, _ = controller()
    told = []
    b.on_speed = told.append
    steps = [5.0] * skip + [1.0] * (timed - 1) + [9.0] + [3.0] * 50  # slow first steps, one busy step, then slower
    for k, seconds in enumerate(steps):
        b.observe_step(seconds)
        assert len(told) == (k >= skip + timed - 1)
    assert told == [1.0] and b.on_speed is None


def test_the_progress_bar_of_a_budgeted_run_shows_the_budget_s_own_time_left(tmp_path):
    from fastvis.train.recorder import Recorder

    b, clock = controller(100.0, final_evals=1.0, ckpt_time=1.0)
    b.observe_eval(2.0)
    b.begin()
    clock.t = 40.0
    rec = Recorder(tmp_path, main=True, progress=True)
    rec.open_bar(0, 50)
    rec.update_bar(10, 64, 4.0, 0.1, steps_left=10_000, budget=b)  # steps at the bar's own rate would say far more
    assert f"left={b.deadline() - 40:.0f}s," in rec.bar.postfix
    rec.update_bar(10, 64, 4.0, 0.1, steps_left=10_000)  # a run of fixed epochs: the steps left at the bar's rate
    assert f"left={b.deadline() - 40:.0f}s," not in rec.bar.postfix
    rec.close_bar()
