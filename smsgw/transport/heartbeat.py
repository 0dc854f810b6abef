"""Gateway heartbeats: each running gateway reports itself to the store it shares.

Every HEARTBEAT_SECONDS a gateway writes its figures (binds and their state, message
rates, queues, errors by kind, its last messages with their texts masked) under its own
key, and its id in an index. The console and `GET /v1/status` read them: a gateway whose
last report is older than STALE_SECONDS has stopped reporting, and shows as down.

Keys: `gw:{<gateway id>}` (one JSON value a gateway, expiring a day after its last
report) and `gw:{index}` (a zset: gateway id -> time of its last report).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from smsgw.messages import Inbound, Outbound
from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from smsgw.transport.gateway import Gateway

log = get_logger("smsgw.transport.heartbeat")
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 10.0
KEEP_SECONDS = 24 * 3600
RECENT_MESSAGES = 50
CANCEL_AGAIN_SECONDS = 0.2
FINAL_BEAT_SECONDS = 1.0  # a stopping gateway does not wait longer for a store that is down
INDEX_KEY = "gw:{index}"


def gateway_key(gateway_id: str) -> str:
    return f"gw:{{{gateway_id}}}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class RecentTraffic:
    """The gateway's last messages, and how many went each way. Adding is a deque append;
    the (masked) texts are only made when a heartbeat is written."""

    def __init__(self) -> None:
        self.mo_total = 0
        self.mt_total = 0
        self._last: deque[tuple[float, str, str, Callable[[], str], str]] = deque(
            maxlen=RECENT_MESSAGES)

    # `loggable`: how the message log shows the text (its secrets masked); the gateway
    # passes the message log's own function, so both show the same
    def inbound(self, message: Inbound, loggable: Callable[[Inbound], str]) -> None:
        self.mo_total += 1
        self._last.append((time.time(), message.sender, message.to,
                           lambda: loggable(message), "in"))

    def outbound(self, reply: Outbound, loggable: Callable[[Outbound], str]) -> None:
        self.mt_total += 1
        self._last.append((time.time(), reply.sender, reply.to, lambda: loggable(reply),
                           "out"))

    def records(self) -> list[dict[str, str]]:
        return [{"ts": _iso(at), "from": sender, "to": to, "direction": direction,
                 "text": text()}
                for at, sender, to, text, direction in self._last]


@dataclass
class _Bind:
    name: str
    state: str
    since: float


class Heartbeat:
    def __init__(self, gateway: Gateway, interval: float | None = None) -> None:
        self._gateway = gateway
        self._store: Store = gateway.app.store
        self._interval = interval or HEARTBEAT_SECONDS
        cfg = gateway.app.settings.smsc
        self.host = socket.gethostname()
        self.id = f"{self.host}-{os.getpid()}-{secrets.token_hex(2)}"
        self.started = time.time()
        self._bind = _Bind(f"{cfg.system_id}@{cfg.host}:{cfg.port}", "connecting", self.started)
        self._counted = (self.started, 0, 0)

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self._interval)

    async def beat(self, stopped: bool = False) -> None:
        report = self.report(stopped)
        up = await self._store.ping()
        metrics.STORE_UP.set(int(up))
        metrics.BINDS_BOUND.set(int(report["binds"][0]["state"] == "bound"))
        if not up:
            return
        key = gateway_key(self.id)
        try:
            await self._store.plain(self._store.redis.set(
                key, json.dumps(report, ensure_ascii=False), ex=KEEP_SECONDS))
            await self._store.plain(self._store.redis.zadd(INDEX_KEY, {self.id: report["at"]}))
            await self._store.plain(self._store.redis.zremrangebyscore(
                INDEX_KEY, "-inf", report["at"] - KEEP_SECONDS))
        except StoreUnavailable as exc:
            log.warning("heartbeat not written: store unavailable", error=str(exc))

    def report(self, stopped: bool = False) -> dict[str, Any]:
        gateway = self._gateway
        at = time.time()
        state = "down" if stopped else "bound" if gateway.client.bound else "connecting"
        if state != self._bind.state:
            self._bind = _Bind(self._bind.name, state, at)
        traffic = gateway.recent
        then, mo_then, mt_then = self._counted
        elapsed = max(at - then, 1e-6)
        self._counted = (at, traffic.mo_total, traffic.mt_total)
        return {
            "id": self.id, "host": self.host, "started_at": _iso(self.started), "at": at,
            "binds": [{"name": self._bind.name, "state": state, "since": _iso(self._bind.since)}],
            "mo_per_s": round((traffic.mo_total - mo_then) / elapsed, 1),
            "mt_per_s": round((traffic.mt_total - mt_then) / elapsed, 1),
            "in_processing": gateway.client.inbound_in_flight,
            "replies_unsent": gateway.client.pending_submits,
            "outbox": gateway.outbox.holding,  # its replies in the outbox, not yet taken
            "errors": _errors(gateway),
            "recent": traffic.records(),
        }


@contextlib.asynccontextmanager
async def beating(gateway: Gateway) -> AsyncIterator[Heartbeat]:
    """Report while the block runs; on the way out, one last report: down."""
    heartbeat = Heartbeat(gateway)
    task = asyncio.create_task(heartbeat.run())
    try:
        yield heartbeat
    finally:
        await _cancelled(task)
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            await asyncio.wait_for(heartbeat.beat(stopped=True), FINAL_BEAT_SECONDS)


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel the heartbeat and wait for it to end. A cancel that lands inside a store
    call can be swallowed by the client (the beat then goes on to sleep): cancelled again
    until it ends, so a stopping gateway never waits on its heartbeat (a gateway told to
    stop right after binding hung there, its first beat in flight)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def _errors(gateway: Gateway) -> dict[str, int]:
    found = {kind: count for kind, count in gateway.client.stats.items()
             if kind != "binds" and count}
    for kind, count in (("store_down", _total(metrics.MESSAGES_IN, outcome="store_down")),
                        ("replies_refused", _total(metrics.MESSAGES_OUT, outcome="refused")),
                        ("uncertain_answers", _total(metrics.UNCERTAIN_ANSWERS))):
        if count:
            found[kind] = count
    return found


def _total(counter: Counter, **labels: str) -> int:
    """The sum of a counter's series whose labels include these (this process's)."""
    total = 0.0
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                    sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return int(total)


# -- reading ---------------------------------------------------------------------------

async def gateway_reports(store: Store) -> list[dict[str, Any]]:
    """Every gateway that reported within a day, as it last reported; one that stopped
    reporting with its binds down and its rates 0. Sorted by id."""
    redis = store.redis
    at = time.time()
    ids = await store.plain(redis.zrangebyscore(INDEX_KEY, at - KEEP_SECONDS, "+inf"))
    reports = []
    for gateway_id in sorted(ids):
        raw = await store.plain(redis.get(gateway_key(gateway_id)))
        if raw is None:
            continue
        report = json.loads(raw)
        if at - float(report.get("at", 0)) > STALE_SECONDS:
            last = _iso(float(report.get("at", 0)))
            for bind in report["binds"]:
                if bind["state"] != "down":
                    bind.update(state="down", since=last)
            report.update(mo_per_s=0.0, mt_per_s=0.0)
        reports.append(report)
    return reports


STATUS_FIELDS = ("id", "host", "started_at", "binds", "mo_per_s", "mt_per_s", "in_processing",
                 "replies_unsent", "outbox")


def status_document(version: str, store_ok: bool,
                    reports: list[dict[str, Any]]) -> dict[str, Any]:
    """`GET /v1/status` (interfaces.md), exactly in its shape."""
    return {"version": version, "store": {"ok": store_ok},
            "gateways": [{key: report[key] for key in STATUS_FIELDS} for report in reports]}
