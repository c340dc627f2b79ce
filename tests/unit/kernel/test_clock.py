"""The kernel clocks: the wall clock and the manual ("test") clock."""

from __future__ import annotations

import time

import pytest

from hexcity.kernel import Clock, ManualClock, SystemClock


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(1000.0)
    assert clock.now() == 1000.0
    assert clock.now() == 1000.0  # time stands still
    assert clock.advance(2.5) == 1002.5
    assert clock.now() == 1002.5
    assert clock.advance(0) == 1002.5
    clock.set(1010.0)
    assert clock.now() == 1010.0
    clock.set(1010.0)  # same instant is allowed
    assert clock.now() == 1010.0


def test_manual_clock_never_goes_backwards() -> None:
    clock = ManualClock(50.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-0.001)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(49.999)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            clock.advance(bad)
        with pytest.raises(ValueError, match="finite"):
            clock.set(bad)
    with pytest.raises(ValueError, match="finite"):
        ManualClock(float("nan"))
    assert clock.now() == 50.0


def test_system_clock_is_the_wall_clock() -> None:
    before = time.time()
    now = SystemClock().now()
    assert before <= now <= time.time()


def test_both_are_clocks() -> None:
    assert isinstance(ManualClock(0.0), Clock)
    assert isinstance(SystemClock(), Clock)
    assert not isinstance(object(), Clock)
