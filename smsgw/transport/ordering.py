"""Per-subscriber arrival order: one subscriber's messages are applied one at a time, in
the order they arrived.

`KeyedOrder` does it inside one process. `SharedOrder` does it across several gateway
processes that share one store (each on its own bind; the SMSC spreads traffic over the
binds, so a subscriber's next message may reach another gateway while the first is still
being applied): a ticket queue per sender in the store (scripts order_*.lua), on top of
the in-process order. The order is that of arrival at the store, a few microseconds after
arrival on the wire; a gateway that dies holding the head is skipped when its lease ends.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from smsgw.core.backoff import Backoff
from smsgw.observability.logs import get_logger
from smsgw.store import Store, StoreUnavailable

log = get_logger("smsgw.transport.ordering")
LEASE_MS = 10_000
FIRST_POLL_SECONDS = 0.001
MAX_POLL_SECONDS = 0.05


class KeyedOrder:
    """Runs the holders of one key one at a time, in the order they asked (FIFO). A key
    nobody holds costs one dict entry while held: no lock, no future (the common case:
    a subscriber's messages rarely overlap)."""

    def __init__(self) -> None:
        # key -> the holders waiting behind the current one (present while held)
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def hold(self, key: str) -> _Turn:
        return _Turn(self, key)

    async def _enter(self, key: str) -> None:
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = deque()
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed the turn, then cancelled
                self._leave(key)
            elif turn in waiting:  # (a leaving holder may have dropped it already)
                waiting.remove(turn)
            raise

    def _leave(self, key: str) -> None:
        waiting = self._waiting[key]
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        del self._waiting[key]


class _Turn:
    __slots__ = ("_key", "_order")

    def __init__(self, order: KeyedOrder, key: str) -> None:
        self._order, self._key = order, key

    async def __aenter__(self) -> None:
        await self._order._enter(self._key)

    async def __aexit__(self, *_: object) -> None:
        self._order._leave(self._key)


class SharedOrder:
    """KeyedOrder across processes, through a ticket queue per sender in the store.

    The ticket is taken at once on arrival (not after this process's earlier messages of
    the same sender are done: that would let another gateway's later message in first);
    then the message waits for its turn, polling the queue's head, woken at once when a
    message of the same sender finishes here."""

    def __init__(self, store: Store, lease_ms: int = LEASE_MS) -> None:
        self._store = store
        self._lease_ms = lease_ms
        self._finished: dict[str, asyncio.Event] = {}  # woken when a holder here exits

    @asynccontextmanager
    async def hold(self, sender: str) -> AsyncIterator[None]:
        ticket = secrets.token_hex(8)
        try:
            head = await self._store.order_take(sender, ticket, self._lease_ms)
            await self._wait_turn(sender, ticket, head)
            try:
                yield
            finally:
                await self._leave(sender, ticket)
        finally:  # every exit wakes this sender's waiters here (and drops their event)
            finished = self._finished.pop(sender, None)
            if finished is not None:
                finished.set()

    async def _wait_turn(self, sender: str, ticket: str, head: str) -> None:
        polls = Backoff(FIRST_POLL_SECONDS, MAX_POLL_SECONDS)
        poll = polls.next_delay()
        while head not in (ticket, ""):
            finished = self._finished.setdefault(sender, asyncio.Event())
            try:
                await asyncio.wait_for(finished.wait(), poll)
            except TimeoutError:  # a holder in another process: poll, less and less often
                poll = polls.next_delay()
            head = await self._store.order_head(sender)

    async def _leave(self, sender: str, ticket: str) -> None:
        try:
            await self._store.order_leave(sender, ticket)
        except StoreUnavailable:
            log.warning("could not leave the order queue; the lease will end it")
