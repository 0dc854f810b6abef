"""The load test engine (`smsgw loadtest`, bench/run.py, tests): drive a gateway through the
fake SMSC at a target rate, and measure.

Open loop: MOs are injected on schedule whatever the gateway does, for a bounded time.
Each MO is matched to its replies: the sender's reply FIFO per sender, and a transfer's
second reply (to the recipient) by the reference both confirmations carry. Latency runs
from injecting an MO to its last reply. Loopback only, bounded in time and count.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError

from smsgw import admin
from smsgw.config import Settings, SmscSettings
from smsgw.core.clock import now
from smsgw.core.hashing import Hasher
from smsgw.core.records import record
from smsgw.core.text import canonical_msisdn, to_persian_digits
from smsgw.services.otp.cards import with_luhn
from smsgw.store import Store, SubscriberRow, audit
from smsgw.store.keys import subscriber_key
from smsgw.testing import free_port
from smsgw.transport.smpp.client import Receipt, SmppClient, WireMessage
from smsgw.transport.smpp.fake_smsc import DRIVER_SYSTEM_ID, FakeSmsc, Mt
from smsgw.transport.smpp.pdu import ESME_ROK

if TYPE_CHECKING:
    from smsgw.app import App
    from smsgw.services.registry import LoadKind
    from smsgw.transport.gateway import Gateway

POPULATION_BASE = 9369000000  # synthetic subscribers: 0936 900 0000 and up
START_BALANCE = 10_000_000
CARD_HOLDER_EVERY = 10  # one subscriber in so many holds a card (the OTP requests)
CARDS_AT_ONCE = 500
DEFAULT_MIX = "transfer=78,wrong_pin=4,bad_format=4,limit=4,pin_change=4,otp=4,enquiry=2"
NATIONAL_NUMBER = re.compile(r"[0۰][0-9۰-۹]{10}")  # as replies show numbers: 0935…, ۰۹۳۵…
# the sender's confirmation, fa and en: every marker of one set in the text (the Persian
# "insufficient" refusal names the fee too, but nothing was done)
SENDER_CONFIRMATION = (("کارمزد", "انجام شد"), ("Fee ", "Sent "))
CAP_REFUSAL = ("سقف انتقال", "limit is")  # the daily or monthly cap's refusal, fa and en
MAX_OUTSTANDING = 50_000
TRANSFER_SHORT_CODE = "1112"
DRAIN_SECONDS = 10.0
# deliver_sm the fake SMSC has out unanswered on a bind, as a real SMSC's window (tens to
# a few hundred; peers.md drove Kannel at 200): a wider one lets the gateway batch more
# per event-loop turn than any operator's SMSC would let it
SMSC_WINDOW = 200
SETTLE_SECONDS = 30.0
FREE_TRIES = 8


def parse_mix(text: str) -> dict[str, float]:
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        kinds = load_kinds()
        if name not in kinds:
            raise ValueError(f"unknown kind {name!r} in --mix (kinds: {', '.join(kinds)})")
        try:
            shares[name] = float(value)
        except ValueError:
            raise ValueError(f"--mix share for {name} is not a number: {value!r}") from None
        if shares[name] < 0:
            raise ValueError(f"--mix share for {name} is negative")
    if sum(shares.values()) <= 0:
        raise ValueError("--mix needs at least one positive share")
    return shares


def synthetic(index: int) -> str:
    return f"98{POPULATION_BASE + index}"


def in_population(key: str | bytes, size: int) -> bool:
    """Whether a subscriber key (`s:{98...}...`) is one of synthetic subscribers
    0..size-1: the pattern's prefix also matches numbers past them."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    number = text[3:text.find("}")] if text.startswith("s:{") else ""
    # ASCII digits only: int() also reads Persian and other digits, which no stored number has
    if not (number.isascii() and number.isdigit() and number.startswith("98")):
        return False
    return 0 <= int(number[2:]) - POPULATION_BASE < size


