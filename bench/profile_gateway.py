"""Where the gateway's CPU goes: one (b) point of the bench (a spawned `smsgw run`, real
Redis, realistic traffic) with py-spy sampling the gateway process; prints the functions
by own time and by inclusive time, as shares of the samples, and the CPU µs per transfer.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/profile_gateway.py [--rate 1500] [--seconds 20]
                                              [--redis redis://127.0.0.1:6379/15]
                                              [--top 40] [--raw FILE] [--cluster]

py-spy needs ptrace rights (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from run import gateway_point, local_cluster

WARM_UP_SECONDS = 4.0
# the venv's own, found without the venv on PATH (.venv/bin/python bench/profile_gateway.py)
PY_SPY = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--cluster", action="store_true",
                        help="on a local 3-node Redis Cluster (row (d)) instead")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    return parser.parse_args()


def gateway_pid(parent: int) -> int | None:
    """The `smsgw run` child of this process, once spawned."""
    found = subprocess.run(["pgrep", "-P", str(parent), "-f", "smsgw"], capture_output=True,
                           text=True, check=False).stdout.split()
    return int(found[0]) if found else None


async def sample(seconds: float, out: Path) -> None:
    import os

    pid = None
    while pid is None:
        await asyncio.sleep(0.2)
        pid = gateway_pid(os.getpid())
    await asyncio.sleep(WARM_UP_SECONDS)
    before = cpu_ticks(pid)
    spy = await asyncio.create_subprocess_exec(
        PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--format", "raw", "--rate", "250", "--nonblocking", "--output", str(out),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await spy.wait()
    user, system = (after - first for after, first in zip(cpu_ticks(pid), before, strict=True))
    print(f"gateway CPU while sampled: user {user / 100:.1f} s, system {system / 100:.1f} s "
          f"({100 * system / max(1, user + system):.0f} % in the kernel)")


def cpu_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of a process so far, in clock ticks (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]), int(fields[12])


def frame_name(frame: str) -> str:
    """`handle (smsgw/router.py:32)` -> `smsgw/router.py:handle`"""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/smsgw/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


def report(raw: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame_name(each) for each in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    print(f"\n{total} samples")
    for title, counter in (("own time", own), ("inclusive", inclusive)):
        print(f"\n-- {title}")
        for name, count in counter.most_common(top):
            print(f"{100 * count / total:6.1f} %  {name}")


async def main() -> None:
    args = arguments()
    if PY_SPY is None:
        sys.exit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "stacks.txt"
        spying = asyncio.create_task(sample(args.seconds - WARM_UP_SECONDS - 2, raw))
        with local_cluster(args.cluster) as cluster_url:
            point = await gateway_point(args.rate, args.seconds, cluster_url or args.redis,
                                        "spawn", cluster=args.cluster)
        await spying
        cpu = point.get("cpu_us_per_command")
        print(f"answered {point.get('commands_per_s')}/s of {args.rate}/s offered; "
              f"p99 {point.get('latency_ms', {}).get('p99')} ms; CPU µs/command {cpu}")
        report(raw, args.top)
        if args.raw:
            args.raw.write_text(raw.read_text())


if __name__ == "__main__":
    uvloop.run(main())
