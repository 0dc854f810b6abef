"""The benchmark: (a) transport ceiling, (b) gateway + real Redis, (b2) two gateway
processes (own binds, one order per subscriber across them) + real Redis, (c) gateway +
embedded store, side by side over a sweep of offered loads, on this machine. Writes
bench/results.json, bench/results.md and bench/throughput.png.

    .venv/bin/python bench/run.py [--rates 250,500,...] [--seconds 10] [--sustain 60]
                                  [--hold 2500] [--soak 600]
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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from smsgw.config import load_settings
from smsgw.testing.load import (
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
BENCH_SUBMIT_RATE = 100_000.0
C_MAX_RATE = 2000.0


async def peer_point(rate: float, seconds: float,
                     start_peer: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]],
                     settle: float = 0.0) -> dict[str, object]:
    """Drive a stateless peer (no store) bound to a fresh fake SMSC: `start_peer(port)`
    starts it and gives back its stop."""
    smsc = await FakeSmsc(redeliver_after=2.0, deliver_window=5000, keep_history=False).start()
    stop_peer = await start_peer(smsc.port)
    try:
        await smsc.wait_bound(30)
        await asyncio.sleep(settle)
        people = [synthetic(i) for i in range(5000)]
        inject, attach = in_process(smsc)
        results = await drive(inject, attach, Population(people, people[:1], people[:1]), rate,
                              seconds, MIX, progress=Progress())
        return results.as_json()
    finally:
        await stop_peer()
        await smsc.stop()


async def start_echo(port: int) -> Callable[[], Awaitable[None]]:
    process = subprocess.Popen([sys.executable, str(HERE / "echo_esme.py"), str(port)])

    async def stop() -> None:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
    return stop


async def start_kannel(port: int) -> Callable[[], Awaitable[None]]:
    kannel = Kannel(port)
    await kannel.start()
    return kannel.stop


async def echo_point(rate: float, seconds: float) -> dict[str, object]:
    return await peer_point(rate, seconds, start_echo)


async def kannel_point(rate: float, seconds: float) -> dict[str, object]:
    return await peer_point(rate, seconds, start_kannel, settle=1.0)


async def gateway_point(rate: float, seconds: float, redis_url: str, mode: str,
                        population: int = 5000, gateways: int = 1) -> dict[str, object]:
    # the gateway may send as fast as the fake SMSC takes (as the echo ESME of (a) does);
    # the shipped 5,000 submit_sm/s would cap it at about 1,700 commands/s
    settings = load_settings(None, {"redis": {"url": redis_url},
                                    "smsc": {"submit_rate": BENCH_SUBMIT_RATE},
                                    "security": {"hash_key": secrets.token_hex(16)},
                                    "log": {"level": "warning"}})
    options = LoadTestOptions(rate, seconds, population, MIX, mode, 0, gateways=gateways)
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


async def sweep(rates: list[float], seconds: float, redis_url: str) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"a_transport": [], "b_gateway_redis": [],
                                   "b2_two_gateways_redis": [],
                                   "c_gateway_embedded_inprocess": []}
    if kannel_available():
        rows["k_kannel_fixed_text"] = []
    for rate in rates:
        print(f"\n== offered {rate}/s", file=sys.stderr)
        rows["a_transport"].append(await echo_point(rate, seconds))
        if "k_kannel_fixed_text" in rows:
            rows["k_kannel_fixed_text"].append(await kannel_point(rate, seconds))
        rows["b_gateway_redis"].append(await gateway_point(rate, seconds, redis_url, "spawn"))
        rows["b2_two_gateways_redis"].append(
            await gateway_point(rate, seconds, redis_url, "spawn", gateways=2))
        if rate <= C_MAX_RATE:  # far past its ceiling a point only measures a backlog
            rows["c_gateway_embedded_inprocess"].append(
                await gateway_point(rate, seconds, "", "inprocess"))
    return rows


SUSTAINABLE_P99_MS = 250.0


def sustainable(points: list[dict]) -> dict | None:
    """The highest offered load answered as it came: at least 97 % of the offered rate
    per second, no errors, and p99 under SUSTAINABLE_P99_MS (not merely drained later)."""
    good = [p for p in points if not p["errors"]
            and p["commands_per_s"] >= 0.97 * p["offered_rate"]
            and p["latency_ms"]["p99"] < SUSTAINABLE_P99_MS]
    return max(good, key=lambda p: p["offered_rate"], default=None)


def write_markdown(report: dict) -> None:
    m = report["machine"]
    lines = ["# smsgw benchmark", "",
             f"Run: {report['when']}, {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
             f"Redis {''.join(m['redis'])}; fake SMSC, driver, gateway and Redis on one box.", "",
             "Offered load (commands/s, open loop, each MO answered by two MT: the sender's "
             "confirmation in 2 UCS2 parts and the recipient's in 1) against what was "
             "answered. Latency: MO injected to its last reply.", "",
             "| setup | offered/s | answered/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for setup, points in report["sweep"].items():
        for p in points:
            lat = p["latency_ms"]
            lines.append(f"| {setup} | {p['offered_rate']:.0f} | {p['commands_per_s']} | "
                         f"{lat['p50']} | {lat['p95']} | {lat['p99']} | {lat['max']} | "
                         f"{p['errors'] or ''} |")
    lines += ["", "Sustainable (highest offered load answered as it came: >= 97 % of it per "
              f"second, no errors, p99 < {SUSTAINABLE_P99_MS:.0f} ms):", ""]
    for setup, point in report["sustainable"].items():
        lines.append(f"- {setup}: {point['offered_rate'] if point else 'none'}/s"
                     + (f", p99 {point['latency_ms']['p99']} ms" if point else ""))
    ratio, ratio2 = report.get("ratio_b_over_a"), report.get("ratio_b2_over_a")
    top = max(p["offered_rate"] for p in report["sweep"]["a_transport"])
    lines += ["", f"Ratio of sustainable rates: (b)/(a) {ratio}, (b2)/(a) {ratio2} (upper "
              f"bounds when (a) was still keeping up at the sweep's top rate, {top:.0f}/s)",
              ""]
    lines += NOTES
    for name in ("held_at_sustainable", "sustained", "sustained_two_gateways", "soak"):
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
    "durable spool store (`store-type = spool`). Installed with `apt-get install kannel`; "
    "the row is left out where it is not installed.",
    "- (c) runs the fake SMSC, the driver and the gateway in one process on one core (an "
    "embedded store cannot be shared with another process), so it measures that topology, "
    f"not the store. It is measured up to {C_MAX_RATE:.0f}/s offered.",
    "- A sustained or soak run above the sustainable rate is an overload test: the open "
    "loop keeps injecting, the backlog grows to the driver's cap (`not_sent_backlog`), and "
    "latency is queueing time.",
    "",
]


def plot(report: dict) -> None:
    import matplotlib

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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="1000,1500,2000,2500,3000,3500,4000,5000,6000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sustain", type=float, default=0.0,
                        help="then hold (b) at --hold this long, then at 80 %% of it, and "
                             "(b2) at 80 %% of its sustainable rate")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="the rate (b) is held at with --sustain (default: its "
                             "sustainable rate in the sweep); the next run is at 80 %% of it")
    parser.add_argument("--soak", type=float, default=0.0,
                        help="then a memory soak of (b) this long (start and end RSS)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render results.md and the plot from results.json")
    parser.add_argument("--sustain-only", action="store_true",
                        help="keep the sweep of results.json; only (re)run --sustain/--soak")
    args = parser.parse_args()
    if args.report_only or args.sustain_only:
        report = json.loads((HERE / "results.json").read_text(encoding="utf-8"))
        if args.report_only:
            finish(report)
            return
    else:
        rates = [float(r) for r in args.rates.split(",")]
        report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "machine": machine()}
        report["sweep"] = await sweep(rates, args.seconds, args.redis)
    judge(report)
    b = report["sustainable"]["b_gateway_redis"]
    b2 = report["sustainable"]["b2_two_gateways_redis"]
    if args.sustain and b:
        hold = args.hold or b["offered_rate"]
        report["held_at_sustainable"] = await gateway_point(hold, args.sustain, args.redis,
                                                            "spawn")
        report["sustained"] = await gateway_point(0.8 * hold, args.sustain, args.redis,
                                                  "spawn")
    if args.sustain and b2:
        report["sustained_two_gateways"] = await gateway_point(
            0.8 * b2["offered_rate"], args.sustain, args.redis, "spawn", gateways=2)
    if args.soak and b:
        report["soak"] = await gateway_point(args.hold or 0.8 * b["offered_rate"], args.soak,
                                             args.redis, "spawn", population=20000)
    finish(report)


def judge(report: dict) -> None:
    report["sustainable"] = {k: sustainable(v) for k, v in report["sweep"].items()}
    a = report["sustainable"]["a_transport"]
    for setup, name in (("b_gateway_redis", "ratio_b_over_a"),
                        ("b2_two_gateways_redis", "ratio_b2_over_a")):
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
