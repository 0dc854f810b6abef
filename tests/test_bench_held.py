"""The bench's held runs: the rate a held ratio is quoted at, and the bracket it is
bounded by, come from runs that really held or really failed."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_run() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def point(rate: float, ceiling: float) -> dict[str, object]:
    """A run of a setup whose true held ceiling is `ceiling`."""
    answered = rate if rate <= ceiling else 0.8 * ceiling
    return {"offered_rate": rate, "commands_per_s": answered, "commands_completed": 1000,
            "errors": {}, "latency_ms": {"p99": 20.0 if rate <= ceiling else 900.0}}


def held(ceiling: float, rates: list[float], failed_above: float | None
         ) -> tuple[dict, list[str], list[float], list[float]]:
    bench = bench_run()
    offered: list[float] = []

    async def run(rate: float) -> dict[str, object]:
        offered.append(rate)
        return point(rate, ceiling)

    result, tried, bracket = asyncio.run(bench.held_down(run, rates, failed_above))
    return result, tried, bracket, offered


def test_a_held_rate_far_below_a_failed_one_is_tried_between_once() -> None:
    result, tried, bracket, offered = held(3_800, [4_500, 4_000, 3_500], None)
    assert offered == [4_500, 4_000, 3_500, 3_750]
    assert result["offered_rate"] == 3_750 and bracket == [3_750, 4_000]
    assert tried[-1] == "3750"


def test_a_failed_try_between_narrows_the_bracket_from_above() -> None:
    result, _, bracket, offered = held(3_600, [4_500, 4_000, 3_500], None)
    assert offered[-1] == 3_750 and result["offered_rate"] == 3_500
    assert bracket == [3_500, 3_750]


def test_the_sweeps_failed_rate_bounds_a_rate_held_at_once() -> None:
    result, _, bracket, offered = held(2_400, [2_000], failed_above=2_500)
    assert offered == [2_000, 2_250] and bracket == [2_250, 2_500]
    assert result["offered_rate"] == 2_250
    _, _, close, offered = held(2_050, [2_000], failed_above=2_100)
    assert offered == [2_000] and close == [2_000, 2_100]  # close enough: no try between


def test_the_try_between_is_never_a_rate_already_run() -> None:
    """Rates 50 apart: halfway rounds onto one of them; no second run of it, and never a
    bracket that quotes one rate as both held and failed."""
    for ceiling, rates in ((450, [500, 450]), (120, [150, 100]), (25, [30, 20])):
        _, _, bracket, offered = held(ceiling, rates, None)
        assert len(offered) == len(set(offered)), offered
        assert bracket[0] < bracket[1] and 0 not in offered


def test_nothing_held_gives_no_bracket() -> None:
    _, tried, bracket, _ = held(100, [2_000, 1_500], None)
    assert bracket == [] and all("p99" in t for t in tried)


def test_the_held_ratio_is_bounded_by_both_brackets() -> None:
    bench = bench_run()
    assert bench.held_ratio_bracket({"bracket_a": [3_500, 4_000],
                                     "bracket_b": [2_000, 2_250]}) == [0.5, 0.64]