def population_pattern(size: int) -> str:
    """A key pattern that covers every key of synthetic subscribers 0..size-1 (being a
    prefix, others too: `in_population` tells them apart)."""
    first, last = synthetic(0), synthetic(max(size, 1) - 1)
    same = next((i for i, (a, b) in enumerate(zip(first, last, strict=True)) if a != b),
                len(first))
    return "s:{" + first[:same] + "*"


@dataclass
class Population:
    senders: list[str]  # good senders (the right PIN)
    victims: list[str]  # wrong-PIN senders (they get blocked; kept apart)
    card_holders: list[str]


@dataclass
class _Awaiting:
    """An injected command, until its replies come."""

    injected: float
    kind: str
    recipient: str = ""  # of a transfer: its confirmation to the recipient completes it


@dataclass
class Results:
    offered_rate: float
    duration: float
    mo_sent: int = 0
    mt_received: int = 0
    completed: int = 0
    confirmed_transfers: int = 0  # transfers whose sender was told they went through
    latencies: list[float] = field(default_factory=list)
    due_seconds: list[float] = field(default_factory=list)  # of each latency: when it was due
    started: float = 0.0  # monotonic, when the run began (0: a tracker used on its own)
    errors: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    money_conserved: bool | None = None
    # the fees collected rose by the fee of each transfer confirmed: confirmed transfers
    # moved money (conservation alone also holds for a gateway that moves nothing)
    fees_as_confirmed: bool | None = None
    gateway_rss_kb: dict[str, int] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # by process group
    gateway_rss_samples_kb: list[int] = field(default_factory=list)  # each tenth of the run
    active_seconds: float = 0.0
    last_completion: float = 0.0

    @property
    def overloaded(self) -> bool:
        """Commands were left unanswered, or not even sent: the rate was beyond the
        gateway's (the figures then describe an overload, not a sustained rate)."""
        return bool(self.errors["unanswered"] or self.errors["not_sent_backlog"])

    def percentile(self, share: float) -> float:
        return _percentile_ms(self.latencies, share) if self.latencies else 0.0

    def p99_by_second(self) -> list[float | None]:
        """The p99 latency (ms) of the commands due in each second of the run, in order;
        None for a second with none answered. A queue that grows shows as a rising line,
        a stall (a fork of Redis, a collection) as one or two high seconds."""
        by_second: dict[int, list[float]] = {}
        for due, latency in zip(self.due_seconds, self.latencies, strict=True):
            by_second.setdefault(max(0, int(due)), []).append(latency)
        seconds = max(by_second, default=-1) + 1
        return [round(_percentile_ms(by_second[second], 0.99), 1) if second in by_second
                else None for second in range(seconds)]

    def as_json(self) -> dict[str, Any]:
        return {
            "offered_rate": self.offered_rate,
            "duration_s": self.duration,
            "mo_sent": self.mo_sent,
            "mt_received": self.mt_received,
            "commands_completed": self.completed,
            "commands_per_s": round(self.completed / self.active_seconds, 1)
            if self.active_seconds else 0.0,
            "latency_ms": {"p50": round(self.percentile(0.50), 2),
                           "p95": round(self.percentile(0.95), 2),
                           "p99": round(self.percentile(0.99), 2),
                           "max": round(max(self.latencies, default=0) * 1000, 2)},
            "p99_ms_by_second": self.p99_by_second(),
            "errors": dict(self.errors),
            "sent_by_kind": dict(self.by_kind),
            "overloaded": self.overloaded,
            "money_conserved": self.money_conserved,
            "confirmed_transfers": self.confirmed_transfers,
            "fees_as_confirmed": self.fees_as_confirmed,
            "cpu_us_per_command": {group: round(seconds * 1e6 / self.completed, 1)
                                   for group, seconds in self.cpu_seconds.items()}
            if self.completed else {},
            "gateway_rss_kb": self.gateway_rss_kb,
            "gateway_rss_samples_kb": self.gateway_rss_samples_kb,
        }


