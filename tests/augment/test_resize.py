"""Resizing a batch and the progressive-resizing schedule (the trainer's use of it:
tests/train/test_progressive_resize.py)."""
from __future__ import annotations

import pytest
import torch

from fastvis.augment import mean_area, progressive_side, resize
from fastvis.augment.resize import parse_ramp


def test_the_side_stays_low_until_the_ramp_grows_by_eighths_and_ends_whole():
    ramp = (0.5, 0.85)
    sides = [progressive_side(k / 100, 32, 0.75, ramp) for k in range(101)]
    assert sides[:51] == [24] * 51  # 0.75 of 32 until the ramp starts
    assert sides[85:] == [32] * 16  # the whole side from the ramp's end
    assert sides == sorted(sides) and set(sides) == {24, 28, 32}  # growing, in steps of 32 / 8
    assert progressive_side(0.7, 32, 0.75, ramp) == 28  # 24 + 8 * 0.57 = 28.6, rounded down to a step
    assert progressive_side(0.0, 32, 1.0, ramp) == 32  # F = 1: off
    assert progressive_side(0.0, 32, 0.1, ramp) == 4  # never below one step
    assert progressive_side(0.3, 64, 0.5, (0.0, 0.0)) == 64  # an empty ramp: whole from the start


def test_the_mean_area_is_the_share_of_pixels_a_run_handles():
    assert mean_area(32, 1.0, (0.5, 0.85)) == 1.0
    assert mean_area(32, 0.5, (1.0, 1.0)) == pytest.approx(0.25)  # low all the way
    a = mean_area(32, 0.75, (0.5, 0.85))
    assert 0.5 * 0.5625 + 0.15 < a < 0.5625 * 0.5 + 0.5  # half at (24/32)^2, the last 15% whole, a ramp between


def test_resize_keeps_the_memory_format_and_averages_when_it_shrinks():
    x = torch.zeros(2, 3, 16, 16)
    x[..., ::2, ::2] = 1.0  # a fine pattern: a subsampling would see all ones or all zeros
    x = x.contiguous(memory_format=torch.channels_last)
    y = resize(x, 8)
    assert y.shape == (2, 3, 8, 8) and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 0.25), atol=0.05)
    assert resize(x, (16, 16)) is x
    assert resize(torch.ones(1, 1, 9, 12), (6, 8)).shape == (1, 1, 6, 8)
    with pytest.raises(ValueError, match="at least 1"):
        resize(x, 0)


@pytest.mark.parametrize("text", ["0.5", "0.9,0.5", "a,b", "0.5,1.5"])
def test_a_ramp_that_is_not_two_growing_shares_is_refused(text):
    with pytest.raises(ValueError, match="START,END"):
        parse_ramp(text)
