"""The benchmark: (a) the wire ceiling (an echo ESME doing a transfer's wire work),
(b) gateway + real Redis, (b2) two gateway processes (own binds, one order per
subscriber across them) + real Redis, (c) gateway + embedded store, (d) gateway + a local
3-node Redis Cluster, side by side over a sweep of offered loads, on this machine; then
(a) and (b) each held at its sustainable rate, and (b) at 80 % of it. The headline is
(b)/(a) held, both in this run, and the CPU µs per transfer of each process. Traffic as
loadtest's `Traffic` makes it: every text different, over 100,000 subscribers. Writes
bench/results.json, bench/results.md and bench/throughput.png. ~15 minutes by default.

    .venv/bin/python bench/run.py [--rates 500,1000,...] [--seconds 10] [--sustain 60]
                                  [--hold 2500] [--soak 600] [--no-cluster]
                                  [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis.asyncio as aioredis
import uvloop

from smsgw.config import load_settings
from smsgw.testing import RedisCluster, RedisServer, free_port
from smsgw.testing.load import (
    SMSC_WINDOW,
    CpuMeter,
    LoadTestOptions,
    Population,
    Progress,
    drive,
    in_process,
    parse_mix,
    run_loadtest,
    synthetic,
)
from smsgw.transport.smpp.fake_smsc import FakeSmsc

sys.path.insert(0, str(Path(__file__).parent))  # bench/kannel.py, beside this script
from kannel import Kannel
from kannel import available as kannel_available

HERE = Path(__file__).parent
MIX = parse_mix("transfer=100")
KANNEL_MIX = parse_mix("limit=100")
BENCH_SUBMIT_RATE = 100_000.0
C_MAX_RATE = 2000.0
POPULATION = 100_000  # the held runs'; a sweep's point fills what its rate needs
MIN_POPULATION = 20_000
EMBEDDED_POPULATION = 20_000  # (c) fills its in-process store by Lua in fakeredis: slow
MISSES_TO_STOP = 2  # a row stops after this many unsustainable points in a row


Peer = tuple[Callable[[], Awaitable[None]], list[int]]  # its stop, its processes


async def peer_point(rate: float, seconds: float, start_peer: Callable[[int], Awaitable[Peer]],
                     settle: float = 0.0, mix: dict[str, float] = MIX) -> dict[str, object]:
    """Drive a stateless peer (no store) bound to a fresh fake SMSC: `start_peer(port)`
    starts it and gives back its stop and its pids (their CPU is measured)."""
    smsc = await FakeSmsc(redeliver_after=2.0, deliver_window=SMSC_WINDOW,
                          keep_history=False).start()
    stop_peer, pids = await start_peer(smsc.port)
    try:
        await smsc.wait_bound(30)
        await asyncio.sleep(settle)
        people = [synthetic(i) for i in range(population_for(rate, seconds))]
        inject, attach = in_process(smsc)
        meter = CpuMeter({"peer": pids, "fake_smsc_and_driver": [os.getpid()]})
        meter.start()
        results = await drive(inject, attach, Population(people, people[:1], people[:1]), rate,
                              seconds, mix, progress=Progress())
        results.cpu_seconds = meter.stop()
        return results.as_json()
    finally:
        await stop_peer()
        await smsc.stop()


async def start_echo(port: int) -> Peer:
    process = subprocess.Popen([sys.executable, str(HERE / "echo_esme.py"), str(port)])

    async def stop() -> None:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
    return stop, [process.pid]


async def start_kannel(port: int) -> Peer:
    kannel = Kannel(port)
    await kannel.start()
    return kannel.stop, kannel.pids


async def echo_point(rate: float, seconds: float) -> dict[str, object]:
    return await peer_point(rate, seconds, start_echo)


async def kannel_point(rate: float, seconds: float) -> dict[str, object]:
    # Kannel answers every MO with one fixed text: driven with transfer texts that expect
    # one reply and no confirmation (amounts above the largest), none counts as refused
    return await peer_point(rate, seconds, start_kannel, settle=1.0, mix=KANNEL_MIX)


def population_for(rate: float, seconds: float) -> int:
    """Subscribers enough that a sender rarely makes more than a transfer or two in a run
    (the daily cap allows about nine), at most POPULATION: each run fills its own."""
    return int(min(POPULATION, max(MIN_POPULATION, 2 * rate * seconds)))


async def gateway_point(rate: float, seconds: float, redis_url: str, mode: str,
                        population: int = 0, gateways: int = 1,
                        cluster: bool = False, check_money: bool = False) -> dict[str, object]:
    """One run of `smsgw loadtest`; the money is counted (~20 s a read of 100,000
    subscribers) only where asked: on the long runs, not on each point of the sweep."""
    # the gateway may send as fast as the fake SMSC takes (as the echo ESME of (a) does);
    # the shipped 5,000 submit_sm/s would cap it at about 1,700 commands/s
    settings = load_settings(None, {"redis": {"url": redis_url, "cluster": cluster},
                                    "smsc": {"submit_rate": BENCH_SUBMIT_RATE},
                                    "security": {"hash_key": secrets.token_hex(16)},
                                    "log": {"level": "warning"}})
    options = LoadTestOptions(rate, seconds, population or population_for(rate, seconds), MIX,
                              mode, 0, gateways=gateways,
                              check_money=check_money)
    return (await run_loadtest(settings, options, Progress(), say=lambda _: None)).as_json()


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "redis": subprocess.run(["redis-server", "--version"], capture_output=True,
                                    text=True).stdout.split(" ")[2:3]}


Point = Callable[[float], Awaitable[dict[str, object]]]
CEILING_MAX_RATE = 20_000  # beyond, the driver (one process) is the limit, not (a)


def setups(seconds: float, redis_url: str, cluster_url: str | None) -> dict[str, Point]:
    """Each row of the sweep: how to measure it at one offered rate."""
    rows: dict[str, Point] = {
        "a_transport": lambda rate: echo_point(rate, seconds),
        "b_gateway_redis": lambda rate: gateway_point(rate, seconds, redis_url, "spawn"),
        "b2_two_gateways_redis": lambda rate: gateway_point(rate, seconds, redis_url, "spawn",
                                                            gateways=2),
        "c_gateway_embedded_inprocess": lambda rate: gateway_point(
            rate, seconds, "", "inprocess", population=EMBEDDED_POPULATION),
    }
    if cluster_url is not None:
        rows["d_gateway_redis_cluster"] = lambda rate: gateway_point(
            rate, seconds, cluster_url, "spawn", cluster=True)
    if kannel_available():
        rows["k_kannel_fixed_text"] = lambda rate: kannel_point(rate, seconds)
    return rows


async def sweep(rates: list[float], rows: dict[str, Point]) -> dict[str, list[dict]]:
    """Every row at each rate in turn (so (a) and (b) run under the same conditions); a
    row stops once it has failed MISSES_TO_STOP rates in a row: beyond, a point only
    measures a backlog."""
    points: dict[str, list[dict]] = {setup: [] for setup in rows}
    misses = dict.fromkeys(rows, 0)
    for rate in rates:
        print(f"\n== offered {rate}/s", file=sys.stderr)
        for setup, measure in rows.items():
            if misses[setup] >= MISSES_TO_STOP or (setup.startswith("c_") and rate > C_MAX_RATE):
                continue
            point = await measure(rate)
            points[setup].append(point)
            misses[setup] = 0 if is_sustainable(point) else misses[setup] + 1
    if "a_transport" in rows and rates:
        points["a_transport"] += await ceiling_beyond(rows["a_transport"], max(rates),
                                                      misses["a_transport"])
    return points


async def ceiling_beyond(measure: Point, top: float, misses: int) -> list[dict]:
    """(a) on up from the sweep's top rate while it keeps up: the ratio's denominator
    found, not assumed (on a quick box the echo keeps up with any rate the sweep offers,
    and a ratio to that rate flatters (b))."""
    points: list[dict] = []
    rate = top
    while misses == 0 and rate < CEILING_MAX_RATE:
        rate = min(max(rate + 500, round(rate * 1.25 / 500) * 500), CEILING_MAX_RATE)
        print(f"\n== (a) beyond the sweep: offered {rate}/s", file=sys.stderr)
        point = await measure(rate)
        points.append(point)
        misses = 0 if is_sustainable(point) else 1
    return points


# README "The Redis server": each write on disk before Redis answers (an answered message
# survives a power cut; "everysec" would flatter the gateway by ~20 % here, and lose the
# last second or two). An AOF rewrite forks a child that takes a core for a second or
# more: at Redis's default (from 64 MB) a transfer's ~2 KB of AOF made one every ~10 s at
# 2,000/s, each a p99 spike of 100-600 ms on the 2-core box; the README's setting makes
# them rare, and `rewrite_point` measures one forced mid-run
PRODUCTION_FSYNC = "always"
PRODUCTION_REDIS = {"auto-aof-rewrite-min-size": "1gb"}
REWRITE_RUN_SECONDS = 30.0
REWRITE_AFTER_SECONDS = 10.0


@contextmanager
def local_redis(url: str) -> Iterator[str]:
    """The Redis of (b): `url` if one is given, else a redis-server of the bench's own
    that keeps its append-only file as production does (a store that writes nothing to
    disk costs Redis less, and flatters it)."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-redis-") as workdir:
        server = RedisServer(free_port(), Path(workdir), durable=True, fsync=PRODUCTION_FSYNC,
                             config=PRODUCTION_REDIS)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def local_cluster(wanted: bool) -> Iterator[str | None]:
    """A 3-node Redis Cluster of our own for row (d), for the length of the run."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-cluster-") as workdir:
        cluster = RedisCluster(Path(workdir), durable=True, fsync=PRODUCTION_FSYNC,
                               config=PRODUCTION_REDIS)
        cluster.start()
        try:
            yield cluster.url
        finally:
            cluster.stop()


SUSTAINABLE_P99_MS = 100.0  # beyond, the answers queue: p95 was already ~70 ms at 250
REFUSALS_TOLERATED = 0.001


def is_sustainable(point: dict) -> bool:
    return not why_not_sustainable(point)


def why_not_sustainable(point: dict) -> str:
    """"" when answered as it came: at least 97 % of the offered rate over the run (to its
    last answer), no errors, and p99 under SUSTAINABLE_P99_MS (not merely drained later).
    A transfer refused is an error (it is less work than one applied), except refusals by
    a daily or monthly cap up to REFUSALS_TOLERATED of the commands: a sender the random
    traffic picks many times in a minute may meet the cap, and so few change the work
    measured by less than the box's noise (any other refusal fails the point). A money or
    fee check that failed fails it too."""
    errors = dict(point["errors"])
    by_cap = errors.pop("transfer_refused_by_cap", 0)
    if by_cap > REFUSALS_TOLERATED * max(point["commands_completed"], 1):
        errors["transfer_refused_by_cap"] = by_cap
    if point.get("money_conserved") is False or point.get("fees_as_confirmed") is False:
        errors["money"] = "not as confirmed"
    reasons = [f"errors {errors}"] if errors else []
    if point["commands_per_s"] < 0.97 * point["offered_rate"]:
        reasons.append(f"answered {point['commands_per_s']:.0f}/s")
    if point["latency_ms"]["p99"] >= SUSTAINABLE_P99_MS:
        reasons.append(f"p99 {point['latency_ms']['p99']:.0f} ms")
    return ", ".join(reasons)


def sustainable(points: list[dict]) -> dict | None:
    """The highest offered load answered as it came."""
    return max((p for p in points if is_sustainable(p)), key=lambda p: p["offered_rate"],
               default=None)


CPU_GROUPS = (("peer", "echo ESME"), ("gateway", "gateway"),
              ("fake_smsc_and_driver", "SMSC+driver"),
              ("gateway_fake_smsc_and_driver", "all in one"), ("redis", "Redis"))


def cpu_cells(point: dict) -> str:
    """CPU µs per command of each process group, as loadtest measured them from /proc."""
    cpu = point.get("cpu_us_per_command") or {}
    return ", ".join(f"{label} {cpu[group]:.0f}" for group, label in CPU_GROUPS if group in cpu)


def headline(report: dict) -> list[str]:
    m = report["machine"]
    held = report.get("held") or {}
    lines = ["# smsgw benchmark", "",
             f"Run: {report['when']}, {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
             f"Redis {''.join(m['redis'])} ({report.get('redis_persistence', 'not recorded')}), "
             f"an SMSC window of {report.get('smsc_window', 'not recorded')}, Poisson "
             "arrivals; fake SMSC, driver, gateway and Redis on one box. "
             "Absolute rates move from box to box (and with whatever else the box runs): "
             "the ratio to (a), measured in the same run, is the figure to compare.", ""]
    if held.get("ratio_b_over_a") is not None:
        tried_a, tried_b = (", ".join(map(str, held.get(k, []))) for k in ("tried_a", "tried_b"))
        lines.append(f"**(b)/(a) held for {held['seconds']:.0f} s: {held['ratio_b_over_a']}** "
                     f"((a) {held['a']['commands_per_s']}/s, (b) "
                     f"{held['b']['commands_per_s']}/s; offered rates tried, from the "
                     f"sweep's sustainable one down, then once between: (a) {tried_a}; "
                     f"(b) {tried_b})")
        if held.get("bracket_a") and held.get("bracket_b"):
            low, high = held_ratio_bracket(held)
            lines.append(f"(by the offered rates, the held ratio lies between {low} and "
                         f"{high}: (a) held "
                         f"{held['bracket_a'][0]:.0f}/s and failed {held['bracket_a'][1] or 0:.0f}"
                         f"/s, (b) held {held['bracket_b'][0]:.0f}/s and failed "
                         f"{held['bracket_b'][1] or 0:.0f}/s; 0: none failed)")
    bound = "≤ " if a_unbounded(report) else ""
    lines.append(f"(b)/(a) of the sweep's sustainable rates: {bound}"
                 f"{report.get('ratio_b_over_a')}{bracket(report)}; "
                 f"(b2)/(a) {bound}{report.get('ratio_b2_over_a')}; "
                 f"(d)/(a) {bound}{report.get('ratio_d_over_a')}")
    if bound:
        lines.append("(≤: (a) still kept up at the highest rate tried, so its ceiling is "
                     "higher and the ratios lower than shown)")
    lines += ["", "CPU µs per transfer, by process, at each row's sustainable rate:", ""]
    for setup, point in report["sustainable"].items():
        if point:
            lines.append(f"- {setup} at {point['offered_rate']:.0f}/s: {cpu_cells(point)}")
    return [*lines, ""]


def a_unbounded(report: dict) -> bool:
    """(a) kept up at the highest rate it was offered: its ceiling was not found."""
    a_points = report["sweep"].get("a_transport") or []
    return bool(a_points) and is_sustainable(a_points[-1])


def ratio_between(a: tuple[float, float | None], b: tuple[float, float | None]
                  ) -> tuple[float, float]:
    """Where the true (b)/(a) lies when each rate is known only as (held, lowest failed):
    (b)'s held over (a)'s failed, to (b)'s failed over (a)'s held (0 and inf where no
    rate failed)."""
    (a_held, a_failed), (b_held, b_failed) = a, b
    return (round(b_held / a_failed, 2) if a_failed else 0.0,
            round(b_failed / a_held, 2) if b_failed else float("inf"))


def bracket(report: dict) -> str:
    """Where the true (b)/(a) of the sweep lies, the sweep's rates being steps."""
    limits = []
    for setup in ("a_transport", "b_gateway_redis"):
        passed = report["sustainable"].get(setup)
        failed = passed and failed_in_sweep(report, setup, passed["offered_rate"])
        if not passed or not failed:
            return ""
        limits.append((passed["offered_rate"], failed))
    low, high = ratio_between(*limits)
    return f" (between {low:.2f} and {high:.2f}, by the sweep's steps)"


