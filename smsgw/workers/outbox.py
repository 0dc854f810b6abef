"""The outbox worker, one in every gateway (transport/outbox.py): renews this gateway's
lease, takes over the replies of gateways whose lease ran out (killed, cut off, or this
gateway's own predecessor) and sends them, drops those too late to send, and sets the
outbox gauges for /metrics.

A takeover pass reads every shard; it runs when a lease is found run out that no pass
has drained yet, and every SWEEP_SECONDS in any case (replies of owners never seen).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.store import StoreUnavailable
from smsgw.store.keys import OUTBOX_SHARDS
from smsgw.store.outbox import ClaimArgs, Waiting
from smsgw.transport.outbox import Held, Outbox

log = get_logger("smsgw.workers.outbox")
SWEEP_SECONDS = 30.0
CENSUS_SECONDS = 2.0
CLAIM_LIMIT = 500  # replies per shard per pass: a big backlog is sent in steps
Resend = Callable[[list[Held]], None]


class OutboxWorker:
    def __init__(self, outbox: Outbox, resend: Resend) -> None:
        self._outbox = outbox
        self._resend = resend
        lease = outbox.lease_seconds
        self.interval = max(0.1, min(1.0, lease / 4))
        self._renew_every = lease / 3
        self._renewed = float("-inf")
        self._census_at = float("-inf")
        self._swept = float("-inf")
        self._drained: set[str] = set()
        # shards whose last claim failed: it may have run, its answer lost, leaving rows
        # owned by this gateway that it does not have in hand (claimed again next pass)
        self._unsure: set[int] = set()

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except StoreUnavailable as exc:
                log.warning("outbox: store unavailable", error=str(exc))
            except Exception as exc:  # a damaged key, a bug: the next pass must still run
                log.error("outbox: a pass failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    async def once(self) -> int:
        """One pass; how many replies it took over."""
        moment = time.monotonic()
        if moment - self._renewed >= self._renew_every:
            await self._outbox.renew()
            self._renewed = moment
        still_mine = await self._outbox.recheck()
        if still_mine:
            self._resend(still_mine)
        taken = await self._take_over(moment)
        if moment - self._census_at >= CENSUS_SECONDS:
            await self.census()
            self._census_at = moment
        return taken

    async def _take_over(self, moment: float) -> int:
        now_ms = int(time.time() * 1000)
        leases = await self._outbox.rows.leases(now_ms)
        alive = {owner for owner, until in leases.items() if until > now_ms}
        alive.add(self._outbox.owner)
        dead = set(leases) - alive
        if (not (dead - self._drained) and not self._unsure
                and moment - self._swept < SWEEP_SECONDS):
            return 0
        self._swept = moment
        args = ClaimArgs(self._outbox.owner, " ".join(sorted(alive)), " ".join(sorted(dead)),
                         now_ms - int(self._outbox.lease_seconds * 2000), CLAIM_LIMIT)
        taken = 0
        for shard in range(OUTBOX_SHARDS):
            try:
                claimed = await self._claim(shard, args)
            except StoreUnavailable:
                raise
            except Exception as exc:  # e.g. WRONGTYPE: a key of this shard is damaged
                # (the claim fails on its first read, before any write); the other
                # shards are taken over all the same
                log.error("outbox: a shard cannot be claimed", shard=shard,
                          error=f"{type(exc).__name__}: {exc}")
                continue
            found = [held for waiting in claimed for held in self._restored(waiting)]
            taken += len(found)
            self._send(found)
        if taken == 0:
            self._drained |= dead
        else:
            log.warning("outbox: sending the replies of a gateway that stopped", replies=taken)
        return taken

    async def _claim(self, shard: int, args: ClaimArgs) -> list[Waiting]:
        """The rows taken over in one shard, less those this gateway has in hand."""
        try:
            claimed = await self._outbox.rows.claim(
                shard, args._replace(again=int(shard in self._unsure)))
        except StoreUnavailable:
            self._unsure.add(shard)
            raise
        self._unsure.discard(shard)
        return [waiting for waiting in claimed if not self._outbox.holds(waiting)]

    def _restored(self, waiting: Waiting) -> list[Held]:
        try:
            return self._outbox.restored(waiting)
        except ValueError as exc:  # kept as it is: care sees it in `smsgw admin outbox`
            log.error("outbox: a row taken over cannot be sent", error=str(exc),
                      row=waiting.reply_id, shard=waiting.shard)
            return []

    def _send(self, found: list[Held]) -> None:
        self._outbox.taken_over(found)
        moment = time.time()
        late = [held for held in found if held.expires <= moment]
        for held in late:
            self._outbox.expire(held)
        sendable = [held for held in found if held.expires > moment]
        metrics.OUTBOX_RESENT.inc(len(sendable))
        if sendable:
            self._resend(sendable)

    async def census(self) -> None:
        count, oldest_ms = await self._outbox.rows.census()
        metrics.OUTBOX_REPLIES.set(count)
        age = 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000)
        metrics.OUTBOX_OLDEST_SECONDS.set(round(age, 3))
