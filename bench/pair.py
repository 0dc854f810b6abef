"""Before/after: the gateway's CPU µs per transfer of two source trees, in paired runs.

Each round runs one (b) point (a spawned `smsgw run`, real Redis, realistic traffic) with
the gateway imported from tree A, then from tree B (order alternating per round), with
this tree's driver and fake SMSC for both. Prints each run and the medians. With
`--echo`, each round also runs the echo ESME of row (a) at the same rate: the CPU of the
bare wire work (one deliver_sm in, a transfer's three submit_sm out), the floor under
either tree's figure, measured beside them.

    git worktree add --detach /tmp/smsgw-before <commit>
    .venv/bin/python bench/pair.py /tmp/smsgw-before . [--rate 1000] [--seconds 15]
                                   [--rounds 3] [--redis redis://127.0.0.1:6379/15]
                                   [--echo]

The two trees must keep subscribers under the same keys (the driver fills the store).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

import uvloop

from smsgw.config import load_settings
from smsgw.testing.load import LoadTestOptions, Progress, run_loadtest

sys.path.insert(0, str(Path(__file__).parent))
from run import BENCH_SUBMIT_RATE, MIX, echo_point, population_for


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--echo", action="store_true",
                        help="also run the echo ESME (the wire floor) in each round")
    return parser.parse_args()


async def one_run(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    settings = load_settings(None, {"redis": {"url": args.redis},
                                    "smsc": {"submit_rate": BENCH_SUBMIT_RATE},
                                    "security": {"hash_key": secrets.token_hex(16)},
                                    "log": {"level": "warning"}})
    options = LoadTestOptions(args.rate, args.seconds, population_for(args.rate, args.seconds),
                              MIX, "spawn", 0,
                              gateway_env={"PYTHONPATH": str(tree)})
    with open(os.devnull, "w") as quiet:
        result = (await run_loadtest(settings, options, Progress(quiet),
                                     say=lambda _: None)).as_json()
    return figures(result, "gateway")


async def echo_run(args: argparse.Namespace) -> dict[str, float]:
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        return figures(await echo_point(args.rate, args.seconds), "peer")


def figures(result: dict, process: str) -> dict[str, float]:
    """What a round reports of one run: `process`'s CPU µs per transfer (the gateway, or
    the echo ESME), Redis's, the rate answered and the p99."""
    cpu = result["cpu_us_per_command"]
    return {"answered": result["commands_per_s"], "cpu": cpu.get(process, 0.0),
            "redis": cpu.get("redis", 0.0), "p99": result["latency_ms"]["p99"]}


async def main() -> None:
    args = arguments()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    # `python -m smsgw` puts its working folder first on sys.path: run it from one that
    # holds no smsgw, so that PYTHONPATH picks the tree
    os.chdir(tempfile.mkdtemp(prefix="smsgw-pair-"))
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    if args.echo:
        runs["echo"] = []
    for round_number in range(args.rounds):
        order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
        if args.echo:
            order.append("echo")
        for name in order:
            run = await (echo_run(args) if name == "echo" else one_run(trees[name], args))
            runs[name].append(run)
            print(f"round {round_number + 1} {name:6}: {run}", flush=True)
    for name, measured in runs.items():
        process = "echo ESME (the wire work alone)" if name == "echo" else "gateway"
        print(f"{name:6} median {process} µs/transfer "
              f"{statistics.median(r['cpu'] for r in measured):.0f}, redis "
              f"{statistics.median(r['redis'] for r in measured):.0f}, answered "
              f"{statistics.median(r['answered'] for r in measured):.0f}/s")


if __name__ == "__main__":
    uvloop.run(main())
