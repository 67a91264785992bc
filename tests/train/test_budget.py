"""Budgets: parsing, fitting the schedule, the learning-rate curve."""
from __future__ import annotations

import pytest

from fastvis.train.budget import fit_plan, lr_at, parse_duration


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("3h", 10800), ("1h30m", 5400),
                                          ("2.5h", 9000), ("45", 45), (" 1m 30s ", 90), ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "10x", "-5m", "0s", "3h extra", "m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_plan_fills_the_budget_without_overshooting():
    plan = fit_plan(budget=600, now=20, step_time=0.5, steps_per_epoch=100, eval_time=2.0, epoch_overhead=0.5,
                    final_reserve=5.0)
    assert plan.eval_every == 1  # 2 s of evaluation is under 10% of a 50 s epoch
    assert plan.est_seconds <= 600 * 0.97 + 1e-6
    assert plan.est_seconds > 600 * 0.9  # and uses most of it
    spent = 20 + plan.total_steps * 0.5 + plan.epochs * 2.5 + 5
    assert spent <= 600


def test_plan_spaces_out_expensive_evaluations():
    plan = fit_plan(budget=3600, now=0, step_time=0.01, steps_per_epoch=100, eval_time=5.0, epoch_overhead=0.0,
                    final_reserve=5.0)
    assert plan.eval_every == 50  # 5 s of evaluation against 1 s epochs: at most 10% of the time


def test_plan_when_out_of_time_keeps_one_step():
    plan = fit_plan(budget=10, now=20, step_time=1.0, steps_per_epoch=10, eval_time=1, epoch_overhead=0,
                    final_reserve=1, done_steps=7)
    assert plan.total_steps == 8


def test_lr_schedule():
    assert lr_at(0.0, 1.0, warmup=0.1) == pytest.approx(0.02)
    assert lr_at(0.05, 1.0, warmup=0.1) == pytest.approx(0.5)
    assert lr_at(0.1, 1.0, warmup=0.1) == pytest.approx(1.0)
    assert lr_at(0.55, 1.0, warmup=0.1) == pytest.approx(0.5)
    assert lr_at(1.0, 1.0, warmup=0.1) == pytest.approx(0.0)
    values = [lr_at(p / 100, 0.4) for p in range(101)]
    peak = values.index(max(values))
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))
