"""`smsgw replay`: its options and I/O (files, progress display, summary, exit status);
the replay itself is transport/log_replay.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from smsgw import admin
from smsgw.app import build_app
from smsgw.commands.options import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    config_options,
    load,
    run_async,
)
from smsgw.config import Settings
from smsgw.core.clock import now
from smsgw.store import StoreUnavailable
from smsgw.subscribers import BadInputFile, read_subscriber_file
from smsgw.transport.log_replay import ReplaySummary, previous_replies, replay
from smsgw.transport.msglog import split_lines


@click.command(name="replay")
@config_options
@click.argument("log", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where the replies go (a message log). Default: stdout.")
@click.option("--subscribers", "subscriber_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A subscriber CSV to load first (new subscribers only; known ones keep "
                   "their balance).")
@click.option("--compare", is_flag=True,
              help="Report every inbound record whose replies now differ from the replies "
                   "recorded in the log.")
@click.option("--strict", is_flag=True, help="Exit 2 if any line is malformed.")
def command(config_file: Path | None, redis_url: str | None, log: str, out_file: Path | None,
            subscriber_file: Path | None, compare: bool, strict: bool) -> None:
    """Feed a message log's inbound records through the router, clocked by each `ts`.

    Replies are written as a message log. Replaying the same log twice against the same
    store applies nothing twice. Malformed lines are reported on stderr and skipped.
    """
    settings = load(config_file, redis_url)
    sys.exit(run_async(run_replay(settings, log, out_file, subscriber_file, compare, strict)))


def _read_lines(log: str) -> list[str]:
    raw = sys.stdin.buffer.read() if log == "-" else Path(log).read_bytes()
    return split_lines(raw.decode("utf-8", errors="replace"))


async def run_replay(settings: Settings, log: str, out_file: Path | None,
                     subscriber_file: Path | None, compare: bool, strict: bool) -> int:
    try:
        rows = read_subscriber_file(subscriber_file) if subscriber_file else []
    except BadInputFile as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    lines = _read_lines(log)
    app = build_app(settings)
    try:
        if rows:
            await admin.load_subscribers(app.store, rows, replace=False, at=now())
        with ExitStack() as stack:
            out: TextIO = (stack.enter_context(out_file.open("w", encoding="utf-8"))
                           if out_file else sys.stdout)
            progress = _progress(stack, len(lines))
            summary = await replay(
                app.router, app.hasher, lines, out, sys.stderr,
                before=previous_replies(lines, app.hasher) if compare else None,
                on_line=progress,
                remember_seconds=settings.redis.processed_ttl_seconds,
            )
    except StoreUnavailable as exc:
        sys.stderr.write(f"error: the store is unavailable ({exc}); replay stopped\n")
        return EXIT_FAILED
    finally:
        await app.close()
    _print_summary(summary, compare)
    return EXIT_BAD_INPUT if strict and summary.bad_lines else EXIT_OK


def _progress(stack: ExitStack, total: int) -> Callable[[], None] | None:
    if not sys.stderr.isatty() or total < 1000:
        return None
    progress = stack.enter_context(Progress(
        TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True,
    ))
    task = progress.add_task("replay", total=total)
    return lambda: progress.advance(task)


def _print_summary(summary: ReplaySummary, compare: bool) -> None:
    parts = [f"{summary.inbound} inbound", f"{summary.replies} replies",
             f"{len(summary.bad_lines)} malformed lines skipped"]
    if compare:
        parts.append(f"{summary.differing} of {summary.compared} compared differ")
    sys.stderr.write("replay: " + ", ".join(parts) + "\n")