def _percentile_ms(latencies: list[float], share: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


K = TypeVar("K")
T = TypeVar("T")


def _take_first(queues: dict[K, deque[T]], key: K) -> T | None:
    """The oldest item queued under `key`; an emptied queue is dropped, so that a long run
    does not keep one empty deque per sender or pair of numbers: the driver's full garbage
    collections walked them (62,000 after 60 s at 1,600/s over 100,000 subscribers, a
    pause of up to 42 ms every ~12 s that showed as the gateway's latency)."""
    queue = queues.get(key)
    if not queue:
        return None
    item = queue.popleft()
    if not queue:
        del queues[key]
    return item


class Tracker:
    """Matches MTs to MOs and keeps the latency of every completed command.

    A subscriber's replies come in the order of their commands, so the sender's reply
    answers the oldest command of that sender. A transfer is complete with its second MT,
    the recipient's confirmation, known by the pair of numbers it names (sender first).
    """

    def __init__(self, results: Results) -> None:
        self.results = results
        self.pending: defaultdict[str, deque[_Awaiting]] = defaultdict(deque)
        # (sender, recipient) -> transfers confirmed to the sender, awaiting the recipient's
        self._awaiting_recipient: defaultdict[tuple[str, str], deque[_Awaiting]] = \
            defaultdict(deque)
        # (sender, recipient) -> recipient's confirmations that came first
        self._early_recipient: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.outstanding = 0

    def sent(self, sender: str, kind: str, recipient: str = "",
             at: float | None = None) -> None:
        """`at`: when it was due (time.monotonic()); now by default."""
        injected = time.monotonic() if at is None else at
        self.pending[sender].append(_Awaiting(injected, kind, recipient))
        self.outstanding += 1
        self.results.mo_sent += 1
        self.results.by_kind[kind] += 1

    def on_mt(self, mt: Mt) -> None:
        self.results.mt_received += 1
        text = mt.text
        to_sender = any(all(marker in text for marker in markers)
                        for markers in SENDER_CONFIRMATION)
        # a transfer's confirmation to its recipient names both numbers (an enquiry's
        # history names numbers too, but it comes from another short code)
        from_transfer = mt.source == TRANSFER_SHORT_CODE
        numbers = NATIONAL_NUMBER.findall(text) if from_transfer and not to_sender else []
        if len(numbers) >= 2:
            pair = (canonical_msisdn(numbers[0]) or "", mt.destination)
            self._recipient_reply(pair, mt.received_at)
            return
        mo = _take_first(self.pending, mt.destination)
        if mo is None:
            self.results.errors["unmatched_mt"] += 1
            return
        if mo.recipient and not to_sender:
            # a transfer meant to go through was refused: a cheaper command than the one
            # offered, so a run with refusals measures less work
            by_cap = any(marker in text for marker in CAP_REFUSAL)
            self.results.errors["transfer_refused_by_cap" if by_cap else "transfer_refused"] += 1
        if to_sender and mo.recipient:
            self.results.confirmed_transfers += 1
            pair = (mt.destination, mo.recipient)
            early = _take_first(self._early_recipient, pair)
            if early is not None:
                self._complete(mo, max(early, mt.received_at))
            else:
                self._awaiting_recipient[pair].append(mo)
            return
        self._complete(mo, mt.received_at)

    def _recipient_reply(self, pair: tuple[str, str], at: float) -> None:
        awaiting = _take_first(self._awaiting_recipient, pair)
        if awaiting is not None:
            self._complete(awaiting, at)
        else:
            self._early_recipient[pair].append(at)

    def _complete(self, mo: _Awaiting, at: float) -> None:
        self.outstanding -= 1
        self.results.completed += 1
        self.results.latencies.append(at - mo.injected)
        self.results.due_seconds.append(mo.injected - self.results.started)
        self.results.last_completion = max(self.results.last_completion, at)

    def unanswered(self) -> int:
        return (sum(len(q) for q in self.pending.values())
                + sum(len(q) for q in self._awaiting_recipient.values()))


class Arrivals:
    """Arrival times of a Poisson process at `rate` a second (exponential gaps): real
    subscribers do not text on a metronome, and bursts queue more than an even spacing
    does (the p99 of an even stream flatters)."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        self._rate = rate
        self._rng = rng
        self._next = rng.expovariate(rate)

    def due(self, elapsed: float) -> list[float]:
        """The arrivals since the last call, by `elapsed` seconds into the run: when each
        was due, in seconds into the run."""
        arrived: list[float] = []
        while self._next <= elapsed:
            arrived.append(self._next)
            self._next += self._rng.expovariate(self._rate)
        return arrived


@record
class Command:
    sender: str
    to: str
    text: str
    recipient: str = ""  # of a transfer: its confirmation to the recipient completes it


def pin_of(msisdn: str) -> str:
    """Each synthetic subscriber's own PIN, 5 to 8 digits, as real PINs differ."""
    seed = int(msisdn[-7:]) * 2654435761 % 4294967296
    return str(10_000 + seed % 99_990_000)[: 5 + seed % 4]


def typed_number(msisdn: str, rng: random.Random) -> str:
    """A number as people type it: 0935..., 935..., 98935..., +98935... or 0098935..."""
    national = msisdn[2:]
    return rng.choices([f"0{national}", national, f"98{national}", f"+98{national}",
                        f"0098{national}"], weights=[70, 8, 8, 10, 4])[0]


def typed_amount(amount: int, rng: random.Random) -> str:
    return f"{amount:,}" if rng.random() < 0.15 else str(amount)


def as_typed(fields: list[str], rng: random.Random) -> str:
    """Fields joined as phones send them: some in Persian digits, some with spaces."""
    separator = rng.choices([":", " : ", ": "], weights=[85, 10, 5])[0]
    text = separator.join(fields)
    return to_persian_digits(text).replace(",", "٬") if rng.random() < 0.25 else text


class Traffic:
    """Synthetic commands like real traffic, of the kinds the services declare in the
    registry (services/registry.py, `load_kinds`): every subscriber has a PIN of its own,
    and a kind's generator draws from this (the population, the random source, the PINs
    as they stand), so that (almost) no text repeats and no per-text cache helps more
    than it would in life."""

    def __init__(self, population: Population, rng: random.Random,
                 busy: Callable[[str], bool] | None = None) -> None:
        self.population = population
        self.rng = rng
        self._pins: dict[str, str] = {}
        self._kinds = load_kinds()
        self._busy = busy  # whether a subscriber's last command is still unanswered

    def free(self, pool: list[str]) -> str:
        """A subscriber of `pool` whose last command was answered, as a person waits for
        the reply before texting again (through two gateways, a text sent before the last
        one is answered may reach the store first: the order across binds is that of
        arrival at the store, and a PIN change overtaken makes a transfer a wrong PIN);
        any one after a few tries."""
        who = self.rng.choice(pool)
        for _ in range(FREE_TRIES):
            if self._busy is None or not self._busy(who):
                break
            who = self.rng.choice(pool)
        return who

    def pin(self, sender: str) -> str:
        return self._pins.get(sender) or pin_of(sender)

    def set_pin(self, sender: str, pin: str) -> None:
        self._pins[sender] = pin

    def command(self, kind: str) -> Command:
        return self._kinds[kind](self)


def load_kinds() -> dict[str, LoadKind]:
    """Every kind of synthetic command, from every service of the registry."""
    from smsgw.services.registry import plugins

    return {kind: make for plugin in plugins() for kind, make in plugin.load_kinds.items()}


async def prepare_population(store: Store, hasher: Hasher, size: int,
                             mix: dict[str, float]) -> Population:
    """A fresh synthetic population: removes what earlier runs left in its own range (the
    day's and month's sums too: left over, they refused a growing share of a later run's
    transfers under the caps, and a refusal is a cheaper command than a transfer)."""
    async for key in store.redis.scan_iter(match=population_pattern(size), count=2000):
        if in_population(key, size):
            await store.redis.delete(key)
    msisdns = [synthetic(i) for i in range(size)]
    victims_count = max(1, size // 20) if mix.get("wrong_pin") else 0
    rows = [SubscriberRow(m, "prepaid", START_BALANCE, 0, "fa") for m in msisdns]
    await store.upsert_subscribers(rows, replace=True, at=now().isoformat())
    async with store.redis.pipeline(transaction=False) as pipe:
        for m in msisdns:
            pipe.hset(subscriber_key(m), mapping={"pin": hasher.pin_digest(m, pin_of(m))})
        await pipe.execute()
    # a card for every tenth subscriber: 200 at most made a card's OTP request come back
    # within the resend gap, so most were refused (a cheaper command than an OTP sent)
    holders = msisdns[: max(1, size // CARD_HOLDER_EVERY)] if mix.get("otp") else msisdns[:1]
    for start in range(0, len(holders), CARDS_AT_ONCE):
        await asyncio.gather(*(_give_card(store, hasher, index, holders[index])
                               for index in range(start, min(len(holders),
                                                             start + CARDS_AT_ONCE))))
    return Population(msisdns[victims_count:], msisdns[:victims_count] or msisdns[:1], holders)


async def _give_card(store: Store, hasher: Hasher, index: int, holder: str) -> None:
    card = with_luhn(f"627961{index:09d}")
    try:
        await admin.card_add(store, hasher, card, holder, "debit", "static-0", now())
    except admin.CardProblem:
        await admin.card_action(store, hasher, card, "set_mobile", now(), mobile=holder)


class Progress:
    """One status line: on a terminal redrawn in place, elsewhere every 5 seconds."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0

    def show(self, results: Results, tracker: Tracker, elapsed: float) -> None:
        interval = 0.25 if self.tty else 5.0
        if time.monotonic() - self._last < interval:
            return
        self._last = time.monotonic()
        recent = results.latencies[-2000:]
        p99 = sorted(recent)[int(0.99 * (len(recent) - 1))] * 1000 if recent else 0.0
        rate = results.completed / elapsed if elapsed else 0.0
        line = (f"{elapsed:6.1f}s  sent {results.mo_sent:>8}  answered {results.completed:>8}  "
                f"{rate:8.0f}/s  in flight {tracker.outstanding:>6}  p99 {p99:7.1f} ms  "
                f"errors {sum(results.errors.values())}")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


Inject = Callable[[str, str, str], object]
Attach = Callable[["Tracker"], Callable[[], None]]


async def drive(inject: Inject, attach: Attach, population: Population, rate: float,
                duration: float, mix: dict[str, float], seed: int = 1,
                progress: Progress | None = None) -> Results:
    """Inject MOs on schedule for `duration` seconds, then wait for the stragglers.

    What exists before the run (the population: 100,000 subscribers in the bench's held
    runs) is kept out of this process's full garbage collections meanwhile: walking it
    paused the driver ~50 ms at a time, and the pause showed as the gateway's latency
    (a 60 s run's max fell from 51 to 17 ms)."""
    gc.collect()
    gc.freeze()
    try:
        return await _drive(inject, attach, population, rate, duration, mix, seed, progress)
    finally:
        gc.unfreeze()


async def _drive(inject: Inject, attach: Attach, population: Population, rate: float,
                 duration: float, mix: dict[str, float], seed: int,
                 progress: Progress | None) -> Results:
    results = Results(offered_rate=rate, duration=duration)
    tracker = Tracker(results)
    detach = attach(tracker)
    rng = random.Random(seed)
    traffic = Traffic(population, rng, busy=lambda who: bool(tracker.pending.get(who)))
    kinds, weights = zip(*mix.items(), strict=True)
    arrivals = Arrivals(rate, random.Random(seed + 1))
    started = results.started = time.monotonic()
    total = int(rate * duration)  # a late wake-up near the end still offers all of them
    offered = 0
    while offered < total:
        elapsed = time.monotonic() - started
        due = arrivals.due(elapsed)[: total - offered]
        offered += len(due)
        for arrival, kind in zip(due, rng.choices(kinds, weights, k=len(due)), strict=True):
            if tracker.outstanding >= MAX_OUTSTANDING:
                results.errors["not_sent_backlog"] += 1
                continue
            command = traffic.command(kind)
            inject(command.sender, command.to, command.text)
            # its latency counts from when it was due, not from the driver's tick that
            # sent it: a driver running late would otherwise hide the queueing
            tracker.sent(command.sender, kind, command.recipient, at=started + arrival)
        if progress is not None:
            progress.show(results, tracker, elapsed)
        await asyncio.sleep(0.005)
    deadline = time.monotonic() + DRAIN_SECONDS
    while tracker.unanswered() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if progress is not None:
            progress.show(results, tracker, time.monotonic() - started)
    results.active_seconds = max(results.last_completion - started, 1e-6)
    unanswered = tracker.unanswered()
    if unanswered:
        results.errors["unanswered"] += unanswered
    detach()
    if progress is not None:
        progress.done()
    return results


def in_process(smsc: FakeSmsc) -> tuple[Inject, Attach]:
    def attach(tracker: Tracker) -> Callable[[], None]:
        smsc.on_mt.append(tracker.on_mt)
        return lambda: smsc.on_mt.remove(tracker.on_mt)

    return (lambda sender, to, text: smsc.inject_mo(sender, to, text)), attach


@dataclass
class _Received:
    """An MT as the driver bind receives it (the Tracker reads these four fields)."""

    source: str
    destination: str
    text: str
    received_at: float


class _Phones:
    """The driver bind's handler: MTs from a fake SMSC in another process, reassembled."""

    def __init__(self) -> None:
        self.tracker: Tracker | None = None
        self._parts: dict[tuple[str, int, int], dict[int, str]] = {}

    async def on_message(self, message: WireMessage, session: str) -> tuple[int, None]:
        text: str | None = message.text
        if message.part is not None:
            reference, number, total = message.part
            parts = self._parts.setdefault((message.destination, reference, total), {})
            parts[number] = message.text
            text = None
            if len(parts) == total:
                del self._parts[(message.destination, reference, total)]
                text = "".join(parts[n] for n in sorted(parts))
        if text is not None and self.tracker is not None:
            self.tracker.on_mt(_Received(message.source, message.destination, text,  # type: ignore[arg-type]
                                         time.monotonic()))
        return ESME_ROK, None

    async def on_receipt(self, receipt: Receipt) -> None:
        return None


async def drive_remote_smsc(host: str, port: int, population: Population, rate: float,
                            duration: float, mix: dict[str, float], seed: int,
                            progress: Progress | None) -> Results:
    """Drive a fake SMSC in another process through a driver bind (system_id loadtest)."""
    phones = _Phones()
    client = SmppClient(SmscSettings(host=host, port=port, system_id=DRIVER_SYSTEM_ID,
                                     window=2000, submit_rate=1_000_000), "")
    running = asyncio.create_task(client.run(phones))
    try:
        await client.wait_bound(30)

        def attach(tracker: Tracker) -> Callable[[], None]:
            phones.tracker = tracker
            return lambda: None

        return await drive(lambda s, t, x: client.submit_nowait(s, t, x), attach, population,
                           rate, duration, mix, seed, progress)
    finally:
        await client.stop(2)
        await running


async def _sample_rss(pids: list[int], every: float, samples: list[int]) -> None:
    """The gateways' RSS at each tenth of the run: flat, or growing?"""
    while True:
        await asyncio.sleep(every)
        samples.append(sum(rss_kb(pid) for pid in pids))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by each group of processes between `start` and `stop`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = {name: pids for name, pids in groups.items() if pids}
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids)
                for name, pids in self._groups.items()}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        return {name: round(spent - self._start[name], 3)
                for name, spent in self._now().items()}


async def redis_pids(store: Store) -> list[int]:
    """The redis-server processes behind the store, when they run on this machine."""
    if store.embedded:
        return []
    try:
        info = await store.redis.info("server")
    except (RedisError, OSError):  # a figure we cannot take is left out, not a failure
        return []
    nodes = info.values() if "process_id" not in info else [info]
    pids = [int(node["process_id"]) for node in nodes
            if isinstance(node, dict) and "process_id" in node]
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class LoadTestOptions:
    rate: float
    duration: float
    population: int
    mix: dict[str, float]
    gateway: str  # "inprocess" | "spawn" | "external"
    listen_port: int
    seed: int = 1
    gateway_env: dict[str, str] = field(default_factory=dict)
    smsc: tuple[str, int] | None = None  # a running fake SMSC (its gateway already bound)
    gateways: int = 1  # spawn: this many `smsgw run` processes, each on its own bind
    # count the money before and after (two reads of every subscriber: ~20 s for 100,000
    # on a 2-core box); a benchmark's sweep leaves it to its longer runs
    check_money: bool = True


async def run_loadtest(settings: Settings, options: LoadTestOptions,
                       on_progress: Progress | None = None,
                       say: Callable[[str], None] = print) -> Results:
    from smsgw.app import build_app

    if (options.gateway != "inprocess" or options.smsc) and not settings.redis.url:
        raise ValueError("a gateway in another process needs a shared store: give --redis URL")
    if options.smsc is not None:
        return await _against_running_smsc(settings, options, on_progress)
    _warn_of_submit_cap(settings.smsc.submit_rate * max(options.gateways, 1), options.rate, say)
    smsc = await FakeSmsc(port=options.listen_port, redeliver_after=2.0,
                          deliver_window=SMSC_WINDOW, keep_history=False).start()
    app = build_app(settings.model_copy(update={"smsc": settings.smsc.model_copy(
        update={"host": "127.0.0.1", "port": smsc.port})}))
    gateways = _Gateways(app, settings, options, smsc.port)
    try:
        population = await prepare_population(app.store, app.hasher, options.population,
                                               options.mix)
        before = await audit.money_and_fees(app.store) if options.check_money else None
        pids = gateways.start(say)
        await smsc.wait_bound(timeout=60)
        while smsc.bound_sessions < gateways.binds:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        results = await _measure(smsc, pids, population, options, on_progress,
                                 await redis_pids(app.store))
        # Only once every gateway has drained and stopped is nothing left half-applied:
        # money read earlier would count transfers still in flight.
        await gateways.stop()
        if before is not None:
            money, fees = await audit.money_and_fees(app.store)
            results.money_conserved = money == before[0]
            results.fees_as_confirmed = _fees_as_confirmed(
                fees - before[1], settings.transfer.fee, results.confirmed_transfers)
        return results
    finally:
        await gateways.stop()
        await smsc.stop()
        await app.close()


def _fees_as_confirmed(collected: int, fee: int, confirmed: int) -> bool | None:
    """Whether the fees collected are the fee of each confirmed transfer; None with no
    fee (then nothing tells a gateway that moves money from one that does not)."""
    return collected == fee * confirmed if fee else None


async def _measure(smsc: FakeSmsc, pids: list[int], population: Population,
                   options: LoadTestOptions, on_progress: Progress | None,
                   store_pids: list[int]) -> Results:
    rss_start = sum(rss_kb(pid) for pid in pids)
    samples: list[int] = []
    sampling = asyncio.create_task(_sample_rss(pids, options.duration / 10, samples))
    inject, attach = in_process(smsc)
    own = [os.getpid()]
    meter = CpuMeter({"redis": store_pids} | (
        {"gateway": pids, "fake_smsc_and_driver": own} if pids != own
        else {"gateway_fake_smsc_and_driver": own}))
    meter.start()
    try:
        results = await drive(inject, attach, population, options.rate, options.duration,
                              options.mix, options.seed, on_progress)
    finally:
        sampling.cancel()
    results.cpu_seconds = meter.stop()
    results.gateway_rss_kb = {"start": rss_start, "end": sum(rss_kb(pid) for pid in pids)}
    results.gateway_rss_samples_kb = samples
    return results


class _Gateways:
    """The gateways under test: one in this process, `smsgw run` processes, or one that
    the user starts (external); stopped (drained) before the money is counted."""

    def __init__(self, app: App, settings: Settings, options: LoadTestOptions,
                 smsc_port: int) -> None:
        self._app, self._settings, self._options = app, settings, options
        self._smsc_port = smsc_port
        self._gateway: Gateway | None = None
        self._running: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def binds(self) -> int:
        return max(1, len(self._processes))

    def start(self, say: Callable[[str], None]) -> list[int]:
        """Start them; the pids whose memory is sampled."""
        from smsgw.transport.gateway import Gateway
        from smsgw.workers.recovery import start_recovery

        options = self._options
        if options.gateway == "inprocess":
            client = SmppClient.from_settings(self._app.settings)
            self._gateway = Gateway(self._app, client)
            self._running = asyncio.create_task(self._gateway.run())
            self._recovery = start_recovery(self._app)
        elif options.gateway == "spawn":
            self._processes = [_spawn_gateway(self._settings, self._smsc_port,
                                              options.gateway_env, shared=options.gateways > 1)
                               for _ in range(options.gateways)]
        else:
            say(f"waiting for a gateway to bind to the fake SMSC on 127.0.0.1:{self._smsc_port}")
        return [p.pid for p in self._processes] or [os.getpid()]

    async def stop(self) -> None:
        if self._gateway is not None and self._running is not None:
            gateway, running, self._gateway = self._gateway, self._running, None
            await gateway.stop(drain_timeout=5)
            await running
        if self._recovery is not None:
            self._recovery.cancel()
        processes, self._processes = self._processes, []
        for process in processes:  # they drain through our fake SMSC: wait off the loop
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()


async def _against_running_smsc(settings: Settings, options: LoadTestOptions,
                                on_progress: Progress | None) -> Results:
    from smsgw.app import build_app

    assert options.smsc is not None
    app = build_app(settings)
    try:
        population = await prepare_population(app.store, app.hasher, options.population,
                                               options.mix)
        before, fees_before = await audit.money_and_fees(app.store)
        host, port = options.smsc
        results = await drive_remote_smsc(host, port, population, options.rate,
                                          options.duration, options.mix, options.seed,
                                          on_progress)
        settled = await _settled_money(app.store)
        results.money_conserved = None if settled is None else settled == before
        if settled is not None:
            _, fees = await audit.money_and_fees(app.store)
            results.fees_as_confirmed = _fees_as_confirmed(
                fees - fees_before, settings.transfer.fee, results.confirmed_transfers)
        return results
    finally:
        await app.close()


async def _settled_money(store: Store, timeout: float = SETTLE_SECONDS) -> int | None:
    """The money total once it stops moving (a gateway we do not control may still be
    applying transfers); None if it still moved after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    reading = await store.money()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        previous, reading = reading, await store.money()
        if reading == previous:
            return reading
    return None


# submit_sm per transfer command: the sender's confirmation in 2 UCS2 parts, the
# recipient's in 1 (a refusal takes 1 or 2)
PARTS_PER_COMMAND = 3


def _warn_of_submit_cap(submit_rate: float, rate: float, say: Callable[[str], None]) -> None:
    """The gateway sends at most [smsc] submit_rate parts a second (the operator's contract):
    past that, replies queue and the SMSC is asked to deliver MOs again later."""
    cap = submit_rate / PARTS_PER_COMMAND
    if rate > 0.9 * cap:
        say(f"note: [smsc] submit_rate {submit_rate:,.0f}/s caps the gateway at about "
            f"{cap:,.0f} commands/s ({PARTS_PER_COMMAND} submit_sm each); raise it "
            "(SMSGW_SMSC_SUBMIT_RATE) to measure past that")


def _spawn_gateway(settings: Settings, port: int, extra_env: dict[str, str],
                   shared: bool = False) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({"SMSGW_SMSC_HOST": "127.0.0.1", "SMSGW_SMSC_PORT": str(port),
                "SMSGW_REDIS_URL": settings.redis.url,
                "SMSGW_REDIS_CLUSTER": str(settings.redis.cluster).lower(),
                "SMSGW_SMSC_ORDER_ACROSS_BINDS": str(shared).lower(),
                "SMSGW_SMSC_SUBMIT_RATE": str(settings.smsc.submit_rate),
                "SMSGW_SMSC_WINDOW": str(settings.smsc.window),
                "SMSGW_SECURITY_HASH_KEY": settings.security.hash_key,
                "SMSGW_HTTP_PORT": str(free_port()),
                "SMSGW_LOG_DIR": tempfile.mkdtemp(prefix="smsgw-loadtest-"),
                "SMSGW_LOG_FORMAT": "json", "SMSGW_LOG_LEVEL": "warning"})
    env.update(extra_env)
    return subprocess.Popen([sys.executable, "-m", "smsgw", "run"], env=env,
                            stdout=subprocess.DEVNULL)

