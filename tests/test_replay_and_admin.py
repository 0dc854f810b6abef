"""Operators' commands: replay (idempotent, --compare, bad lines) and admin, via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.commands.main import main
from smsgw.core.money import parse_rials
from tests.attacks import tried
from tests.conftest import TEST_KEY

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, redis_url: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SMSGW_SECURITY_HASH_KEY", TEST_KEY)
    monkeypatch.setenv("SMSGW_REDIS_URL", redis_url)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)

    return run


def records(text: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def show(cli, msisdn: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    result = cli("admin", "show", msisdn, "--json", "--at", "2026-07-23T12:00:00+03:30")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replay_writes_replies_and_is_idempotent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = str(EXAMPLES / "conversation.jsonl")
    first = cli("replay", log, "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert first.exit_code == 0, first.output
    replies = records(first.stdout)
    assert {r["in_reply_to"] for r in replies} >= {"mo-1", "mo-2", "mo-3", "mo-4", "mo-5"}
    assert all(r["from"] == "1112" and r["to"].startswith("98") for r in replies)
    mo1 = [r for r in replies if r["in_reply_to"] == "mo-1"]
    assert [r["to"] for r in mo1] == ["989361111111", "989351234567"]
    assert mo1[0]["ts"] == "2026-07-23T10:15:00+03:30"
    after_first = {m: show(cli, m) for m in ("09361111111", "09351234567", "09331234567")}
    assert after_first["09361111111"]["balance"] == 20_000 - 2_500 - 5_500
    assert after_first["09361111111"]["failed_pin_attempts"] == 1

    second = cli("replay", log, "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert second.exit_code == 0
    assert second.stdout == first.stdout  # the same replies, written again
    assert {m: show(cli, m) for m in after_first} == after_first  # nothing applied twice


def test_replay_compare_reports_changed_replies(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbound = (EXAMPLES / "conversation.jsonl").read_text(encoding="utf-8")
    out = tmp_path / "replies.jsonl"
    assert cli("replay", str(EXAMPLES / "conversation.jsonl"), "--subscribers",
               str(EXAMPLES / "subscribers.csv"), "--out", str(out)).exit_code == 0
    recorded = out.read_text(encoding="utf-8").splitlines()
    tampered = [line.replace("رمز", "RAMZ") if '"mo-4"' in line else line for line in recorded]
    full_log = tmp_path / "full.jsonl"
    full_log.write_text(inbound + "\n".join(tampered) + "\n", encoding="utf-8")
    result = cli("replay", str(full_log), "--compare", "--out", str(tmp_path / "again.jsonl"))
    assert result.exit_code == 0
    assert "line 4 (id mo-4): replies differ" in result.stderr
    assert "1 of 7 compared differ" in result.stderr


def test_replay_skips_malformed_lines_with_line_numbers(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = (EXAMPLES / "conversation.jsonl").read_text(encoding="utf-8").splitlines()[0]
    log = tmp_path / "bad.jsonl"
    log.write_text("\n".join([
        "not json at all", good,
        '{"ts": "2026-07-23T10:15:00", "from": "1", "to": "2", "text": "x"}',
        '["a list"]', '{"ts": "2026-07-23T10:15:00+03:30", "from": 5, "to": "1112", "text": "x"}',
        '{"ts": "yesterday", "from": "09361111111", "to": "1112", "text": "x"}',
    ]) + "\n", encoding="utf-8")
    result = cli("replay", str(log), "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert result.exit_code == 0
    for line in (1, 3, 4, 5, 6):
        assert f"line {line}: skipped" in result.stderr
    assert "line 2:" not in result.stderr
    assert len(records(result.stdout)) == 2
    strict = cli("replay", str(log), "--strict")
    assert strict.exit_code == 2


def test_load_subscribers_bad_row_loads_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "subs.csv"
    csv.write_text("msisdn,plan,balance,bill\n09361111111,prepaid,100,0\n"
                   "0912,prepaid,1,0\n09351234567,gold,1,0\n09331234567,prepaid,1.5,0\n"
                   "09361111111,prepaid,5,0\n", encoding="utf-8")
    result = cli("admin", "load-subscribers", str(csv))
    assert result.exit_code == 2
    for line in (3, 4, 5, 6):
        assert f"line {line}:" in result.stderr
    assert cli("admin", "show", "09361111111").exit_code == 1  # nothing was loaded


def test_load_subscribers_keeps_known_balance_unless_replace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "subs.csv"
    csv.write_text("msisdn,plan,balance,bill,language\n۰۹۳۶۱۱۱۱۱۱۱,prepaid,۲۰٬۰۰۰,0,fa\n",
                   encoding="utf-8")
    assert cli("admin", "load-subscribers", str(csv)).exit_code == 0
    assert show(cli, "09361111111")["balance"] == 20_000
    csv.write_text("msisdn,plan,balance,bill,language\n+989361111111,prepaid,99,0,en\n",
                   encoding="utf-8")
    assert "1 updated" in cli("admin", "load-subscribers", str(csv)).stdout
    assert show(cli, "09361111111")["balance"] == 20_000
    assert show(cli, "09361111111")["language"] == "en"
    assert "1 replaced" in cli("admin", "load-subscribers", str(csv), "--replace").stdout
    assert show(cli, "09361111111")["balance"] == 99


def test_admin_show_unblock_topup_reset_history(cli) -> None:  # type: ignore[no-untyped-def]
    cli("replay", str(EXAMPLES / "conversation.jsonl"), "--subscribers",
        str(EXAMPLES / "subscribers.csv"))
    shown = show(cli, "09361111111")
    assert set(shown) >= {"msisdn", "plan", "balance", "bill", "pin_set", "blocked",
                          "failed_pin_attempts", "sent_today", "sent_this_month"}
    assert shown["msisdn"] == "989361111111" and shown["pin_set"] is True
    assert shown["sent_today"] == 7_000 and shown["sent_this_month"] == 7_000
    other_day = cli("admin", "show", "09361111111", "--json", "--at", "2026-07-24T12:00:00+03:30")
    assert json.loads(other_day.stdout)["sent_today"] == 0

    assert cli("admin", "topup", "09361111111", "1000").exit_code == 0
    assert show(cli, "09361111111")["balance"] == shown["balance"] + 1000  # type: ignore[operator]
    assert "bill 22000" in cli("admin", "topup", "09391234567", "3000").stdout
    assert show(cli, "09391234567")["bill"] == 22_000
    assert cli("admin", "reset-pin", "09361111111").exit_code == 0
    assert show(cli, "09361111111")["pin_set"] is False
    assert cli("admin", "unblock", "09361111111").exit_code == 0

    history = cli("admin", "history", "09361111111", "--json")
    kinds = [json.loads(line)["kind"] for line in history.stdout.splitlines()]
    assert kinds[:3] == ["unblock", "reset_pin", "topup"]
    assert "transfer_out" in kinds and "wrong_pin" in kinds and "pin_changed" in kinds


def test_admin_errors_exit_codes(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("admin", "show", "09360000000").exit_code == 1
    assert cli("admin", "unblock", "09360000000").exit_code == 1
    assert cli("admin", "show", "12345").exit_code == 2
    assert cli("admin", "topup", "09361111111", "-5").exit_code == 2
    assert cli("admin", "show", "09361111111", "--at", "tomorrow").exit_code == 2
    assert cli("nope").exit_code == 2


def test_help_everywhere(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (["--help"], ["replay", "--help"], ["admin", "--help"], ["admin", "show", "--help"],
                 ["demo", "--help"]):
        result = cli(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout
    assert "--redis" in cli("admin", "topup", "--help").stdout


# -- strict subscriber files (issue 12, point 4) ---------------------------------------

def write_csv(tmp_path: Path, *rows: str, header: str = "msisdn,plan,balance,bill,language") -> str:
    path = tmp_path / "subs.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def test_a_row_missing_fields_is_bad_and_replace_keeps_the_balance(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("admin", "load-subscribers", write_csv(tmp_path, "09361111111,prepaid,20000,0,fa"))\
        .exit_code == 0
    short = write_csv(tmp_path, "09351234567,prepaid,100,0,fa", "09361111111,prepaid")
    result = cli("admin", "load-subscribers", short, "--replace")
    assert result.exit_code == 2
    assert "line 3: 2 fields, but the header names 5" in result.stderr
    assert show(cli, "09361111111")["balance"] == 20_000  # not wiped to 0
    assert cli("admin", "show", "09351234567").exit_code == 1  # nothing from the file loaded


@pytest.mark.parametrize("balance", ['"50,00,0"', "۵۰٬۰۰٬۰", "1.5", "1e5", "+5", "", "0x10",
                                     "10000000000000001", "-5", "۲۰ ۰۰۰"])
def test_a_malformed_balance_is_a_bad_row(cli, tmp_path: Path, balance: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("admin", "load-subscribers",
                 write_csv(tmp_path, "09351234567,prepaid,100,0,fa",
                           f"09361111111,prepaid,{balance},0,fa"))
    assert result.exit_code == 2 and "line 3: balance" in result.stderr
    assert "Traceback" not in result.output
    assert cli("admin", "show", "09351234567").exit_code == 1


def test_every_bad_row_is_listed_and_replay_refuses_the_file_too(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = write_csv(tmp_path, "09361111111,prepaid,1,0,fa,extra", ",prepaid,1,0,fa",
                    "09351234567,postpaid,0,,fa", "09331234567,prepaid,1,0,de",
                    "09391234567,Gold,1,0,fa", "09301234567,prepaid,1,-2000000000000000,fa")
    result = cli("admin", "load-subscribers", bad)
    assert result.exit_code == 2
    for line, why in [(2, "6 fields"), (3, "msisdn ''"), (4, "bill is empty"),
                      (5, "language 'de'"), (6, "plan 'gold'"), (7, "bill '-2000")]:
        assert f"line {line}: {why}" in result.stderr
    replayed = cli("replay", str(EXAMPLES / "conversation.jsonl"), "--subscribers", bad)
    assert replayed.exit_code == 2 and "line 7:" in replayed.stderr
    assert replayed.stdout == ""  # nothing replayed either


def test_subscriber_file_forms_that_load(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = write_csv(tmp_path, "۰۹۳۶۱۱۱۱۱۱۱,prepaid,۲۰٬۰۰۰,,fa",
                     '09391234567,POSTPAID,,"-1,500",',
                     f"09331234567,prepaid,{10**15},0,en")
    assert cli("admin", "load-subscribers", good).exit_code == 0
    assert show(cli, "09361111111")["balance"] == 20_000  # an empty bill on a prepaid line: 0
    assert show(cli, "09391234567")["bill"] == -1_500
    assert show(cli, "09391234567")["language"] == "fa"
    assert show(cli, "09331234567")["balance"] == 10**15  # the ceiling itself


# -- admin topup and the other admin commands under hostile arguments (point 7) ---------

def no_traceback(result: Result) -> bool:
    return result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def ali(cli, tmp_path: Path):  # type: ignore[no-untyped-def]
    assert cli("admin", "load-subscribers", write_csv(
        tmp_path, "09361111111,prepaid,20000,0,fa", "09391234567,postpaid,0,30000,fa"))\
        .exit_code == 0
    return cli


@pytest.mark.parametrize("amount, why", [
    ("1" * 40, "beyond the ceiling"), ("0", "at least 1 rial"), ("-5", "at least 1 rial"),
    ("1.5", "not a whole number"), ("1e5", "not a whole number"), ("", "not a whole number"),
    ("1,0,0", "not a whole number"), (str(10**15 + 1), "beyond the ceiling"), ("NaN", "not a"),
])
def test_topup_refuses_a_bad_amount_with_a_message(ali, amount: str, why: str) -> None:  # type: ignore[no-untyped-def]
    result = ali("admin", "topup", "09361111111", "--", amount)
    assert result.exit_code == 2 and why in result.stderr and no_traceback(result)
    assert show(ali, "09361111111")["balance"] == 20_000


def test_topup_takes_persian_digits_and_refuses_to_pass_the_ceiling(ali) -> None:  # type: ignore[no-untyped-def]
    assert ali("admin", "topup", "۰۹۳۶۱۱۱۱۱۱۱", "۱۰٬۰۰۰").exit_code == 0
    assert show(ali, "09361111111")["balance"] == 30_000
    assert ali("admin", "topup", "09361111111", str(10**15 - 30_000)).exit_code == 0
    assert show(ali, "09361111111")["balance"] == 10**15
    beyond = ali("admin", "topup", "09361111111", "1")
    assert beyond.exit_code == 2 and "beyond the ceiling" in beyond.stderr
    assert show(ali, "09361111111")["balance"] == 10**15  # nothing changed
    assert ali("admin", "topup", "09391234567", str(10**15 + 30_000 - 1)).exit_code == 2
    assert show(ali, "09391234567")["bill"] == 30_000
    kinds = [json.loads(line)["kind"] for line in
             ali("admin", "history", "09361111111", "--json").stdout.splitlines()]
    assert kinds.count("topup") == 2  # the refused one left no trace


@pytest.mark.parametrize("args", [
    ["history", "09361111111", "--limit", "9" * 30],
    ["recover", "--older-than", "inf"], ["recover", "--older-than", "nan"],
    ["recover", "--older-than", "1e300"],
    ["show", "09361111111", "--at", "9999-12-31T23:59:59-12:00"],
    ["show", "09361111111", "--at", "0001-01-01T00:00:00+14:00"],
    ["show", "9" * 5000], ["topup", "\udcff", "1000"], ["unblock", "٠٩٣٦١١١١١١١١"],
])
def test_admin_commands_answer_hostile_arguments_without_a_traceback(ali, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = ali("admin", *args)
    assert result.exit_code in (0, 1, 2) and no_traceback(result)
    if result.exit_code:
        assert "Error" in result.stderr or "error" in result.stderr


amount_texts = (st.text(alphabet="0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩,٬.-+e x", max_size=45)
                | st.integers(-(10**40), 10**40).map(str)
                | st.integers(1, 10**15).map(lambda n: f"{n:,}"))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(amount=amount_texts)
def test_topup_answers_every_amount_and_changes_only_what_it_says(ali, amount: str) -> None:  # type: ignore[no-untyped-def]
    tried("admin topup: every amount")
    before = show(ali, "09361111111")["balance"]
    result = ali("admin", "topup", "09361111111", "--", amount)
    assert result.exit_code in (0, 2) and no_traceback(result)
    after = show(ali, "09361111111")["balance"]
    if result.exit_code == 0:
        assert after == before + parse_rials(amount) and parse_rials(amount) >= 1  # type: ignore[operator]
        assert after <= 10**15  # type: ignore[operator]
    else:
        assert after == before and "error" in result.stderr.lower()


def test_show_and_topup_on_a_hand_edited_balance_answer_without_a_traceback(ali) -> None:  # type: ignore[no-untyped-def]
    import os

    import redis

    redis.Redis.from_url(os.environ["SMSGW_REDIS_URL"]).hset("s:{989361111111}", "balance", "1e5")
    assert show(ali, "09361111111")["balance"] == "1e5"  # shown as it is
    refused = ali("admin", "topup", "09361111111", "1000")
    assert refused.exit_code == 1 and "not a number of rials" in refused.stderr
    assert show(ali, "09361111111")["balance"] == "1e5"
