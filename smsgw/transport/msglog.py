"""The message log: JSON Lines, one message a line (interfaces.md, "Message log").

Reading tolerates nothing silently: each bad line comes back with its number and reason
(which never repeats the line's content: a log line may hold anything). Lines end at
"\n" only: a text may hold U+2028 or NEL, which the writer leaves as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from smsgw.core import masking
from smsgw.core.clock import now, parse_timestamp
from smsgw.core.hashing import Hasher
from smsgw.core.records import record
from smsgw.core.text import any_number_to_canonical
from smsgw.messages import Inbound, Outbound
from smsgw.transport.heartbeat import RecentTraffic

MAX_LINE_CHARS = 100_000


@record
class LoggedMessage:
    """One line of a message log read back: a message received (no `in_reply_to`) or a
    reply sent."""

    line: int
    ts: datetime
    sender: str
    to: str
    text: str
    id: str | None
    in_reply_to: str | None

    @property
    def is_inbound(self) -> bool:
        return self.in_reply_to is None


@record
class BadLine:
    line: int
    reason: str


def split_lines(content: str) -> list[str]:
    """A log's lines, split where the writer ends them (not str.splitlines: U+2028)."""
    return [line.removesuffix("\r") for line in content.split("\n")]


def read_records(lines: Iterable[str]) -> Iterator[LoggedMessage | BadLine]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield _record(number, raw)
        except ValueError as exc:
            yield BadLine(number, str(exc))


def _record(number: int, raw: str) -> LoggedMessage:
    if len(raw) > MAX_LINE_CHARS:
        raise ValueError(f"line longer than {MAX_LINE_CHARS} characters")
    try:
        data = orjson.loads(raw)  # bounded nesting; refuses lone surrogates and NaN
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for field in ("ts", "from", "to", "text"):
        if not isinstance(data.get(field), str):
            raise ValueError(f"field {field!r} missing or not a string")
    try:
        ts = parse_timestamp(data["ts"])
    except ValueError:
        raise ValueError("field 'ts' is no ISO 8601 time with an offset") from None
    return LoggedMessage(
        line=number,
        ts=ts,
        sender=any_number_to_canonical(data["from"]),
        to=any_number_to_canonical(data["to"]),
        text=data["text"],
        id=_optional_id(data, "id"),
        in_reply_to=_optional_id(data, "in_reply_to"),
    )


def _optional_id(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"field {field!r} must be a string")
    return str(value)


def format_record(
    ts: datetime, sender: str, to: str, text: str, msg_id: str, in_reply_to: str | None = None
) -> str:
    # orjson writes an aware datetime as isoformat() does, in C; not an offset with seconds
    stamp: datetime | str = ts if ts.tzinfo is UTC else ts.isoformat()
    record: dict[str, datetime | str] = {"ts": stamp, "from": sender, "to": to, "text": text,
                                         "id": msg_id}
    if in_reply_to is not None:
        record["in_reply_to"] = in_reply_to
    return orjson.dumps(record).decode("utf-8")  # UTF-8 as is, like ensure_ascii=False


def reply_line(at: datetime, reply: Outbound, message_id: str,
               in_reply_to: str | None) -> str:
    """A reply's record, its secret (an OTP) masked."""
    return format_record(at, reply.sender, reply.to, masking.reply_text(reply), message_id,
                         in_reply_to=in_reply_to)


class MessageLog:
    """Appends records to `messages.jsonl` in `directory`, rotating at `max_bytes` and
    keeping `backups` old files (messages.jsonl.1 is the newest of them).

    Writes are buffered and flushed by `flush()` (the gateway calls it a few times a
    second and on close): the message log is a record, the store is what is durable."""

    def __init__(self, directory: str, max_bytes: int, backups: int) -> None:
        self._path = Path(directory) / "messages.jsonl"
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._backups = backups
        self._pending: list[str] = []
        self._file = self._path.open("a", encoding="utf-8")
        self._size = self._file.tell()

    def write(self, line: str) -> None:
        self._pending.append(line)

    def flush(self) -> None:
        if not self._pending:
            return
        chunk = "\n".join(self._pending) + "\n"
        self._pending.clear()
        size = len(chunk.encode("utf-8"))
        if self._size and self._size + size > self._max_bytes:
            self._rotate()
        self._file.write(chunk)
        self._file.flush()
        self._size += size

    def _rotate(self) -> None:
        self._file.close()
        for number in range(self._backups - 1, 0, -1):
            older = self._path.with_name(f"{self._path.name}.{number}")
            if older.exists():
                older.replace(self._path.with_name(f"{self._path.name}.{number + 1}"))
        if self._backups > 0:
            self._path.replace(self._path.with_name(f"{self._path.name}.1"))
        else:
            self._path.unlink()
        self._file = self._path.open("a", encoding="utf-8")
        self._size = 0

    def close(self) -> None:
        self.flush()
        self._file.close()


class MessageRecorder:
    """What the gateway received and sent, as the log may show it (core/masking.py):
    written to its message log (with no log, not written) and kept among the recent
    traffic that the heartbeat reports (the console shows it)."""

    def __init__(self, message_log: MessageLog | None,
                 log_view: Callable[[Inbound], masking.LogView | None], hasher: Hasher,
                 recent: RecentTraffic) -> None:
        self._log = message_log
        self._log_view = log_view
        self._hasher = hasher
        self._recent = recent

    def shown(self, inbound: Inbound) -> str:
        """Its text as a log shows it (core/masking.py)."""
        return masking.inbound_text(inbound, self._log_view(inbound), self._hasher)

    def inbound(self, inbound: Inbound, shown: str | None = None) -> None:
        """`shown`: its masked text, when the caller made it already."""
        if shown is None:
            self._recent.inbound(inbound, self.shown)  # masked only for a heartbeat
        else:
            self._recent.inbound(inbound, lambda _: shown)
        if self._log is not None:
            self._log.write(format_record(inbound.at, inbound.sender, inbound.to,
                                          shown if shown is not None else self.shown(inbound),
                                          inbound.msg_id or ""))

    def reply(self, inbound: Inbound | None, reply: Outbound, message_id: str) -> None:
        """`inbound`: what it answers; None for a message asked for over HTTP (an OTP):
        an empty in_reply_to still marks it outbound, so that replay never takes it for
        a message from the short code."""
        self._recent.outbound(reply, masking.reply_text)
        if self._log is not None:
            in_reply_to = inbound.msg_id if inbound is not None else ""
            self._log.write(reply_line(now(), reply, message_id, in_reply_to))

    def flush(self) -> None:
        if self._log is not None:
            self._log.flush()