def write_markdown(report: dict) -> None:
    lines = [*headline(report),
             "Offered load (commands/s, open loop, each MO a transfer answered by two MT: the "
             "sender's confirmation in 2 UCS2 parts and the recipient's in 1; every text "
             "different) against what was answered. Latency: MO "
             "injected to its last reply. CPU: µs per answered command, per process group.",
             "",
             "| setup | offered/s | answered/s | p50 ms | p95 ms | p99 ms | max ms | errors "
             "| CPU µs/command |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for setup, points in report["sweep"].items():
        for p in points:
            lat = p["latency_ms"]
            lines.append(f"| {setup} | {p['offered_rate']:.0f} | {p['commands_per_s']} | "
                         f"{lat['p50']} | {lat['p95']} | {lat['p99']} | {lat['max']} | "
                         f"{p['errors'] or ''} | {cpu_cells(p)} |")
    lines += ["", "Sustainable (highest offered load answered as it came: >= 97 % of it per "
              f"second over the run, no errors, p99 < {SUSTAINABLE_P99_MS:.0f} ms):", ""]
    for setup, point in report["sustainable"].items():
        lines.append(f"- {setup}: {point['offered_rate'] if point else 'none'}/s"
                     + (f", p99 {point['latency_ms']['p99']} ms" if point else ""))
    a_points = report["sweep"]["a_transport"]
    if a_points and is_sustainable(a_points[-1]):  # (a) never reached its ceiling
        lines += ["", "(Ratios are upper bounds: (a) was still keeping up at its top rate, "
                  f"{a_points[-1]['offered_rate']:.0f}/s.)"]
    lines += [""]
    lines += NOTES
    for name in ("held", "sustained", "rewrite", "sustained_two_gateways", "soak"):
        if report.get(name):
            lines += [f"## {name}", "", "```", json.dumps(report[name], indent=2), "```", ""]
    lines += ["![throughput and p99 against offered load](throughput.png)", ""]
    (HERE / "results.md").write_text("\n".join(lines), encoding="utf-8")


NOTES = [
    "Notes:", "",
    "- What the profile (py-spy) showed and what was changed for it: README.md, "
    "\"Benchmark\".",
    "- (k) is Kannel 1.4.5 (Debian's package, bearerbox + smsbox) bound to the same fake "
    "SMSC, answering each MO with one fixed text (no state, no store, one MT, where the "
    "others send three `submit_sm`), with the fast settings of notes/peers.md and its "
    "durable spool store (`store-type = spool`); its MOs are transfer texts above the "
    "largest amount, whose one reply is all the driver waits for. Installed with "
    "`apt-get install kannel`; "
    "the row is left out where it is not installed.",
    "- (a) is an ESME on smsgw's own SMPP client that answers each MO with the two "
    "confirmations a transfer gets, rendered from smsgw's templates with the MO's numbers "
    "and amount (the same 3 `submit_sm`, the same lengths), and nothing else (bench/"
    "echo_esme.py).",
    "- (d) is one gateway on a local 3-node Redis Cluster (smsgw.testing.RedisCluster) "
    "in the store's single-slot mode: a transfer is a journaled debit, credit and settle.",
    f"- Each point fills its own population: 2 x rate x seconds subscribers, at least "
    f"{MIN_POPULATION:,}, at most {POPULATION:,} (the held runs), so that a sender "
    "rarely makes more than a transfer or two and the daily caps rarely refuse. The "
    "sweep's points do not count the money (two reads of every subscriber); the run at "
    "80 % does (`money_conserved`).",
    "- (c) runs the fake SMSC, the driver and the gateway in one process on one core (an "
    "embedded store cannot be shared with another process), so it measures that topology, "
    f"not the store. It is measured up to {C_MAX_RATE:.0f}/s offered.",
    "- A sustained or soak run above the sustainable rate is an overload test: the open "
    "loop keeps injecting, the backlog grows to the driver's cap (`not_sent_backlog`), and "
    "latency is queueing time.",
    "",
]


def plot(report: dict) -> None:
    try:
        import matplotlib
    except ImportError:  # the `bench` extra (bench/run installs it)
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for setup, points in report["sweep"].items():
        offered = [p["offered_rate"] for p in points]
        top.plot(offered, [p["commands_per_s"] for p in points], marker="o", label=setup)
        bottom.plot(offered, [p["latency_ms"]["p99"] for p in points], marker="o", label=setup)
    top.plot(offered, offered, linestyle=":", color="grey", label="offered")
    top.set_ylabel("answered commands/s")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel("offered commands/s")
    top.legend()
    top.set_title(f"smsgw on {report['machine']['cores']} cores, {report['when']}")
    fig.tight_layout()
    fig.savefig(HERE / "throughput.png", dpi=100)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="500,1000,1500,2000,2500,3000,4000,5000,6000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sustain", type=float, default=60.0,
                        help="then hold (a) and (b) each at its sustainable rate this long "
                             "(the headline ratio), and (b) at 80 %% of it (0: skip)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="the rate (b) is held at with --sustain (default: its "
                             "sustainable rate in the sweep); the next run is at 80 %% of it")
    parser.add_argument("--two-gateways", action="store_true",
                        help="with --sustain, also hold (b2) at 80 %% of its sustainable rate")
    parser.add_argument("--soak", type=float, default=0.0,
                        help="then a memory soak of (b) this long (start and end RSS)")
    parser.add_argument("--no-cluster", action="store_true", help="leave out row (d)")
    parser.add_argument("--rows", default="",
                        help="only these rows of the sweep, by letter: a,b (default: all)")
    parser.add_argument("--redis", default="",
                        help="a Redis to use (redis://host:port/db); default: one of the "
                             "bench's own, set as README \"The Redis server\" says (appendfsync "
                             "always, rewrites from 1 GB)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render results.md and the plot from results.json")
    parser.add_argument("--sustain-only", action="store_true",
                        help="keep the sweep of results.json; only (re)run --sustain/--soak")
    return parser.parse_args()


async def main() -> None:
    args = arguments()
    if args.report_only:
        finish(json.loads((HERE / "results.json").read_text(encoding="utf-8")))
        return
    with local_redis(args.redis) as redis_url:
        report = await measured(args, redis_url)
        judge(report)
        await long_runs(report, args)
    finish(report)


async def measured(args: argparse.Namespace, redis_url: str) -> dict:
    """The sweep (or, with --sustain-only, the one of results.json), against
    `redis_url`, which the held runs use too."""
    persistence = ("as given (--redis)" if args.redis else
                   f"appendonly, {PRODUCTION_FSYNC}, "
                   + ", ".join(f"{name} {value}" for name, value in PRODUCTION_REDIS.items()))
    args.own_redis = not args.redis
    args.redis = redis_url
    if args.sustain_only:
        return json.loads((HERE / "results.json").read_text(encoding="utf-8"))
    report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "redis_persistence": persistence,
              "smsc_window": SMSC_WINDOW}
    with local_cluster(not args.no_cluster) as cluster_url:
        rows = setups(args.seconds, redis_url, cluster_url)
        if args.rows:
            wanted = {f"{letter.strip()}_" for letter in args.rows.split(",")}
            rows = {name: row for name, row in rows.items()
                    if name[:name.index("_") + 1] in wanted}
        report["sweep"] = await sweep([float(r) for r in args.rates.split(",")], rows)
    return report


