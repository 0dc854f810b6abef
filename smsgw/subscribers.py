"""The subscriber file: CSV `msisdn,plan,balance,bill,language`. All rows or none."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from smsgw.core.replies import LANGUAGES
from smsgw.core.text import canonical_msisdn, normalise
from smsgw.store import SubscriberRow

REQUIRED_COLUMNS = ("msisdn", "plan", "balance", "bill")
PLANS = ("prepaid", "postpaid")


class BadInputFile(Exception):
    """A file that cannot be used; `problems` lists (line number, what is wrong)."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = problems
        shown = "; ".join(f"line {line}: {what}" for line, what in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{source}: {shown}{more}")


def read_subscriber_file(path: Path) -> list[SubscriberRow]:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputFile(str(path), [(0, f"cannot read the file: {exc}")]) from exc
    return parse_subscriber_csv(content, str(path))


def parse_subscriber_csv(content: str, source: str = "<subscribers>") -> list[SubscriberRow]:
    try:
        return _parse(content, source)
    except csv.Error as exc:  # e.g. a NUL byte: the csv module gives up on the file
        raise BadInputFile(source, [(0, f"not a readable CSV file: {exc}")]) from exc


def _parse(content: str, source: str) -> list[SubscriberRow]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise BadInputFile(source, [(1, f"header lacks {', '.join(missing)}; "
                                        "expected msisdn,plan,balance,bill,language")])
    reader.fieldnames = header
    rows: list[SubscriberRow] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        try:
            row = _row(record)
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        if row.msisdn in seen:
            problems.append((line, f"{row.msisdn} is already on line {seen[row.msisdn]}"))
            continue
        seen[row.msisdn] = line
        rows.append(row)
    if problems:
        raise BadInputFile(source, problems)
    return rows


def _row(record: dict[str | None, str | list[str] | None]) -> SubscriberRow:
    if record.get(None):
        raise ValueError("more fields than the header names")
    values = {key: normalise(value) for key, value in record.items()
              if isinstance(key, str) and isinstance(value, str)}
    msisdn = canonical_msisdn(values.get("msisdn", ""))
    if msisdn is None:
        raise ValueError(f"msisdn {values.get('msisdn', '')!r} is not a mobile number")
    plan = values.get("plan", "").lower()
    if plan not in PLANS:
        raise ValueError(f"plan {plan!r} must be prepaid or postpaid")
    balance = _rials(values.get("balance", ""), "balance")
    bill = _rials(values.get("bill", ""), "bill", allow_negative=True)
    if balance < 0:
        raise ValueError("balance cannot be negative")
    language = (values.get("language") or "fa").lower()
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} must be fa or en")
    return SubscriberRow(msisdn, plan, balance, bill, language)


def _rials(raw: str, column: str, allow_negative: bool = False) -> int:
    text = raw.replace(",", "") or "0"
    body = text[1:] if allow_negative and text.startswith("-") else text
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"{column} {raw!r} is not a whole number of rials")
    return int(text)
