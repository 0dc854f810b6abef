"""`smsgw replay`: feed a message log's inbound records through the router.

Each record is clocked by its own `ts`. A record is identified by (from, id), else by
(from, ts, text); the store remembers identities, so replaying twice applies nothing
twice and writes the same replies again. A record marks its Inbound `from_log`: a PIN
digest token in it checks like the PIN (nowhere else does a token count). A record that
cannot be replayed is reported with its line number and skipped; the rest goes on.
Whatever replay writes shows texts as the message log does (masking.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from smsgw.core import masking
from smsgw.core.hashing import Hasher
from smsgw.messages import Inbound, Outbound
from smsgw.router import Router
from smsgw.store import StoreUnavailable
from smsgw.transport.msglog import BadLine, LoggedMessage, read_records, reply_line


@dataclass
class ReplaySummary:
    inbound: int = 0
    replies: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    differing: int = 0
    compared: int = 0


def record_identity(hasher: Hasher, record: LoggedMessage) -> str:
    if record.id is not None:
        return hasher.message_identity("id", record.sender, record.id)
    return hasher.message_identity("ts", record.sender, record.ts.isoformat(), record.text)


def inbound_of(hasher: Hasher, record: LoggedMessage, remember_seconds: int) -> Inbound:
    identity = record_identity(hasher, record)
    return Inbound(
        sender=record.sender,
        to=record.to,
        text=record.text,
        at=record.ts,
        msg_id=record.id or f"mo-{identity[:16]}",
        identity=identity,
        remember_seconds=remember_seconds,
        from_log=True,
    )


def previous_replies(lines: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """The outbound records of a log, as (to, text) lists by the inbound id they answer."""
    by_inbound: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in read_records(lines):
        if isinstance(item, LoggedMessage) and item.in_reply_to is not None:
            by_inbound[item.in_reply_to].append((item.to, item.text))
    return by_inbound


async def replay(
    router: Router,
    hasher: Hasher,
    lines: Iterable[str],
    out: TextIO,
    report: TextIO,
    before: dict[str, list[tuple[str, str]]] | None = None,
    on_line: Callable[[], None] | None = None,
    remember_seconds: int = 7 * 24 * 3600,
) -> ReplaySummary:
    summary = ReplaySummary()
    for item in read_records(lines):
        if on_line is not None:
            on_line()
        if isinstance(item, BadLine):
            summary.bad_lines.append(item)
            report.write(f"line {item.line}: skipped: {item.reason}\n")
            continue
        if not item.is_inbound:
            continue
        message = inbound_of(hasher, item, remember_seconds)
        try:
            replies = await router.handle(message)
        except StoreUnavailable:
            raise
        except Exception as exc:  # one unusable record must not stop the replay
            summary.bad_lines.append(BadLine(item.line, "cannot be replayed"))
            report.write(f"line {item.line}: skipped: cannot be replayed "
                         f"({type(exc).__name__})\n")
            continue
        summary.inbound += 1
        summary.replies += len(replies)
        _write_replies(out, message, replies)
        if before is not None and message.msg_id in before:
            summary.compared += 1
            if not _same(before[message.msg_id], replies):
                summary.differing += 1
                shown = masking.inbound_text(message, router.log_view(message), hasher)
                _report_difference(report, item, shown, before[message.msg_id], replies)
    return summary


def _write_replies(out: TextIO, message: Inbound, replies: list[Outbound]) -> None:
    for number, reply in enumerate(replies, start=1):
        out.write(reply_line(message.at, reply, f"{message.msg_id}.{number}",
                             in_reply_to=message.msg_id))
        out.write("\n")


def _same(before: list[tuple[str, str]], replies: list[Outbound]) -> bool:
    return sorted(before) == sorted((reply.to, masking.reply_text(reply)) for reply in replies)


def _report_difference(report: TextIO, record: LoggedMessage, shown_text: str,
                       before: list[tuple[str, str]], replies: list[Outbound]) -> None:
    """Texts as the message log shows them: the inbound masked, no OTP in a reply."""
    report.write(f"line {record.line} (id {record.id}): replies differ\n")
    report.write(f"  text      {shown_text!r}\n")
    for to, text in before:
        report.write(f"  before -> {to}: {text!r}\n")
    for reply in replies:
        report.write(f"  now    -> {reply.to}: {masking.reply_text(reply)!r}\n")
