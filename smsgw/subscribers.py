"""The subscriber file: CSV `msisdn,plan,balance,bill,language`. All rows or none.

Strict, because a row loaded wrong moves money: with `--replace` a row read as balance 0
wipes a real balance. A bad row is one with fewer or more fields than the header, an
empty or malformed number, a plan other than prepaid/postpaid, a language other than
fa/en, or a balance or bill that is not a whole number of rials within the money ceiling
(smsgw/money.py; a balance can't be negative, a bill can: a credit on the bill). The plan's
own amount (a prepaid line's balance, a postpaid line's bill) must be written; the other
one must be empty or 0 (a prepaid line has no bill, a postpaid one no balance). An empty
language means fa. Any number form of money.parse_rials is accepted: Persian or
Arabic-Indic digits, thousands in groups of three.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

from smsgw.core.money import parse_rials, shown
from smsgw.core.replies import LANGUAGES
from smsgw.core.text import canonical_msisdn, normalise
from smsgw.store import SubscriberRow

if TYPE_CHECKING:
    from _csv import Reader

REQUIRED_COLUMNS = ("msisdn", "plan", "balance", "bill")
COLUMNS = (*REQUIRED_COLUMNS, "language")
PLANS = ("prepaid", "postpaid")
PLAN_AMOUNT = {"prepaid": "balance", "postpaid": "bill"}  # the one a plan must give
PROBLEMS_SHOWN = 50


class BadInputFile(Exception):
    """A file that cannot be used; `problems` lists (line number, what is wrong)."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = problems
        shown_problems = [f"  line {line}: {what}" for line, what in problems[:PROBLEMS_SHOWN]]
        if len(problems) > PROBLEMS_SHOWN:
            shown_problems.append(f"  (and {len(problems) - PROBLEMS_SHOWN} more)")
        super().__init__(f"{source}: nothing was loaded:\n" + "\n".join(shown_problems))


def read_subscriber_file(path: Path) -> list[SubscriberRow]:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputFile(str(path), [(1, f"cannot read the file: {exc}")]) from exc
    return parse_subscriber_csv(content, str(path))


def parse_subscriber_csv(content: str, source: str = "<subscribers>") -> list[SubscriberRow]:
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        return _parse(reader, source)
    except csv.Error as exc:  # the csv module gives up on the file
        raise BadInputFile(source, [(max(reader.line_num, 1),
                                     f"not a readable CSV file: {exc}")]) from exc


def _parse(reader: Reader, source: str) -> list[SubscriberRow]:
    header = [normalise(name).lower() for name in next(reader, [])]
    problem = _header_problem(header)
    if problem:
        raise BadInputFile(source, [(1, problem)])
    rows: list[SubscriberRow] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue  # an empty line
        try:
            row = _row(header, fields)
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


def _header_problem(header: list[str]) -> str | None:
    expected = "expected msisdn,plan,balance,bill,language"
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        return f"header lacks {', '.join(missing)}; {expected}"
    unknown = [shown(column) for column in header if column not in COLUMNS]
    if unknown:
        return f"header has unknown columns {', '.join(unknown)}; {expected}"
    if len(set(header)) < len(header):
        return f"header names a column twice; {expected}"
    return None


def _row(header: list[str], fields: list[str]) -> SubscriberRow:
    if len(fields) != len(header):
        raise ValueError(f"{len(fields)} fields, but the header names {len(header)}: "
                         f"{','.join(header)}")
    values = {column: normalise(field) for column, field in zip(header, fields, strict=True)}
    msisdn = canonical_msisdn(values["msisdn"])
    if msisdn is None:
        raise ValueError(f"msisdn {shown(values['msisdn'])} is not a mobile number")
    plan = values["plan"].lower()
    if plan not in PLANS:
        raise ValueError(f"plan {shown(plan)} must be prepaid or postpaid")
    balance = _amount(values, "balance", required=PLAN_AMOUNT[plan] == "balance")
    bill = _amount(values, "bill", required=PLAN_AMOUNT[plan] == "bill")
    if balance < 0:
        raise ValueError("balance cannot be negative")
    other = "bill" if PLAN_AMOUNT[plan] == "balance" else "balance"
    if (bill if other == "bill" else balance) != 0:  # stored unseen, counted as money
        raise ValueError(f"{other} must be 0 or empty on a {plan} line")
    language = (values.get("language") or "fa").lower()
    if language not in LANGUAGES:
        raise ValueError(f"language {shown(language)} must be fa or en")
    return SubscriberRow(msisdn, plan, balance, bill, language)


def _amount(values: dict[str, str], column: str, required: bool) -> int:
    raw = values[column]
    if not raw and not required:
        return 0
    if not raw:
        raise ValueError(f"{column} is empty: a {values['plan'].lower()} line needs its {column}")
    try:
        return parse_rials(raw)
    except ValueError as exc:
        raise ValueError(f"{column} {exc}") from None