def swept_rates(report: dict, setup: str, top: float) -> list[float]:
    """The sweep's rates of `setup` from its sustainable one down: the rates a held run
    steps down through."""
    rates = sorted({p["offered_rate"] for p in report["sweep"][setup]
                    if p["offered_rate"] <= top}, reverse=True)
    return rates or [top]


REFINE_ABOVE = 1.1  # a held rate this far below the lowest that failed: try between once
REFINE_STEP = 50.0


async def held_down(run: Callable[[float], Awaitable[dict]], rates: list[float],
                    failed_above: float | None = None) -> tuple[dict, list[str], list[float]]:
    """Held at the first of `rates` it sustains for the whole run (a 10 s point of the
    sweep may pass at a rate that 60 s does not: a backlog or a collection pause builds
    up); then, where the lowest rate known to fail (tried here, or `failed_above` in the
    sweep) is more than REFINE_ABOVE times it, once more halfway between, so that the
    steps of the sweep bound the held ceiling less coarsely. That point; each rate tried
    with what failed there ("" where it held); and [the highest rate held, the lowest
    that failed] (the second None where none is known). The last one tried if none holds
    (and no bracket)."""
    tried: list[str] = []
    point: dict = {}
    failed = failed_above
    for rate in rates:
        point = await run(rate)
        why = why_not_sustainable(point)
        tried.append(f"{rate:.0f}" + (f" ({why})" if why else ""))
        if not why:
            break
        failed = rate if failed is None else min(failed, rate)
    else:
        return point, tried, []
    held = point["offered_rate"]
    between = _halfway(held, failed)
    if between is not None:
        trial = await run(between)
        why = why_not_sustainable(trial)
        tried.append(f"{between:.0f}" + (f" ({why})" if why else ""))
        if why:
            failed = between
        else:
            point, held = trial, between
    return point, tried, [held, failed]


