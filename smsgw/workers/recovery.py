"""The journal recovery loop: on a Redis Cluster a transfer is journaled across slots,
and a gateway that crashed or stopped may leave one half-done. This finishes them: now
(a keyspace scan, which also finds journals from before the index) and then every
minute (by the journal index); services/transfer, `recover`."""

from __future__ import annotations

import asyncio

from smsgw.app import App
from smsgw.core.clock import now
from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.services.transfer.service import TransferService
from smsgw.store import StoreUnavailable

log = get_logger("smsgw.workers.recovery")
RECOVERY_INTERVAL_SECONDS = 60.0


def start_recovery(app: App) -> asyncio.Task[None] | None:
    """The loop as a task, where transfers are journaled (a cluster); else None."""
    if not app.store.single_slot:
        return None
    return asyncio.create_task(recover_forever(app.transfer))


async def recover_forever(transfer: TransferService,
                          interval: float = RECOVERY_INTERVAL_SECONDS) -> None:
    full = True  # the first pass scans: journals from before the index, too
    while True:
        try:
            counts = await transfer.recover(now(), full=full)
            full = False
        except StoreUnavailable as exc:
            log.warning("transfer recovery: store unavailable", error=str(exc))
        else:
            _report(counts)
        await asyncio.sleep(interval)


def _report(counts: dict[str, int]) -> None:
    for outcome in ("settled", "reversed"):
        metrics.TRANSFERS_RECOVERED.labels(outcome=outcome).inc(counts[outcome])
    finished = {kind: count for kind, count in counts.items() if kind != "young"}
    if finished:
        log.warning("transfer recovery finished transfers left half-done", **finished)
