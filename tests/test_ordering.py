"""One subscriber's messages are applied one at a time, in arrival order (ordering.py),
whatever the interleaving, and a message cancelled while it waits (a stopping gateway)
neither blocks the next ones nor runs."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.transport.ordering import KeyedOrder
from tests.attacks import tried

holders = st.lists(st.tuples(st.sampled_from("abc"),  # the key (a sender)
                             st.integers(0, 3),  # event-loop turns it holds the turn
                             st.booleans()),  # cancelled while it waits
                   min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(holders)
def test_holders_of_one_key_run_one_at_a_time_in_arrival_order(
        plan: list[tuple[str, int, bool]]) -> None:
    tried("one subscriber's messages one at a time, in order")

    async def run() -> None:
        order = KeyedOrder()
        inside: dict[str, int] = {}
        ran: dict[str, list[int]] = {}

        async def holder(number: int, key: str, turns: int) -> None:
            async with order.hold(key):
                inside[key] = inside.get(key, 0) + 1
                try:
                    assert inside[key] == 1, "two holders of one key at once"
                    ran.setdefault(key, []).append(number)
                    for _ in range(turns):
                        await asyncio.sleep(0)
                finally:  # also when cancelled while holding the turn
                    inside[key] -= 1

        tasks = []
        for number, (key, turns, _) in enumerate(plan):
            tasks.append(asyncio.create_task(holder(number, key, turns)))
            await asyncio.sleep(0)  # each asks in turn: the arrival order
        cancelled = {number for number, (_, _, cancel) in enumerate(plan) if cancel}
        for number in cancelled:
            tasks[number].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key, numbers in ran.items():
            assert numbers == sorted(numbers), f"{key}: out of order"
        for task in tasks:
            assert task.cancelled() or task.exception() is None
        finished = {n for n, task in enumerate(tasks) if not task.cancelled()}
        assert finished <= {n for numbers in ran.values() for n in numbers}
        assert not order._waiting, "a key still held after every holder left"
        # a later holder of every key gets its turn at once
        for key in "abc":
            await asyncio.wait_for(holder(-1, key, 0), 1)

    asyncio.run(run())