def _halfway(held: float, failed: float | None) -> float | None:
    """A rate to try between a held one and the lowest that failed, where they are over
    REFINE_ABOVE apart: strictly between (a rate already run would be quoted as both)."""
    if failed is None or failed <= REFINE_ABOVE * held:
        return None
    between = round((held + failed) / 2 / REFINE_STEP) * REFINE_STEP
    return between if held < between < failed else None


def failed_in_sweep(report: dict, setup: str, above: float) -> float | None:
    """The lowest rate above `above` that `setup` did not sustain in the sweep."""
    return min((p["offered_rate"] for p in report["sweep"].get(setup, [])
                if p["offered_rate"] > above and not is_sustainable(p)), default=None)


def held_ratio_bracket(held: dict) -> list[float]:
    """The held (b)/(a)'s bracket, by the offered rates that held and failed. The quoted
    ratio is of the answered rates, which a held run may fall short of by up to 3 %, so
    it can lie just outside a bracket narrower than that."""
    return list(ratio_between(held["bracket_a"], held["bracket_b"]))


async def long_runs(report: dict, args: argparse.Namespace) -> None:
    """(a) and (b) held at their sustainable rates, one after the other: the headline;
    (b) at 80 % of it (the p99 target), the money counted; then what else was asked."""
    # a sweep of some rows only (--rows) has nothing to hold for the rows it left out
    a, b = (report["sustainable"].get(setup) for setup in ("a_transport", "b_gateway_redis"))
    b2 = report["sustainable"].get("b2_two_gateways_redis")
    if args.sustain and a and b:
        held_a, tried_a, bracket_a = await held_down(
            lambda rate: echo_point(rate, args.sustain),
            swept_rates(report, "a_transport", a["offered_rate"]),
            failed_in_sweep(report, "a_transport", a["offered_rate"]))
        held_b, tried_b, bracket_b = await held_down(
            lambda rate: gateway_point(rate, args.sustain, args.redis, "spawn",
                                       population=POPULATION),
            [args.hold] if args.hold else swept_rates(report, "b_gateway_redis",
                                                      b["offered_rate"]),
            None if args.hold else failed_in_sweep(report, "b_gateway_redis",
                                                   b["offered_rate"]))
        both = is_sustainable(held_a) and is_sustainable(held_b)
        report["held"] = {"seconds": args.sustain, "a": held_a, "b": held_b,
                          "tried_a": tried_a, "tried_b": tried_b,
                          "bracket_a": bracket_a, "bracket_b": bracket_b,
                          "both_sustained": both,
                          "ratio_b_over_a": round(held_b["commands_per_s"]
                                                  / held_a["commands_per_s"], 2)
                          if both and held_a["commands_per_s"] else None}
        report["sustained"] = await gateway_point(
            0.8 * held_b["offered_rate"], args.sustain, args.redis, "spawn", POPULATION,
            check_money=True)
        if args.own_redis:
            report["rewrite"] = await rewrite_point(0.8 * held_b["offered_rate"], args.redis)
    if args.sustain and args.two_gateways and b2:
        report["sustained_two_gateways"] = await gateway_point(
            0.8 * b2["offered_rate"], args.sustain, args.redis, "spawn", POPULATION,
            gateways=2, check_money=True)
    if args.soak and b:
        report["soak"] = await gateway_point(args.hold or 0.8 * b["offered_rate"], args.soak,
                                             args.redis, "spawn", POPULATION,
                                             check_money=True)


