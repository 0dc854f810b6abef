"""The one backoff schedule: doubling to a ceiling, jitter within bounds, reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw.core.backoff import Backoff


def test_delays_double_up_to_the_ceiling_and_reset() -> None:
    backoff = Backoff(1.0, 8.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


@given(st.floats(0.001, 10), st.floats(1, 100), st.floats(0, 1))
def test_jittered_delays_stay_within_their_band(first: float, factor: float,
                                                jitter: float) -> None:
    backoff = Backoff(first, first * factor, jitter)
    plain = Backoff(first, first * factor)
    for _ in range(12):
        delay, nominal = backoff.next_delay(), plain.next_delay()
        assert nominal * (1 - jitter) - 1e-9 <= delay <= nominal + 1e-9


@pytest.mark.parametrize(("first", "ceiling", "jitter"), [(0, 1, 0), (2, 1, 0), (1, 2, 1.5)])
def test_a_schedule_that_cannot_work_is_refused(first: float, ceiling: float,
                                                jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(first, ceiling, jitter)
