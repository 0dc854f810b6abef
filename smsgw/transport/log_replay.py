"""`smsgw replay`: feed a message log's inbound records through the router.

Each record is clocked by its own `ts`. A record is identified by (from, id), else by
(from, ts, text); the store remembers identities, so replaying twice applies nothing
twice and writes the same replies again. A record marks its Inbound `from_log`: a PIN
digest token in it checks like the PIN (nowhere else does a token count). A record that
cannot be replayed is reported with its line number and skipped; the rest goes on.
Whatever replay writes shows texts as the message log does (masking.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
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


def replayed_id(record: LoggedMessage, identity: str) -> str:
    """The id replay gives an inbound record (its replies' `in_reply_to`)."""
    return record.id or f"mo-{identity[:16]}"


def inbound_of(hasher: Hasher, record: LoggedMessage, remember_seconds: int) -> Inbound:
    identity = record_identity(hasher, record)
    return Inbound(
        sender=record.sender,
        to=record.to,
        text=record.text,
        at=record.ts,
        msg_id=replayed_id(record, identity),
        identity=identity,
        remember_seconds=remember_seconds,
        from_log=True,
    )


EarlierReplies = dict[str, list[list[tuple[str, str]]]]


def previous_replies(lines: Iterable[str], hasher: Hasher) -> EarlierReplies:
    """The outbound records of a log, as (to, text) lists by the inbound id they answer,
    one list per inbound record of that id: an id that occurs twice (an SMSC that reused
    it, or two id-less records of one identity) is compared record by record. A reply
    replay wrote (id `<in_reply_to>.<n>`) belongs to the record its `.1` started; any
    other (a gateway's) to the latest record of that id before it. Ids no outbound
    record answers are left out (a log of inbound records only compares nothing)."""
    by_inbound: EarlierReplies = defaultdict(list)
    replayed_records: Counter[str] = Counter()  # `.1` replies seen, by in_reply_to
    for item in read_records(lines):
        if not isinstance(item, LoggedMessage):
            continue
        if item.is_inbound:
            by_inbound[replayed_id(item, record_identity(hasher, item))].append([])
        elif item.in_reply_to is not None:
            occurrences = by_inbound[item.in_reply_to]
            place = _reply_place(item, replayed_records, len(occurrences))
            while len(occurrences) <= place:
                occurrences.append([])
            occurrences[place].append((item.to, item.text))
    return {msg_id: occurrences for msg_id, occurrences in by_inbound.items()
            if any(occurrences)}


def _reply_place(reply: LoggedMessage, replayed_records: Counter[str], records: int) -> int:
    """Which record of its in_reply_to id an outbound record answers (see above)."""
    answered = reply.in_reply_to or ""
    prefix, _, number = (reply.id or "").rpartition(".")
    if prefix == answered and number.isascii() and number.isdigit():
        if number == "1":
            replayed_records[answered] += 1
        return max(replayed_records[answered] - 1, 0)
    return max(records - 1, 0)


async def replay(
    router: Router,
    hasher: Hasher,
    lines: Iterable[str],
    out: TextIO,
    report: TextIO,
    before: EarlierReplies | None = None,
    on_line: Callable[[], None] | None = None,
    remember_seconds: int = 7 * 24 * 3600,
) -> ReplaySummary:
    summary = ReplaySummary()
    occurrence: Counter[str] = Counter()  # of each id so far: which earlier record it is
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
            earlier = _earlier(before[message.msg_id], occurrence, message.msg_id)
            summary.compared += 1
            if not _same(earlier, replies):
                summary.differing += 1
                shown = masking.inbound_text(message, router.log_view(message), hasher)
                _report_difference(report, item, shown, earlier, replies)
    return summary


def _earlier(occurrences: list[list[tuple[str, str]]], occurrence: Counter[str],
             msg_id: str) -> list[tuple[str, str]]:
    """The replies logged for this record of `msg_id` (the n-th of that id)."""
    index = occurrence[msg_id]
    occurrence[msg_id] += 1
    return occurrences[index] if index < len(occurrences) else []


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