async def rewrite_point(rate: float, redis_url: str) -> dict[str, object]:
    """(b) at `rate` with an AOF rewrite forced REWRITE_AFTER_SECONDS in: what one costs
    (its seconds in `p99_ms_by_second`); the held runs see none at the README's setting."""
    client = aioredis.Redis.from_url(redis_url)

    async def rewrite() -> dict[str, float]:
        await asyncio.sleep(REWRITE_AFTER_SECONDS)
        started = time.monotonic()
        await client.bgrewriteaof()
        while (await client.info("persistence"))["aof_rewrite_in_progress"]:
            await asyncio.sleep(0.05)
        return {"at_s": REWRITE_AFTER_SECONDS,
                "lasted_s": round(time.monotonic() - started, 2)}

    try:
        forced = asyncio.create_task(rewrite())
        point = await gateway_point(rate, REWRITE_RUN_SECONDS, redis_url, "spawn", POPULATION)
        point["aof_rewrite"] = await forced
    finally:
        await client.aclose()
    return point


def judge(report: dict) -> None:
    report["sustainable"] = {k: sustainable(v) for k, v in report["sweep"].items()}
    a = report["sustainable"]["a_transport"]
    for setup, name in (("b_gateway_redis", "ratio_b_over_a"),
                        ("b2_two_gateways_redis", "ratio_b2_over_a"),
                        ("d_gateway_redis_cluster", "ratio_d_over_a")):
        b = report["sustainable"].get(setup)
        report[name] = round(b["offered_rate"] / a["offered_rate"], 2) if a and b else None


def finish(report: dict) -> None:
    judge(report)
    (HERE / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_markdown(report)
    plot(report)
    print(f"wrote {HERE / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
